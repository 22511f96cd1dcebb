import dgram from 'node:dgram';
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../observe/log.js';
import { MetricsRegistry } from '../observe/metrics.js';
import { decodeMessage, type DnsMessage } from './codec.js';
import { QType, Rcode } from './constants.js';
import { createDnsHandler } from './handler.js';
import { createDnsServer, receiveBufferCap, type DnsServer, type TcpLimits } from './server.js';
import { createStaticSummoner } from './static-summoner.js';
import { hex, query } from '../../test/helpers/dns-util.js';

let servers: DnsServer[] = [];
/** The UDP path the current describe block runs over (every test runs on both). */
let udpPath: 'native' | 'dgram' = 'native';
afterEach(async () => {
  for (const s of servers) await s.close();
  servers = [];
});

async function start(tcp: TcpLimits = {}, slowRelease: { release?: () => void; booting?: Promise<void> } = {}) {
  const metrics = new MetricsRegistry();
  const summoner = createStaticSummoner([
    { service: 'demo', names: ['demo.jitsu.test'], ipv4: ['10.0.0.1'], ipv6: ['fd00::1'] },
    {
      service: 'slow',
      names: ['slow.jitsu.test'],
      ipv4: ['10.0.0.2'],
      ensureUp: () => (slowRelease!.booting ??= new Promise<void>((resolve) => (slowRelease!.release = resolve))),
    },
  ]);
  const handler = createDnsHandler({ summoner, metrics, logger: silentLogger });
  const server = await createDnsServer({ addresses: ['127.0.0.1', '::1'], port: 0, handler, logger: silentLogger, metrics, tcp, udp: udpPath });
  expect(server.udpPath).toBe(udpPath);
  servers.push(server);
  return { server, metrics };
}

function udpAsk(port: number, msg: Buffer, address = '127.0.0.1', timeoutMs = 1000): Promise<DnsMessage> {
  const sock = dgram.createSocket(net.isIPv6(address) ? 'udp6' : 'udp4');
  return new Promise<DnsMessage>((resolve, reject) => {
    const timer = setTimeout(() => {
      sock.close();
      reject(new Error('no UDP answer'));
    }, timeoutMs);
    sock.on('message', (m) => {
      clearTimeout(timer);
      sock.close();
      resolve(decodeMessage(m));
    });
    sock.send(msg, port, address);
  });
}

function frame(msg: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(msg.length);
  return Buffer.concat([len, msg]);
}

/** A TCP client collecting answer frames; `closed` resolves when the server hangs up. */
async function tcpClient(port: number, address = '127.0.0.1') {
  const sock = net.connect(port, address);
  await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  const answers: DnsMessage[] = [];
  let buf = Buffer.alloc(0);
  const waiters: (() => void)[] = [];
  sock.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      answers.push(decodeMessage(buf.subarray(2, 2 + buf.readUInt16BE(0))));
      buf = buf.subarray(2 + buf.readUInt16BE(0));
    }
    waiters.splice(0).forEach((w) => w());
  });
  sock.on('error', () => {});
  const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
  const waitFor = async (n: number, timeoutMs = 2000): Promise<DnsMessage[]> => {
    const deadline = Date.now() + timeoutMs;
    while (answers.length < n) {
      if (Date.now() > deadline) throw new Error(`only ${answers.length} of ${n} TCP answers`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
    return answers;
  };
  return { sock, answers, waitFor, closed };
}

describe.each(['native', 'dgram'] as const)('DNS server (UDP over %s)', (path) => {
  beforeEach(() => {
    udpPath = path;
  });

  it('listens on UDP and TCP, IPv4 and IPv6, on one picked port', async () => {
    const { server } = await start();
    const addrs = server.addresses();
    expect(addrs).toHaveLength(4);
    expect(new Set(addrs.map((a) => a.port))).toEqual(new Set([server.port]));
    expect(addrs.map((a) => `${a.transport}/${a.address}`).sort()).toEqual(['tcp/127.0.0.1', 'tcp/::1', 'udp/127.0.0.1', 'udp/::1']);
    for (const address of ['127.0.0.1', '::1']) {
      const r = await udpAsk(server.port, query('demo.jitsu.test', QType.A, { id: 11 }), address);
      expect(r).toMatchObject({ id: 11, aa: true });
      expect(r.answers[0]!.data).toEqual({ kind: 'A', address: '10.0.0.1' });
      const c = await tcpClient(server.port, address);
      c.sock.write(frame(query('demo.jitsu.test', QType.AAAA, { id: 12 })));
      const [a] = await c.waitFor(1);
      expect(a!.answers[0]!.data).toEqual({ kind: 'AAAA', address: 'fd00::1' });
      c.sock.destroy();
    }
  });

  it('answers pipelined TCP queries, including frames split at every byte', async () => {
    const { server } = await start();
    const c = await tcpClient(server.port);
    const burst = Buffer.concat(Array.from({ length: 20 }, (_, i) => frame(query('demo.jitsu.test', QType.A, { id: 100 + i }))));
    c.sock.write(burst);
    await c.waitFor(20);
    expect(c.answers.map((a) => a.id)).toEqual(Array.from({ length: 20 }, (_, i) => 100 + i));
    const split = frame(query('demo.jitsu.test', QType.AAAA, { id: 999 }));
    for (const byte of split) {
      c.sock.write(Buffer.from([byte]));
      await new Promise((r) => setImmediate(r));
    }
    const answers = await c.waitFor(21);
    expect(answers[20]!.id).toBe(999);
    c.sock.destroy();
  });

  it('answers a fast query before an earlier slow one on the same connection (and over UDP)', async () => {
    const slow: { release?: () => void } = {};
    const { server } = await start({}, slow);
    const c = await tcpClient(server.port);
    c.sock.write(Buffer.concat([frame(query('slow.jitsu.test', QType.A, { id: 1 })), frame(query('demo.jitsu.test', QType.A, { id: 2 }))]));
    await c.waitFor(1);
    expect(c.answers.map((a) => a.id)).toEqual([2]);
    const udpSlow = udpAsk(server.port, query('slow.jitsu.test', QType.A, { id: 3 }), '127.0.0.1', 3000);
    expect((await udpAsk(server.port, query('demo.jitsu.test', QType.A, { id: 4 }))).id).toBe(4);
    slow.release!();
    await c.waitFor(2);
    expect(c.answers[1]).toMatchObject({ id: 1, rcode: Rcode.NOERROR });
    expect((await udpSlow).answers[0]!.data).toEqual({ kind: 'A', address: '10.0.0.2' });
    c.sock.destroy();
  });

  it('a bad frame closes only that connection', async () => {
    const { server, metrics } = await start();
    const good = await tcpClient(server.port);
    const bad = await tcpClient(server.port);
    bad.sock.write(Buffer.from([0, 5, 1, 2, 3, 4, 5]));
    await bad.closed;
    good.sock.write(frame(query('demo.jitsu.test', QType.A, { id: 5 })));
    expect((await good.waitFor(1))[0]!.id).toBe(5);
    const garbage = await tcpClient(server.port);
    garbage.sock.write(frame(hex('0001 0000 0001 0000 0000 0000 05 61')));
    await garbage.closed;
    expect(metrics.render()).toMatch(/jitsu_dns_malformed_total\{transport="tcp"\} 2/);
    good.sock.destroy();
  });

  it('drops UDP garbage, counts it, and still answers the next query', async () => {
    const { server, metrics } = await start();
    const sock = dgram.createSocket('udp4');
    const junk = [
      Buffer.alloc(0),
      Buffer.from([1, 2, 3]),
      hex('0001 0000 0001 0000 0000 0000 05 61'), // question cut off
      hex('0001 0000 0001 0000 0000 0000 c00c 0001 0001'), // pointer loop
      Buffer.alloc(600, 0xc0), // QR set: a response, dropped
    ];
    for (const j of junk)
      sock.send(j, server.port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 50));
    sock.close();
    expect((await udpAsk(server.port, query('demo.jitsu.test', QType.A, { id: 6 }))).id).toBe(6);
    expect(metrics.render()).toContain('jitsu_dns_malformed_total{transport="udp"} 4');
    expect(metrics.render()).toContain('jitsu_dns_responses_received_total 1');
  });

  it('closes idle connections, keeps ones that still owe an answer', async () => {
    const slow: { release?: () => void } = {};
    const { server } = await start({ idleTimeoutMs: 150 }, slow);
    const idle = await tcpClient(server.port);
    const waiting = await tcpClient(server.port);
    waiting.sock.write(frame(query('slow.jitsu.test', QType.A, { id: 8 })));
    const t0 = Date.now();
    await idle.closed;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
    await new Promise((r) => setTimeout(r, 250));
    expect(waiting.sock.destroyed).toBe(false);
    slow.release!();
    expect((await waiting.waitFor(1))[0]!.id).toBe(8);
    await waiting.closed; // idle again after the answer
  });

  it('refuses connections beyond the limit and frames beyond the size cap', async () => {
    const { server, metrics } = await start({ maxConnections: 2, maxMessageSize: 512 });
    const a = await tcpClient(server.port);
    const b = await tcpClient(server.port, '::1');
    const c = await tcpClient(server.port); // the cap spans both listeners
    await c.closed;
    const d = await tcpClient(server.port, '::1');
    await d.closed;
    a.sock.write(Buffer.from([0x02, 0x01])); // announces 513 bytes
    await a.closed;
    b.sock.write(frame(query('demo.jitsu.test', QType.A, { id: 9 })));
    expect((await b.waitFor(1))[0]!.id).toBe(9);
    expect(metrics.render()).toContain('jitsu_dns_tcp_rejected_total 3');
    b.sock.destroy();
  });

  it('binds a given port for every listener and frees it on close', async () => {
    const probe = await start();
    const port = probe.server.port;
    await probe.server.close();
    servers = [];
    const { server } = await start();
    const fixed = await createDnsServer({
      addresses: ['127.0.0.1'],
      port,
      handler: { handle: () => null },
      logger: silentLogger,
      metrics: new MetricsRegistry(),
    });
    servers.push(fixed);
    expect(fixed.port).toBe(port);
    await expect(
      createDnsServer({ addresses: ['127.0.0.1'], port, handler: { handle: () => null }, logger: silentLogger, metrics: new MetricsRegistry() }),
    ).rejects.toMatchObject({ code: 'EADDRINUSE' });
    expect(server.port).not.toBe(port);
  });
});

describe('receiveBufferCap', () => {
  it('names the cap and the sysctl that lifts it when rmem_max is below the request', () => {
    expect(receiveBufferCap(4 << 20, '163840\n')).toEqual({ requested_bytes: 4 << 20, rmem_max: 163840, fix: 'sysctl -w net.core.rmem_max=4194304' });
  });
  it('is silent when the request is granted or the limit is unreadable', () => {
    expect(receiveBufferCap(4 << 20, '4194304\n')).toBeUndefined();
    expect(receiveBufferCap(4 << 20, undefined)).toBeUndefined();
    expect(receiveBufferCap(4 << 20, 'junk')).toBeUndefined();
  });
});
