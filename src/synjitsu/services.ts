import { errorMessage } from '../errors.js';
import type { MaskContext } from './context.js';
import { LATE_HANDSHAKE_MS } from './guard.js';
import type { MaskTarget } from './masker.js';
import { parseMac } from './pdu/ethernet.js';
import { parseIpv4 } from './pdu/ipv4.js';
import { newService, type Service } from './state.js';
import type { Teardown } from './teardown.js';

/** The services Synjitsu watches, by name (lifecycle calls) and by IP (captured frames). */
export class ServiceTable {
  readonly byIp = new Map<number, Service>();
  readonly byName = new Map<string, Service>();

  constructor(
    private readonly ctx: MaskContext,
    private readonly teardown: Teardown,
  ) {}

  /** The service for `t`, created or (when its IP or MAC changed) recreated; undefined if it cannot be masked. */
  get(t: MaskTarget): Service | undefined {
    const existing = this.byName.get(t.service);
    if (existing && existing.target.ip === t.ip && existing.target.mac === t.mac) {
      existing.target = t;
      return existing;
    }
    const logger = this.ctx.logger;
    if (t.ip.includes(':')) {
      logger.warn('synjitsu masks IPv4 services only; this one is not masked', { service: t.service, ip: t.ip });
      return undefined;
    }
    let ip: number;
    let mac: Buffer;
    try {
      ip = parseIpv4(t.ip);
      mac = parseMac(t.mac);
    } catch (err) {
      logger.warn('synjitsu cannot mask service', { service: t.service, error: errorMessage(err) });
      return undefined;
    }
    if (existing) {
      this.teardown.resetAll(existing, 'reconfigured');
      this.ctx.wire.closeLink(existing);
      this.byIp.delete(existing.ip);
    }
    const svc = newService(t, ip, mac, existing?.phase === 'ready' ? 'ready' : 'watched', this.ctx.metrics.forService(t.service));
    this.byName.set(t.service, svc);
    this.byIp.set(ip, svc);
    this.ctx.refilter();
    return svc;
  }

  /** Forgets every service not in `keep`, resetting what was held for it. */
  retain(keep: ReadonlySet<string>): void {
    for (const [name, svc] of this.byName) {
      if (keep.has(name)) continue;
      this.teardown.resetAll(svc, 'unconfigured');
      this.ctx.wire.closeLink(svc);
      this.byName.delete(name);
      this.byIp.delete(svc.ip);
    }
  }

  values(): IterableIterator<Service> {
    return this.byName.values();
  }

  /**
   * What the capture must take: ARP and TCP for services stopped or booting, and for ready ones only
   * while they still have relayed or pending connections. A running service's traffic is never
   * copied to JS for nothing.
   */
  watchedIps(): number[] {
    const now = Date.now();
    const ips: number[] = [];
    for (const svc of this.byName.values()) {
      if (svc.phase !== 'ready' || svc.flows.size > 0 || svc.replayed.size > 0 || now - svc.readyAt < LATE_HANDSHAKE_MS) ips.push(svc.ip);
    }
    return ips;
  }
}
