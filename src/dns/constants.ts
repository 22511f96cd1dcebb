/** DNS numbers used by the codec, handler and forwarder (RFC 1035, 3596, 6891). */
export const QType = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  OPT: 41,
  ANY: 255,
} as const;

export const QClass = {
  IN: 1,
  CH: 3,
  ANY: 255,
} as const;

export const Opcode = {
  QUERY: 0,
  IQUERY: 1,
  STATUS: 2,
  NOTIFY: 4,
  UPDATE: 5,
} as const;

export const Rcode = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  /** Extended rcode (needs OPT): upper 8 bits travel in the OPT TTL field. */
  BADVERS: 16,
} as const;

const RCODE_NAMES: Record<number, string> = {
  0: 'NOERROR',
  1: 'FORMERR',
  2: 'SERVFAIL',
  3: 'NXDOMAIN',
  4: 'NOTIMP',
  5: 'REFUSED',
  16: 'BADVERS',
};

export function rcodeName(rcode: number): string {
  return RCODE_NAMES[rcode] ?? `RCODE${rcode}`;
}

/** Header flag bits in the 16-bit flags word. */
export const Flag = {
  QR: 0x8000,
  AA: 0x0400,
  TC: 0x0200,
  RD: 0x0100,
  RA: 0x0080,
  AD: 0x0020,
  CD: 0x0010,
} as const;

export const HEADER_SIZE = 12;
/** Largest UDP answer without EDNS (RFC 1035 4.2.1). */
export const CLASSIC_UDP_SIZE = 512;
/** The payload size we advertise and cap UDP answers at (DNS flag day 2020). */
export const EDNS_UDP_SIZE = 1232;
export const MAX_NAME_WIRE_LENGTH = 255;
export const MAX_LABEL_LENGTH = 63;
export const MAX_MESSAGE_SIZE = 65535;
/** DO bit in the OPT TTL field (RFC 3225). */
export const EDNS_DO = 0x8000;
