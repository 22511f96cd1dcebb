/**
 * The measuring client. Runs inside a client network namespace attached to the daemon's bridge (so its
 * TCP counters in /proc/net are its own), reads one JSON command per stdin line and answers one JSON
 * line per command:
 *   {"op":"firstbyte","dns":"10.205.2.1","dnsPort":P,"name":"x.jt6.test","port":80}
 *     -> DNS A query, connect to the answer, send an HTTP GET, time to the first response byte.
 *   {"op":"hold","dns":...,"name":...,"port":80,"count":10000,"timeoutMs":60000}
 *     -> one DNS query, then `count` connections opened at once; each sends a GET and waits for its
 *        first byte; reports how many got one, and the spread of their times.
 * Every answer carries the deltas of the namespace's TCP SYN-retransmission and retransmitted-segment
 * counters over the command.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import { aQuery, parseAAnswer } from '../lib/net.js';

interface Command {
  op: 'firstbyte' | 'hold' | 'resolve-many';
  names?: string[];
  dns: string;
  dnsPort: number;
  name: string;
  port: number;
  count?: number;
  timeoutMs?: number;
}

function counter(file: string, prefix: string, field: string): number {
  const lines = readFileSync(file, 'latin1').split('\n').filter((l) => l.startsWith(prefix + ':'));
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const keys = lines[i]!.split(/\s+/);
    const values = lines[i + 1]!.split(/\s+/);
    const k = keys.indexOf(field);
    if (k > 0) return Number(values[k]);
  }
  return 0;
}

function tcpCounters(): { synRetrans: number; retransSegs: number } {
  return {
    synRetrans: counter('/proc/net/netstat', 'TcpExt', 'TCPSynRetrans'),
    retransSegs: counter('/proc/net/snmp', 'Tcp', 'RetransSegs'),
  };
}

function resolve(cmd: Command, timeoutMs: number): Promise<string> {
  return new Promise((ok, fail) => {
    const sock = dgram.createSocket('udp4');
    const id = (Math.random() * 0xffff) | 0;
    const timer = setTimeout(() => {
      sock.close();
      fail(new Error(`no DNS answer for ${cmd.name} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('message', (msg) => {
      if (msg.length < 12 || msg.readUInt16BE(0) !== id) return;
      clearTimeout(timer);
      sock.close();
      const a = parseAAnswer(msg);
      if (a.rcode !== 0 || a.addresses.length === 0) fail(new Error(`DNS answer for ${cmd.name}: rcode ${a.rcode}, ${a.addresses.length} addresses`));
      else ok(a.addresses[0]!);
    });
    sock.send(aQuery(cmd.name, id), cmd.dnsPort, cmd.dns);
  });
}

const REQUEST = Buffer.from('GET / HTTP/1.0\r\nHost: bench\r\n\r\n');

/** Connect, send a GET, resolve with [connect ms, first byte ms] measured from `t0`. */
function firstByte(ip: string, port: number, t0: number, timeoutMs: number): Promise<[number, number]> {
  return new Promise((ok, fail) => {
    let connected = 0;
    const sock = net.connect({ host: ip, port, noDelay: true });
    const timer = setTimeout(() => {
      sock.destroy();
      fail(new Error(`no first byte from ${ip}:${port} within ${timeoutMs} ms (connected: ${connected > 0})`));
    }, timeoutMs);
    sock.once('connect', () => {
      connected = performance.now() - t0;
      sock.write(REQUEST);
    });
    sock.once('data', () => {
      const fb = performance.now() - t0;
      clearTimeout(timer);
      sock.destroy();
      ok([connected, fb]);
    });
    sock.once('error', (err) => {
      clearTimeout(timer);
      sock.destroy();
      fail(err);
    });
    sock.once('end', () => {
      clearTimeout(timer);
      fail(new Error(`connection to ${ip}:${port} closed before any byte`));
    });
  });
}

async function runFirstByte(cmd: Command): Promise<Record<string, unknown>> {
  const timeoutMs = cmd.timeoutMs ?? 60_000;
  const t0 = performance.now();
  const ip = await resolve(cmd, timeoutMs);
  const dnsMs = performance.now() - t0;
  const [connectMs, firstByteMs] = await firstByte(ip, cmd.port, t0, timeoutMs);
  return { ip, dnsMs, connectMs, firstByteMs };
}

async function runHold(cmd: Command): Promise<Record<string, unknown>> {
  const count = cmd.count ?? 1000;
  const timeoutMs = cmd.timeoutMs ?? 60_000;
  const t0 = performance.now();
  const ip = await resolve(cmd, timeoutMs);
  const dnsMs = performance.now() - t0;
  const results = await Promise.allSettled(Array.from({ length: count }, () => firstByte(ip, cmd.port, t0, timeoutMs)));
  const times: number[] = [];
  const errors = new Map<string, number>();
  for (const r of results) {
    if (r.status === 'fulfilled') times.push(r.value[1]);
    else {
      const key = String((r.reason as Error).message ?? r.reason).replace(/\d+/g, 'N').slice(0, 80);
      errors.set(key, (errors.get(key) ?? 0) + 1);
    }
  }
  return { ip, dnsMs, served: times.length, failed: count - times.length, errors: Object.fromEntries(errors), firstByteMs: times };
}

/** Resolves every name at once (each query summons its service); answer times from the burst start. */
async function runResolveMany(cmd: Command): Promise<Record<string, unknown>> {
  const timeoutMs = cmd.timeoutMs ?? 60_000;
  const t0 = performance.now();
  const settled = await Promise.allSettled(
    (cmd.names ?? []).map(async (name) => {
      await resolve({ ...cmd, name }, timeoutMs);
      return performance.now() - t0;
    }),
  );
  const times = settled.filter((r): r is PromiseFulfilledResult<number> => r.status === 'fulfilled').map((r) => r.value);
  const errors = settled.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => String((r.reason as Error).message ?? r.reason));
  return { answerMs: times, failed: errors.length, errors: errors.slice(0, 3), totalMs: performance.now() - t0 };
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  void (async () => {
    const before = tcpCounters();
    let reply: Record<string, unknown>;
    try {
      const cmd = JSON.parse(line) as Command;
      reply = { ok: true, ...(cmd.op === 'hold' ? await runHold(cmd) : cmd.op === 'resolve-many' ? await runResolveMany(cmd) : await runFirstByte(cmd)) };
    } catch (err) {
      reply = { ok: false, error: err instanceof Error ? err.message : String(err) };
    }
    const after = tcpCounters();
    reply['synRetrans'] = after.synRetrans - before.synRetrans;
    reply['retransSegs'] = after.retransSegs - before.retransSegs;
    process.stdout.write(JSON.stringify(reply) + '\n');
  })();
});
rl.on('close', () => process.exit(0));
process.stdout.write('probe-client ready\n');
