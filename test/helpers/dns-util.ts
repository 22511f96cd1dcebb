/** Small builders shared by the DNS unit and integration tests. */
import { encodeMessage, type DnsMessage, type Edns } from '../../src/dns/codec.js';

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
