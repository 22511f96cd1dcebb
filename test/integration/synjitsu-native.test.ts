/**
 * The native packet path on its own: a veth pair (jt3n1a <-> jt3n1b), frames sent with the addon's
 * batched send from another process, received through the BPF filter and TPACKET_V3 ring on the
 * main thread and on a worker thread. Also measures the receive path's CPU cost per packet.
 */
import { resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNative, nativeAvailable, type PacketSocket } from '../../src/native/index.js';
import { watchFilter } from '../../src/synjitsu/bpf.js';
import { parseIpv4 } from '../../src/synjitsu/pdu/ipv4.js';
import { rigUnavailable, run } from '../helpers/synjitsu-rig.js';

const unavailable = rigUnavailable() ?? (nativeAvailable() ? undefined : 'native addon not built (npx node-gyp rebuild)');
const A = 'jt3n1a';
const B = 'jt3n1b';
const addonPath = resolve('build/Release/jitsu_native.node');
const watched = '10.202.250.10';
const unwatched = '10.202.250.11';

/** A child process that sends `count` TCP SYN frames to `dst` on link A, `batch` per sendmmsg call. */
async function send(dst: string, count: number, batch = 256): Promise<number> {
  const script = `
    const addon = require(${JSON.stringify(addonPath)});
    const s = new addon.PacketSocket({ iface: ${JSON.stringify(A)} });
    const frame = Buffer.from('02000000000b02000000000a0800450000280000400040060000' + 'ca0afa02' + ${JSON.stringify(
      Buffer.from(parseIpv4(dst).toString(16).padStart(8, '0'), 'hex').toString('hex'),
    )} + '9c4000500000000100000000500272100000' + '0000', 'hex');
    const data = Buffer.alloc(${batch} * 64); const meta = new Uint32Array(${batch} * 2);
    for (let i = 0; i < ${batch}; i++) { frame.copy(data, i * 64); data.writeUInt16BE(1024 + i, i * 64 + 34); meta[i * 2] = i * 64; meta[i * 2 + 1] = frame.length; }
    let sent = 0;
    while (sent < ${count}) sent += s.send(data, meta, Math.min(${batch}, ${count} - sent));
    process.stdout.write(String(sent));`;
  const r = await run(process.execPath, ['-e', script], 60_000);
  if (r.code !== 0) throw new Error(r.stderr);
  return Number(r.stdout);
}

describe.skipIf(unavailable !== undefined)('native packet socket', () => {
  beforeAll(async () => {
    await run('ip', ['link', 'del', A]);
    const r = await run('ip', ['link', 'add', A, 'type', 'veth', 'peer', 'name', B]);
    if (r.code !== 0) throw new Error(r.stderr);
    for (const l of [A, B]) {
      await run('sysctl', ['-qw', `net.ipv6.conf.${l}.disable_ipv6=1`]);
      await run('ip', ['link', 'set', l, 'up']);
    }
  });
  afterAll(async () => {
    await run('ip', ['link', 'del', A]);
  });

  it('receives only what the filter admits, in batches, and swaps filters at run time', async () => {
    const native = loadNative();
    const data = Buffer.alloc(1 << 20);
    const meta = new Uint32Array(4096 * 3);
    let frames = 0;
    let batches = 0;
    const dsts = new Set<number>();
    const sock: PacketSocket = new native.PacketSocket({
      iface: B,
      receive: true,
      promisc: true,
      filter: watchFilter([parseIpv4(watched)]),
      data,
      meta,
      onBatch: (count) => {
        batches++;
        frames += count;
        for (let i = 0; i < count; i++) dsts.add(data.readUInt32BE(meta[i * 3]! + 30));
      },
    });
    try {
      const n = 20_000;
      await send(unwatched, n);
      const cpu0 = process.cpuUsage();
      const t0 = Date.now();
      const sent = await send(watched, n);
      while (frames < sent && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
      const cpu = process.cpuUsage(cpu0);
      const stats = sock.stats();
      const perPacketUs = (cpu.user + cpu.system) / frames;
      console.log(`native rx: ${frames}/${sent} frames in ${batches} batches, ${perPacketUs.toFixed(2)} µs CPU/packet (incl. JS callback + idle loop), drops=${stats.drops}`);
      expect(frames + stats.drops).toBe(sent);
      expect(frames).toBeGreaterThan(sent * 0.9);
      expect(batches).toBeLessThan(frames / 4);
      expect([...dsts].every((p) => p === parseIpv4(watched))).toBe(true);

      sock.setFilter(watchFilter([parseIpv4(unwatched)]));
      frames = 0;
      dsts.clear();
      await send(watched, 1000);
      await send(unwatched, 1000);
      const t1 = Date.now();
      while (frames < 1000 && Date.now() - t1 < 3000) await new Promise((r) => setTimeout(r, 20));
      expect(frames).toBe(1000);
      expect([...dsts]).toEqual([parseIpv4(unwatched)]);
    } finally {
      sock.close();
    }
    expect(() => sock.send(Buffer.alloc(64), new Uint32Array([0, 60]), 1)).toThrow(/closed/);
  });

  it('works on a worker thread (polled on the worker’s own event loop)', async () => {
    const code = `
      const { parentPort } = require('node:worker_threads');
      const addon = require(${JSON.stringify(addonPath)});
      const data = Buffer.alloc(1 << 20), meta = new Uint32Array(4096 * 3);
      let frames = 0;
      const s = new addon.PacketSocket({ iface: ${JSON.stringify(B)}, receive: true, promisc: true, data, meta,
        filter: Buffer.from(${JSON.stringify(watchFilter([parseIpv4(watched)]).toString('hex'))}, 'hex'),
        onBatch: (n) => { frames += n; } });
      parentPort.on('message', (m) => { if (m === 'count') parentPort.postMessage(frames); if (m === 'stop') { s.close(); parentPort.close(); } });
      parentPort.postMessage('ready');`;
    const worker = new Worker(code, { eval: true });
    try {
      await new Promise<void>((res, rej) => {
        worker.once('message', () => res());
        worker.once('error', rej);
      });
      const sent = await send(watched, 5000, 64);
      let got = 0;
      const t0 = Date.now();
      while (got < sent && Date.now() - t0 < 5000) {
        worker.postMessage('count');
        got = await new Promise<number>((res) => worker.once('message', res));
        if (got < sent) await new Promise((r) => setTimeout(r, 20));
      }
      expect(got).toBe(sent);
      worker.postMessage('stop');
    } finally {
      await worker.terminate();
    }
  });

  it('fails with a clear error for a missing interface or a bad filter', () => {
    const native = loadNative();
    expect(() => new native.PacketSocket({ iface: 'jt3nope' })).toThrow(/jt3nope/);
    expect(() => new native.PacketSocket({ iface: B, receive: true, filter: Buffer.alloc(5), data: Buffer.alloc(64), meta: new Uint32Array(3), onBatch: () => {} })).toThrow(/BPF/);
  });
});
