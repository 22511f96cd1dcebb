import { errorMessage } from '../errors.js';
import type { Logger } from '../observe/log.js';
import type { RelayFilter } from './nft.js';
import type { Service } from './state.js';

/**
 * After ready(), handshakes we answered just before may still complete (client ACK in flight, or a
 * retransmitted first segment): for this long they are still accepted and handed over, and the
 * guest's RSTs to them are dropped at the bridge.
 */
export const LATE_HANDSHAKE_MS = 3000;
/** Longest boot the RST guard covers before it lapses on its own (a lost ready()/failed()). */
const GUARD_MAX_MS = 3600_000;

/**
 * The RST guard: from boot start until LATE_HANDSHAKE_MS after ready() the bridge drops the guest's
 * RSTs, so a guest whose network is up before its service listens refuses no one we hold.
 */
export class RstGuard {
  constructor(
    private readonly filter: RelayFilter,
    private readonly logger: Logger,
  ) {}

  hold(svc: Service): void {
    if (!svc.strategy.holdsConnections) return;
    // After this turn's frames are out: spawning nft blocks the loop for a few ms (fork).
    setImmediate(() => {
      if (svc.phase !== 'booting') return;
      this.filter.guardRsts(svc.ip, GUARD_MAX_MS).catch((err: unknown) => {
        this.logger.warn('synjitsu: cannot install the RST guard', { service: svc.target.service, error: errorMessage(err) });
      });
    });
  }

  /** Lifts the guard `afterMs` from now (0: at once). */
  lift(svc: Service, afterMs: number): void {
    if (!svc.strategy.holdsConnections) return;
    const done = afterMs > 0 ? this.filter.guardRsts(svc.ip, afterMs) : this.filter.unguard(svc.ip);
    done.catch((err: unknown) => {
      this.logger.warn('synjitsu: cannot update the RST guard', { service: svc.target.service, error: errorMessage(err) });
    });
  }
}
