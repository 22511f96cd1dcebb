import type { QuerySource } from './source.js';

/**
 * The contract between the DNS layer and the service layer. The DNS layer asks `Summoner` about
 * names; the service layer owns lifecycles, boot locks and idle tracking.
 */
export interface ServiceAnswer {
  service: string; // service name, for logs/metrics
  ipv4: readonly string[]; // A records (may be empty)
  ipv6: readonly string[]; // AAAA records (may be empty)
  ttl: number; // seconds
  /** Makes sure the service is up. `true` = answer now (ready, or booting with masking on).
   *  A promise resolves when the answer may go out (ready + response delay) and rejects on boot
   *  failure/timeout (=> SERVFAIL), or at once when the boot is refused (too many booting, or this
   *  client summons too fast). Called only for A/AAAA/ANY queries of the name. `source`: the
   *  querying client (valid during the call only); undefined when the caller has none. */
  ensureUp(source?: QuerySource): true | Promise<void>;
}

export interface Summoner {
  /** Exact configured name, lowercase, no trailing dot. */
  lookup(name: string): ServiceAnswer | undefined;
  /** The zone (SOA owner) for a name inside one of our zones, else undefined. */
  zoneOf(name: string): string | undefined;
}

/** How a query reached us; labels metrics and decides whether an answer must fit a datagram. */
export type Transport = 'udp' | 'tcp';

/**
 * What the server calls per received message. A Buffer is the reply to send now, `null` means
 * send nothing (dropped), a Promise is a reply that comes later (summon or forward in flight).
 * `message` is valid only during the call (the batched UDP socket reuses its memory for the next
 * batch): a handler that answers later must copy what it keeps.
 */
export interface DnsHandler {
  /** `source`: the client (valid during the call only, like `message`); undefined for in-process callers. */
  handle(message: Buffer, transport: Transport, source?: QuerySource): Buffer | null | Promise<Buffer | null>;
}
