/** Small builders shared by the DNS unit and integration tests. */
import { decodeMessage, encodeMessage, type DnsMessage, type Edns } from '../../src/dns/codec.js';
import type { Forwarder } from '../../src/dns/forwarder.js';

export function query(
  name: string,
  type: number,
  opts: { id?: number; rd?: boolean; cd?: boolean; edns?: Partial<Edns> | false; klass?: number; opcode?: number } = {},
): Buffer {
  const m: DnsMessage = {
    id: opts.id ?? 0x1234,
    qr: false,
    opcode: opts.opcode ?? 0,
    aa: false,
    tc: false,
    rd: opts.rd ?? true,
    ra: false,
    ad: false,
    cd: opts.cd ?? false,
    rcode: 0,
    questions: [{ name, type, class: opts.klass ?? 1 }],
    answers: [],
    authorities: [],
    additionals: [],
  };
  if (opts.edns) m.edns = { udpPayloadSize: 1232, version: 0, dnssecOk: false, options: [], ...opts.edns };
  return encodeMessage(m);
}

/** Hex string (spaces ignored) -> Buffer. */
export function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}

/** An in-memory stand-in for the UDP forwarder (the real one is tested against a real upstream). */
export function stubForwarder(answer: (q: DnsMessage) => DnsMessage | Error): Forwarder & { calls: number } {
  const f = {
    calls: 0,
    upstreams: [{ address: '192.0.2.53', port: 53 }],
    outstanding: () => 0,
    close: async () => {},
    forward: async (q: Buffer): Promise<Buffer> => {
      f.calls++;
      const out = answer(decodeMessage(q));
      if (out instanceof Error) throw out;
      return encodeMessage(out);
    },
  };
  return f;
}
