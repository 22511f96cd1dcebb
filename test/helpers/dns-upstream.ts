/**
 * A scriptable upstream DNS server on loopback (UDP + TCP, same port) for forwarder tests.
 * `respond` decides per query: a reply Buffer, or null to stay silent.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { decodeMessage, encodeMessage, type DnsMessage } from '../../src/dns/codec.js';

export interface Received {
  transport: 'udp' | 'tcp';
  id: number;
  port: number;
  message: DnsMessage;
  raw: Buffer;
}

export type Respond = (q: Received, send: (reply: Buffer) => void, udp: dgram.Socket | undefined) => Buffer | null;

export interface Upstream {
  address: string;
  port: number;
  received: Received[];
  respond: Respond;
  close(): Promise<void>;
}

/** A reply for `q` with one A record (or whatever `edit` makes of it). */
export function answer(q: Received, edit: (m: DnsMessage) => void = () => {}): Buffer {
  const m: DnsMessage = {
    ...q.message,
    qr: true,
    ra: true,
    answers: [{ name: q.message.questions[0]!.name, type: 1, class: 1, ttl: 5, data: { kind: 'A', address: '192.0.2.1' } }],
  };
  edit(m);
  return encodeMessage(m);
}

export async function startUpstream(address = '127.0.0.1', respond: Respond = (q) => answer(q)): Promise<Upstream> {
  const udp = dgram.createSocket({ type: net.isIPv6(address) ? 'udp6' : 'udp4' });
  await new Promise<void>((resolve) => udp.bind(0, address, resolve));
  const port = udp.address().port;
  const tcp = net.createServer((sock) => {
    let buf = Buffer.alloc(0);
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const raw = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + raw.length);
        const q: Received = { transport: 'tcp', id: raw.readUInt16BE(0), port: sock.remotePort!, message: decodeMessage(raw), raw };
        up.received.push(q);
        const send = (reply: Buffer): void => {
          const len = Buffer.alloc(2);
          len.writeUInt16BE(reply.length);
          sock.write(Buffer.concat([len, reply]));
        };
        const reply = up.respond(q, send, undefined);
        if (reply) send(reply);
      }
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((resolve) => tcp.listen(port, address, resolve));
  const up: Upstream = {
    address,
    port: (tcp.address() as AddressInfo).port,
    received: [],
    respond,
    close: async () => {
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  };
  udp.on('message', (raw, rinfo) => {
    const q: Received = { transport: 'udp', id: raw.readUInt16BE(0), port: rinfo.port, message: decodeMessage(raw), raw };
    up.received.push(q);
    const send = (reply: Buffer): void => udp.send(reply, rinfo.port, rinfo.address);
    const reply = up.respond(q, send, udp);
    if (reply) send(reply);
  });
  return up;
}
