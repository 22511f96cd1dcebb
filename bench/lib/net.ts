/** Small network helpers for benchmarks: free ports, a one-shot DNS A query, HTTP-ish first byte. */
import dgram from 'node:dgram';
import net from 'node:net';

/** A port free for both UDP and TCP on 127.0.0.1 right now (the caller binds it soon after). */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const udpFree = await new Promise<boolean>((resolve) => {
      const u = dgram.createSocket('udp4');
      u.once('error', () => resolve(false));
      u.bind(port, '127.0.0.1', () => u.close(() => resolve(true)));
    });
    if (udpFree) return port;
  }
  throw new Error('no free port found on 127.0.0.1');
}

/** Wire bytes of an A query for `name` (RD set, no EDNS). */
export function aQuery(name: string, id: number): Buffer {
  const labels = name.split('.').filter(Boolean);
  const len = 12 + labels.reduce((s, l) => s + 1 + l.length, 0) + 1 + 4;
  const b = Buffer.alloc(len);
  b.writeUInt16BE(id & 0xffff, 0);
  b.writeUInt16BE(0x0100, 2);
  b.writeUInt16BE(1, 4);
  let p = 12;
  for (const l of labels) {
    b[p++] = l.length;
    p += b.write(l, p, 'ascii');
  }
  b[p++] = 0;
  b.writeUInt16BE(1, p);
  b.writeUInt16BE(1, p + 2);
  return b;
}

export interface DnsAnswer {
  rcode: number;
  /** IPv4 addresses of the A records in the answer section. */
  addresses: string[];
}

/** Reads the A records of a reply (enough for our own answers; compression pointers skipped). */
export function parseAAnswer(b: Buffer): DnsAnswer {
  const rcode = b[3]! & 0xf;
  const ancount = b.readUInt16BE(6);
  let p = 12;
  const skipName = (): void => {
    for (;;) {
      const l = b[p]!;
      if (l === 0) {
        p++;
        return;
      }
      if ((l & 0xc0) === 0xc0) {
        p += 2;
        return;
      }
      p += 1 + l;
    }
  };
  skipName();
  p += 4;
  const addresses: string[] = [];
  for (let i = 0; i < ancount && p < b.length; i++) {
    skipName();
    const type = b.readUInt16BE(p);
    const rdlen = b.readUInt16BE(p + 8);
    if (type === 1 && rdlen === 4) addresses.push(`${b[p + 10]}.${b[p + 11]}.${b[p + 12]}.${b[p + 13]}`);
    p += 10 + rdlen;
  }
  return { rcode, addresses };
}

/** One UDP query, one answer (or a timeout rejection). */
export function queryA(server: string, port: number, name: string, timeoutMs: number): Promise<DnsAnswer> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket(net.isIPv6(server) ? 'udp6' : 'udp4');
    const id = (Math.random() * 0xffff) | 0;
    const timer = setTimeout(() => {
      sock.close();
      reject(new Error(`no DNS answer for ${name} from ${server}:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('message', (msg) => {
      if (msg.length < 12 || msg.readUInt16BE(0) !== id) return;
      clearTimeout(timer);
      sock.close();
      resolve(parseAAnswer(msg));
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      sock.close();
      reject(err);
    });
    sock.send(aQuery(name, id), port, server);
  });
}
