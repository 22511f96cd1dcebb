/** Ethernet II framing: addresses are 6-byte runs inside frames; strings only at the edges (config, logs). */
export const ETH_HEADER = 14;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const BROADCAST_MAC = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

/** Parses `aa:bb:cc:dd:ee:ff` into 6 bytes; throws with the offending text on bad input. */
export function parseMac(text: string): Buffer {
  const parts = text.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) {
    throw new RangeError(`bad MAC address "${text}": expected six hex bytes like 02:00:00:00:00:01`);
  }
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

export function formatMac(buf: Uint8Array, off = 0): string {
  let out = '';
  for (let i = 0; i < 6; i++) out += (i ? ':' : '') + buf[off + i]!.toString(16).padStart(2, '0');
  return out;
}

export function etherType(frame: Buffer, off: number): number {
  return frame.readUInt16BE(off + 12);
}

/** Writes dst, src and type; returns the offset of the payload. */
export function writeEthernet(out: Buffer, off: number, dst: Uint8Array, src: Uint8Array, type: number): number {
  out.set(dst.subarray(0, 6), off);
  out.set(src.subarray(0, 6), off + 6);
  out.writeUInt16BE(type, off + 12);
  return off + ETH_HEADER;
}

export function macEquals(a: Uint8Array, aOff: number, b: Uint8Array, bOff = 0): boolean {
  for (let i = 0; i < 6; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}
