/** Internet checksum (RFC 1071) helpers. Sums are kept unfolded until `fold` so pieces can be chained. */

/** Adds the 16-bit big-endian words of buf[start, end) to `sum` (odd tail padded with zero). */
export function sum16(buf: Uint8Array, start: number, end: number, sum = 0): number {
  let i = start;
  // Summing 32-bit chunks into a float is exact until 2^53; fold before that would matter (64 KiB max here).
  for (; i + 1 < end; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if (i < end) sum += buf[i]! << 8;
  return sum;
}

/** Folds a running sum into a 16-bit one's-complement checksum. */
export function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

/**
 * Incremental update (RFC 1624, eqn. 3) of a checksum when a 32-bit field changes from `oldValue`
 * to `newValue`: avoids re-summing a full segment when only seq/ack are rewritten.
 */
export function adjust32(checksum: number, oldValue: number, newValue: number): number {
  let sum = ~checksum & 0xffff;
  sum += ~(oldValue >>> 16) & 0xffff;
  sum += ~oldValue & 0xffff;
  sum += (newValue >>> 16) & 0xffff;
  sum += newValue & 0xffff;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** Same as adjust32 for a 16-bit field. */
export function adjust16(checksum: number, oldValue: number, newValue: number): number {
  let sum = ~checksum & 0xffff;
  sum += ~oldValue & 0xffff;
  sum += newValue & 0xffff;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}
