/**
 * Load generators run inside the rig's client netns: many concurrent HTTP connections (a tiny Node
 * client) and a bounded SYN flood (crafted frames from an AF_PACKET socket, Python stdlib only).
 * Both are capped in count and time.
 */
import type { SynjitsuRig } from './synjitsu-rig.js';

export interface ManyResult {
  ok: number;
  failed: number;
  errors: Record<string, number>;
  maxMs: number;
  elapsedMs: number;
}

/** Opens `count` connections at once (all in flight during the boot), each doing GET /; bounded by timeoutMs. */
export async function manyConnections(rig: SynjitsuRig, count: number, timeoutMs: number): Promise<ManyResult> {
  const script = `
    const net = require('node:net');
    const count = ${count}, started = Date.now();
    let ok = 0, failed = 0, done = 0, maxMs = 0; const errors = {};
    const finish = () => { process.stdout.write(JSON.stringify({ ok, failed, errors, maxMs, elapsedMs: Date.now() - started })); process.exit(0); };
    setTimeout(() => { failed += count - done; errors.timeout = count - done; finish(); }, ${timeoutMs});
    for (let i = 0; i < count; i++) {
      const t0 = Date.now(); let body = ''; let settled = false;
      const s = net.connect({ host: '${rig.vmIp}', port: 80 });
      const end = (err) => {
        if (settled) return; settled = true; done++;
        if (!err && body.includes('hello from vm')) ok++; else { failed++; const k = err ? (err.code || err.message) : 'bad-body'; errors[k] = (errors[k] || 0) + 1; }
        maxMs = Math.max(maxMs, Date.now() - t0);
        if (done === count) finish();
      };
      s.setEncoding('utf8');
      s.on('connect', () => s.write('GET /' + i + ' HTTP/1.1\\r\\nHost: vm\\r\\nConnection: close\\r\\n\\r\\n'));
      s.on('data', (d) => { body += d; });
      s.on('end', () => end()); s.on('error', (e) => end(e));
    }
  `;
  const r = await rig.inClient(process.execPath, ['-e', script], timeoutMs + 10_000);
  if (r.code !== 0) throw new Error(`load client failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as ManyResult;
}

const FLOOD = `
import socket, struct, random, sys, time
iface, smac, dmac, sip, dip, dport, count, seconds = sys.argv[1:9]
count, seconds, dport = int(count), float(seconds), int(dport)
mac = lambda m: bytes(int(x, 16) for x in m.split(':'))
ip = lambda a: socket.inet_aton(a)
def csum(b):
    if len(b) % 2: b += b'\\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
eth = mac(dmac) + mac(smac) + b'\\x08\\x00'
src, dst = ip(sip), ip(dip)
deadline = time.time() + seconds
sent = 0
rnd = random.Random(7)
while sent < count and time.time() < deadline:
    sport = rnd.randint(1024, 65535); seq = rnd.getrandbits(32)
    tcp = struct.pack('!HHIIBBHHH', sport, dport, seq, 0, 0x60, 0x02, 64240, 0, 0) + b'\\x02\\x04\\x05\\xb4'
    c = csum(src + dst + struct.pack('!BBH', 0, 6, len(tcp)) + tcp)
    tcp = tcp[:16] + struct.pack('!H', c) + tcp[18:]
    iph = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp), sent & 0xffff, 0, 64, 6, 0, src, dst)
    iph = iph[:10] + struct.pack('!H', csum(iph)) + iph[12:]
    try:
        s.send(eth + iph + tcp); sent += 1
    except OSError:
        time.sleep(0.001)
print(sent)
`;

/** Sends up to `count` crafted SYNs (random source ports) from the client netns; returns how many went out. */
export async function synFlood(rig: SynjitsuRig, count: number, seconds: number, port = 80): Promise<number> {
  const r = await rig.inClient(
    'python3',
    ['-c', FLOOD, 'eth0', rig.clientMac, rig.vmMac, rig.clientIp, rig.vmIp, String(port), String(count), String(seconds)],
    (seconds + 30) * 1000,
  );
  if (r.code !== 0) throw new Error(`flood failed: ${r.stderr}`);
  return Number(r.stdout.trim());
}

/** Sequential connect() latencies (ms) from the client netns: each connection is reset right away. */
export async function connectLatencies(rig: SynjitsuRig, count: number): Promise<number[]> {
  const script = `
    const net = require('node:net');
    const out = [];
    (async () => {
      for (let i = 0; i < ${count}; i++) {
        const t0 = process.hrtime.bigint();
        await new Promise((resolve, reject) => {
          const s = net.connect({ host: '${rig.vmIp}', port: 80 }, () => {
            out.push(Number(process.hrtime.bigint() - t0) / 1e6);
            s.resetAndDestroy();
            resolve();
          });
          s.on('error', reject);
        });
        await new Promise((r) => setTimeout(r, 20));
      }
      process.stdout.write(JSON.stringify(out));
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const r = await rig.inClient(process.execPath, ['-e', script], 60_000);
  if (r.code !== 0) throw new Error(`latency client failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as number[];
}

export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export interface FirstByte {
  /** Wall-clock ms (performance.timeOrigin + now) of connect() start, connect done, first response byte. */
  start: number;
  connected: number;
  firstByte: number;
}

/** One GET from the client netns with wall-clock timestamps comparable to the test process's. */
export async function timedGet(rig: SynjitsuRig): Promise<FirstByte> {
  const script = `
    const now = () => performance.timeOrigin + performance.now();
    const out = { start: now(), connected: 0, firstByte: 0 };
    const s = require('node:net').connect({ host: '${rig.vmIp}', port: 80 }, () => {
      out.connected = now();
      s.write('GET / HTTP/1.1\\r\\nHost: vm\\r\\nConnection: close\\r\\n\\r\\n');
    });
    s.once('data', () => { out.firstByte = now(); process.stdout.write(JSON.stringify(out)); s.destroy(); });
    s.on('error', (e) => { console.error(e.message); process.exit(1); });
    setTimeout(() => process.exit(2), 10000).unref();`;
  const r = await rig.inClient(process.execPath, ['-e', script], 15_000);
  if (r.code !== 0) throw new Error(`timed client failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as FirstByte;
}
