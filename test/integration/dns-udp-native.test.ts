/**
 * The native batched UDP socket (native/udp.cc via src/native/udp.ts) on loopback: bursts arrive
 * in few batches and every reply reaches its own sender (IPv4 and IPv6), oversized datagrams are
 * flagged and counted, late replies use a copied address key after the arena was reused, close
 * inside a batch, SO_REUSEPORT, a worker thread, and the EAGAIN path (a private netns whose
 * loopback is slowed by tbf, so a tiny send buffer fills) with its bounded queue. Then the DNS
 * server over it: oversized queries, late summon replies to v4 and v6 clients, close while busy.
 */
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeMessage } from '../../src/dns/codec.js';
import { QType, Rcode } from '../../src/dns/constants.js';
import { createDnsHandler } from '../../src/dns/handler.js';
import { createDnsServer, type DnsServer } from '../../src/dns/server.js';
import { createStaticSummoner } from '../../src/dns/static-summoner.js';
import { batchedUdpAvailable, openBatchedUdp, UDP_ADDR_STRIDE, UDP_TRUNCATED, type BatchedUdp } from '../../src/native/udp.js';
import { silentLogger } from '../../src/observe/log.js';
import { MetricsRegistry } from '../../src/observe/metrics.js';
import { query } from '../helpers/dns-util.js';
import { ADDON_PATH, TIME_SCALE, client, haveNetns, makeNetns, nodeIn, tcIn, type Client } from '../helpers/dns-udp-native.js';

const native = batchedUdpAvailable();
const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function track<T extends { close(): unknown }>(x: T): T {
  cleanups.push(() => void x.close());
  return x;
}

/** A socket whose onBatch calls `handle(i, payload)` per datagram; a returned Buffer is the reply. */
function echoSocket(address: string, handle: (i: number, payload: Buffer, b: BatchedUdp) => Buffer | null, extra: { slotSize?: number } = {}): BatchedUdp {
  let b!: BatchedUdp;
  b = openBatchedUdp({
    address,
    port: 0,
    recvBuffer: 4 << 20,
    ...extra,
    onBatch: (count) => {
      let n = 0;
      let used = 0;
      for (let i = 0; i < count; i++) {
        const payload = b.data.subarray(i * b.slotSize, i * b.slotSize + b.meta[2 * i]!);
        const reply = handle(i, payload, b);
        if (reply === null) continue;
        b.outData.set(reply, used);
        b.outMeta[3 * n] = used;
        b.outMeta[3 * n + 1] = reply.length;
        b.outMeta[3 * n + 2] = i;
        n++;
        used += reply.length;
      }
      if (n > 0) b.socket.sendBatch(n);
    },
  });
  cleanups.push(() => b.socket.close());
  return b;
}

describe.skipIf(!native)('native batched UDP socket', () => {
  it.each([
    ['IPv4', '127.0.0.1', 4],
    ['IPv6', '::1', 6],
  ] as const)('%s: a burst of 600 datagrams from 3 senders arrives in few batches; each reply goes to its sender', async (_l, address, family) => {
    const batches: number[] = [];
    const b = echoSocket(address, (_i, p) => Buffer.concat([Buffer.from('re:'), p]));
    const onBatch = b.socket; // keep the reference alive for the assertion below
    const port = b.socket.localAddress().port;
    expect(b.socket.localAddress()).toEqual({ address, port, family });
    const clients: Client[] = [];
    for (let k = 0; k < 3; k++) clients.push(track(await client(family)));
    // All sends happen in this tick, so they queue in the socket until the server's next wake-up.
    for (let i = 0; i < 200; i++) for (let k = 0; k < 3; k++) clients[k]!.send(`c${k}-${i}`, port, address);
    for (let k = 0; k < 3; k++) {
      // Bounded for an emulated CPU: the 600 replies take seconds of TCG time there.
      const got = (await clients[k]!.waitFor(200, 20_000)).map((m) => m.toString());
      expect(new Set(got)).toEqual(new Set(Array.from({ length: 200 }, (_, i) => `re:c${k}-${i}`)));
    }
    const st = onBatch.stats();
    batches.push(st.batches);
    expect(st.received).toBe(600);
    expect(st.sent).toBe(600);
    // 64 per recvmmsg at most; one wake-up per datagram would be 600 batches.
    expect(st.batches).toBeGreaterThanOrEqual(10);
    expect(st.batches).toBeLessThan(150);
    expect(st.dropped + st.sendErrors + st.truncated).toBe(0);
  });

  it('flags a datagram larger than a slot as truncated, counts it, and the next one arrives whole', async () => {
    const seen: { len: number; flags: number }[] = [];
    const b = echoSocket(
      '127.0.0.1',
      (i, _p, s) => {
        seen.push({ len: s.meta[2 * i]!, flags: s.meta[2 * i + 1]! });
        return null;
      },
      { slotSize: 64 },
    );
    const c = track(await client(4));
    c.send(Buffer.alloc(100, 1), b.socket.localAddress().port, '127.0.0.1');
    c.send(Buffer.alloc(20, 2), b.socket.localAddress().port, '127.0.0.1');
    const until = Date.now() + 2000;
    while (seen.length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    expect(seen).toEqual([
      { len: 64, flags: UDP_TRUNCATED },
      { len: 20, flags: 0 },
    ]);
    expect(b.socket.stats().truncated).toBe(1);
  });

  it('late replies: an address key copied from the batch still reaches its sender after the arena is reused', async () => {
    const keys: Buffer[] = [];
    const b = echoSocket('::1', (i, _p, s) => {
      keys.push(Buffer.from(s.addrs.subarray(i * UDP_ADDR_STRIDE, (i + 1) * UDP_ADDR_STRIDE)));
      return null;
    });
    const port = b.socket.localAddress().port;
    const first = track(await client(6));
    first.send('late please', port, '::1');
    while (keys.length < 1) await new Promise((r) => setTimeout(r, 5));
    // Another sender's datagrams overwrite slot 0 (payload and address) before the late reply.
    const other = track(await client(6));
    for (let i = 0; i < 5; i++) other.send(`other-${i}`, port, '::1');
    while (keys.length < 6) await new Promise((r) => setTimeout(r, 5));
    expect(b.socket.sendTo(Buffer.from('your late answer'), keys[0]!)).toBe(true);
    expect((await first.waitFor(1)).map(String)).toEqual(['your late answer']);
    await new Promise((r) => setTimeout(r, 50));
    expect(other.received).toHaveLength(0);
    expect(() => b.socket.sendTo(Buffer.from('x'), Buffer.alloc(UDP_ADDR_STRIDE))).toThrow(RangeError);
  });

  it('close inside onBatch with datagrams still queued: no crash, later calls are harmless, the port is free', async () => {
    let calls = 0;
    let b!: BatchedUdp;
    b = openBatchedUdp({
      address: '127.0.0.1',
      port: 0,
      batch: 8,
      onBatch: () => {
        calls++;
        b.socket.close();
      },
    });
    cleanups.push(() => b.socket.close());
    const port = b.socket.localAddress().port;
    const c = track(await client(4));
    for (let i = 0; i < 100; i++) c.send(`q${i}`, port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 200));
    expect(calls).toBe(1);
    expect(b.socket.fd).toBe(-1);
    expect(b.socket.sendBatch(0)).toBe(0);
    expect(b.socket.sendTo(Buffer.from('x'), Buffer.alloc(UDP_ADDR_STRIDE))).toBe(false);
    expect(b.socket.stats().received).toBe(8);
    const again = openBatchedUdp({ address: '127.0.0.1', port, onBatch: () => {} });
    again.socket.close();
  });

  it('SO_REUSEPORT lets two sockets bind one port; without it the second bind fails with EADDRINUSE', () => {
    const a = openBatchedUdp({ address: '127.0.0.1', port: 0, reusePort: true, onBatch: () => {} });
    cleanups.push(() => a.socket.close());
    const port = a.socket.localAddress().port;
    const b = openBatchedUdp({ address: '127.0.0.1', port, reusePort: true, onBatch: () => {} });
    cleanups.push(() => b.socket.close());
    expect(b.socket.localAddress().port).toBe(port);
    let code: unknown;
    try {
      openBatchedUdp({ address: '127.0.0.1', port, onBatch: () => {} }).socket.close();
    } catch (err) {
      code = (err as NodeJS.ErrnoException).code;
    }
    expect(code).toBe('EADDRINUSE');
  });

  it('serves from a worker thread (polled on the worker loop)', async () => {
    const worker = new Worker(
      `
      const { parentPort } = require('node:worker_threads');
      const a = require(${JSON.stringify(ADDON_PATH)});
      const slot = 512, batch = 16;
      const data = Buffer.alloc(batch * slot), meta = new Uint32Array(batch * 2), addrs = Buffer.alloc(batch * 32);
      const outData = Buffer.alloc(65536), outMeta = new Uint32Array(batch * 3);
      const s = new a.UdpSocket({ address: '127.0.0.1', port: 0, slotSize: slot, data, meta, addrs, outData, outMeta,
        onBatch(n) {
          let used = 0;
          for (let i = 0; i < n; i++) {
            const len = data.copy(outData, used + 7, i * slot, i * slot + meta[2 * i]);
            outData.write('worker:', used);
            outMeta[3 * i] = used; outMeta[3 * i + 1] = 7 + len; outMeta[3 * i + 2] = i;
            used += 7 + len;
          }
          s.sendBatch(n);
        } });
      parentPort.postMessage(s.localAddress().port);
      parentPort.on('message', () => { s.close(); parentPort.close(); });
      `,
      { eval: true },
    );
    cleanups.push(() => worker.terminate().then(() => undefined));
    const port = await new Promise<number>((r, j) => worker.once('message', r).once('error', j));
    const c = track(await client(4));
    for (let i = 0; i < 40; i++) c.send(`w${i}`, port, '127.0.0.1');
    const got = (await c.waitFor(40)).map(String);
    expect(new Set(got)).toEqual(new Set(Array.from({ length: 40 }, (_, i) => `worker:w${i}`)));
    worker.postMessage('stop');
    expect(await new Promise((r) => worker.once('exit', r))).toBe(0);
  });

  it('a worker terminated with its socket open tears it down (env cleanup) and frees the port', async () => {
    const worker = new Worker(
      `
      const { parentPort } = require('node:worker_threads');
      const a = require(${JSON.stringify(ADDON_PATH)});
      const s = new a.UdpSocket({ address: '127.0.0.1', port: 0, slotSize: 512, data: Buffer.alloc(8 * 512),
        meta: new Uint32Array(16), addrs: Buffer.alloc(8 * 32), outData: Buffer.alloc(4096), outMeta: new Uint32Array(24),
        onBatch() {} });
      parentPort.postMessage(s.localAddress().port);
      `,
      { eval: true },
    );
    const port = await new Promise<number>((r, j) => worker.once('message', r).once('error', j));
    const c = track(await client(4));
    for (let i = 0; i < 20; i++) c.send(`x${i}`, port, '127.0.0.1');
    await worker.terminate();
    const again = openBatchedUdp({ address: '127.0.0.1', port, onBatch: () => {} });
    again.socket.close();
  });

  describe.skipIf(!haveNetns)('send buffer full (EAGAIN) in a private netns with a slowed loopback', () => {
    /** 200 queries, 1200-byte replies, SO_SNDBUF 4 KiB, loopback at 2 Mbit/s: most replies meet EAGAIN. */
    const script = (maxQueued: number): string => `
      const a = require(${JSON.stringify(ADDON_PATH)});
      const dgram = require('node:dgram');
      const N = 200, slot = 64, batch = 64, R = 1200;
      const data = Buffer.alloc(batch * slot), meta = new Uint32Array(batch * 2), addrs = Buffer.alloc(batch * 32);
      const outData = Buffer.alloc(batch * R), outMeta = new Uint32Array(batch * 3);
      let droppedReturned = 0;
      const s = new a.UdpSocket({ address: '127.0.0.1', port: 0, slotSize: slot, data, meta, addrs, outData, outMeta,
        sendBuffer: 4096, maxQueued: ${maxQueued},
        onBatch(n) {
          for (let i = 0; i < n; i++) {
            outData.fill(0x61, i * R, (i + 1) * R);
            data.copy(outData, i * R, i * slot, i * slot + meta[2 * i]);
            outMeta[3 * i] = i * R; outMeta[3 * i + 1] = R; outMeta[3 * i + 2] = i;
          }
          droppedReturned += s.sendBatch(n);
        } });
      const port = s.localAddress().port;
      const c = dgram.createSocket('udp4');
      const got = new Set();
      c.on('message', (m) => got.add(m.toString('latin1', 0, 8)));
      const finish = () => {
        const st = s.stats();
        s.close(); c.close();
        console.log(JSON.stringify({ got: got.size, droppedReturned, stats: st }));
      };
      c.bind(0, '127.0.0.1', () => {
        for (let i = 0; i < N; i++) c.send(String(i).padStart(8, '0'), port, '127.0.0.1');
        const t0 = Date.now();
        const poll = setInterval(() => {
          const st = s.stats();
          if ((got.size === N) || (st.queued === 0 && got.size === st.sent && st.received === N) || Date.now() - t0 > 8000) {
            clearInterval(poll); setTimeout(finish, 300);
          }
        }, 50);
      });`;

    async function runIn(maxQueued: number) {
      const ns = makeNetns(`q${maxQueued}`);
      cleanups.push(() => ns.remove());
      tcIn(ns.name, ['qdisc', 'add', 'dev', 'lo', 'root', 'tbf', 'rate', '2mbit', 'burst', '16kb', 'latency', '2s']);
      return nodeIn<{ got: number; droppedReturned: number; stats: Record<string, number> }>(ns.name, script(maxQueued));
    }

    it('replies wait in the bounded queue, are flushed when writable, and all arrive', async () => {
      const r = await runIn(1024);
      expect(r.stats.received).toBe(200);
      expect(r.stats.queuedTotal).toBeGreaterThan(50);
      expect(r.stats.dropped).toBe(0);
      expect(r.stats.queued).toBe(0);
      expect(r.stats.sent).toBe(200);
      expect(r.got).toBe(200);
    }, 30_000 * TIME_SCALE);

    it('beyond the queue bound replies are dropped and counted; everything else arrives', async () => {
      const r = await runIn(16);
      expect(r.stats.received).toBe(200);
      expect(r.stats.dropped).toBeGreaterThan(0);
      expect(r.droppedReturned).toBe(r.stats.dropped);
      expect(r.stats.sent + r.stats.dropped).toBe(200);
      expect(r.got).toBe(r.stats.sent);
    }, 30_000 * TIME_SCALE);
  });
});

describe.skipIf(!native)('DNS server over the native socket', () => {
  let releaseBoot: (() => void) | undefined;
  let booting: Promise<void> | undefined;

  async function start(extra: { udpMaxQuery?: number; udpBatch?: number } = {}): Promise<{ server: DnsServer; metrics: MetricsRegistry }> {
    releaseBoot = undefined;
    booting = undefined;
    const metrics = new MetricsRegistry();
    const summoner = createStaticSummoner([
      { service: 'demo', names: ['demo.jitsu.test'], ipv4: ['10.0.0.1'], ipv6: ['fd00::1'] },
      {
        service: 'slow',
        names: ['slow.jitsu.test'],
        ipv4: ['10.0.0.2'],
        ensureUp: () => (booting ??= new Promise<void>((r) => (releaseBoot = r))),
      },
    ]);
    const handler = createDnsHandler({ summoner, metrics, logger: silentLogger });
    const server = await createDnsServer({ addresses: ['127.0.0.1', '::1'], port: 0, handler, logger: silentLogger, metrics, udp: 'native', ...extra });
    cleanups.push(() => server.close());
    expect(server.udpPath).toBe('native');
    return { server, metrics };
  }

  it('drops and counts a query larger than udpMaxQuery, answers the next one', async () => {
    const { server, metrics } = await start({ udpMaxQuery: 512 });
    const c = track(await client(4));
    const big = query('demo.jitsu.test', QType.A, { id: 1, edns: { options: [{ code: 12, data: new Uint8Array(600) }] } });
    expect(big.length).toBeGreaterThan(512);
    c.send(big, server.port, '127.0.0.1');
    c.send(query('demo.jitsu.test', QType.A, { id: 2 }), server.port, '127.0.0.1');
    const [reply] = await c.waitFor(1);
    await new Promise((r) => setTimeout(r, 100));
    expect(c.received).toHaveLength(1);
    expect(decodeMessage(reply!).id).toBe(2);
    const text = metrics.render();
    expect(text).toContain('jitsu_dns_udp_dropped_total{reason="oversized_query"} 1');
    expect(text).not.toMatch(/jitsu_dns_malformed_total\{transport="udp"\} [1-9]/);
    expect(server.udpStats()?.truncated).toBe(1);
  });

  it('late summon replies reach IPv4 and IPv6 clients after many other batches reused the arena', async () => {
    const { server } = await start();
    const v4 = track(await client(4));
    const v6 = track(await client(6));
    v4.send(query('slow.jitsu.test', QType.A, { id: 0x4444 }), server.port, '127.0.0.1');
    v6.send(query('slow.jitsu.test', QType.A, { id: 0x6666 }), server.port, '::1');
    const noise = track(await client(4));
    for (let i = 0; i < 300; i++) noise.send(query('demo.jitsu.test', QType.A, { id: i }), server.port, '127.0.0.1');
    await noise.waitFor(300);
    expect(v4.received).toHaveLength(0);
    expect(v6.received).toHaveLength(0);
    releaseBoot!();
    const [r4] = await v4.waitFor(1);
    const [r6] = await v6.waitFor(1);
    for (const [r, id] of [
      [r4!, 0x4444],
      [r6!, 0x6666],
    ] as const) {
      const m = decodeMessage(r);
      expect(m.id).toBe(id);
      expect(m.rcode).toBe(Rcode.NOERROR);
      expect(m.questions[0]!.name).toBe('slow.jitsu.test');
      expect(m.answers.map((a) => (a.data as { address: string }).address)).toEqual(['10.0.0.2']);
    }
    expect(new Set(noise.received.map((m) => decodeMessage(m).id)).size).toBe(300);
  });

  it('close while queries stream in and summons are pending: resolves, sends nothing after close', async () => {
    // 8 per recvmmsg, at most 8 rounds per wake-up: 201 queries need several wake-ups.
    const { server } = await start({ udpBatch: 8 });
    const c = track(await client(4));
    c.send(query('slow.jitsu.test', QType.A, { id: 7 }), server.port, '127.0.0.1');
    for (let i = 0; i < 200; i++) c.send(query('demo.jitsu.test', QType.A, { id: 1000 + i }), server.port, '127.0.0.1');
    // Close as soon as the first batch was answered, with the rest still queued in the socket.
    const until = Date.now() + 2000;
    while ((server.udpStats()?.batches ?? 0) === 0 && Date.now() < until) await new Promise((r) => setImmediate(r));
    const stats = server.udpStats()!;
    await server.close();
    releaseBoot!();
    await new Promise((r) => setTimeout(r, 200));
    // What was answered before close arrives; the summon that resolved after close sends nothing.
    expect(c.received.length).toBe(stats.sent);
    expect(stats.received).toBeLessThan(201);
    expect(c.received.every((m) => decodeMessage(m).id !== 7)).toBe(true);
  });
});
