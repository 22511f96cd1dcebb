import type { PacketSocket } from '../native/index.js';

/**
 * Frames waiting to go out of one packet socket. Builders write straight into the queue's buffer
 * (no per-frame allocation) and everything queued during one receive batch leaves in one sendmmsg.
 */
export class TxQueue {
  readonly buffer: Buffer;
  private readonly meta: Uint32Array;
  private count = 0;
  private used = 0;
  /** Frames the kernel refused (device queue full after a short wait). */
  dropped = 0;
  sent = 0;

  constructor(
    private readonly socket: PacketSocket,
    capacity = 1 << 18,
    private readonly maxFrames = 256,
  ) {
    this.buffer = Buffer.allocUnsafe(capacity);
    this.meta = new Uint32Array(maxFrames * 2);
  }

  /** Offset where a frame of up to `maxLen` bytes may be written; follow with commit(len). */
  reserve(maxLen: number): number {
    if (this.used + maxLen > this.buffer.length || this.count === this.maxFrames) this.flush();
    return this.used;
  }

  commit(len: number): void {
    this.meta[this.count * 2] = this.used;
    this.meta[this.count * 2 + 1] = len;
    this.count++;
    this.used += (len + 7) & ~7;
  }

  get pending(): number {
    return this.count;
  }

  flush(): void {
    if (this.count === 0) return;
    const count = this.count;
    this.count = 0;
    this.used = 0;
    let sent = 0;
    try {
      sent = this.socket.send(this.buffer, this.meta, count);
    } catch {
      sent = 0;
    }
    this.sent += sent;
    this.dropped += count - sent;
  }
}
