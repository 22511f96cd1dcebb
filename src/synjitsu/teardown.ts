import { errorMessage } from '../errors.js';
import type { MaskContext } from './context.js';
import { endpointKey, seq } from './flowtable.js';
import type { Parker } from './park.js';
import type { Flow, Service } from './state.js';

/** After both sides closed, how long a relayed flow still translates stragglers (final ACKs, retransmits). */
const LINGER_MS = 3000;

/** Ends connections we hold: gracefully after a relayed close, or with an RST to the client. */
export class Teardown {
  constructor(
    private readonly ctx: MaskContext,
    private readonly parker: Parker,
  ) {}

  finish(flow: Flow): void {
    if (flow.state === 'closing') return;
    flow.state = 'closing';
    clearTimeout(flow.timer);
    flow.timer = setTimeout(() => this.dropFlow(flow, undefined), LINGER_MS);
    flow.timer.unref();
  }

  resetFlow(flow: Flow, reason: string): void {
    // A relayed flow has moved on from our handshake: the client expects the relay's next number.
    const seqNo = flow.state === 'relay' && flow.toClientNxt !== 0 ? flow.toClientNxt : seq.add(flow.ourIsn, 1);
    this.ctx.wire.sendRst(flow.svc, flow.clientMac, flow.clientIp, flow.clientPort, flow.svcPort, seqNo, flow.rcvNxt);
    this.ctx.metrics.reset(flow.svc.target.service, reason);
    this.dropFlow(flow, undefined);
  }

  /** Forgets a flow and returns its memory; `reason` counts it as refused-after-admission when set. */
  dropFlow(flow: Flow, reason: string | undefined): void {
    const { budget, logger } = this.ctx;
    const key = endpointKey(flow.clientIp, flow.clientPort);
    if (flow.svc.flows.get(key) !== flow) return;
    flow.svc.flows.delete(key);
    clearTimeout(flow.timer);
    flow.timer = undefined;
    budget.releaseFlow();
    if (flow.svc.flows.size === 0) this.ctx.refilter();
    // Buffered bytes are returned once the guest acknowledged the replay (flow.replay cleared then).
    const stillHeld = flow.state === 'buffering' || flow.state === 'syn-sent' || flow.replay !== undefined;
    if (stillHeld) budget.give(flow.buffered);
    flow.chunks = [];
    flow.replay = undefined;
    flow.state = 'closing';
    if (reason) logger.debug('synjitsu flow dropped', { service: flow.svc.target.service, reason });
    if (flow.kernel !== 'off') for (const t of flow.tuples()) this.ctx.kernelRelay?.delete(t);
    this.ctx.relayFilter.remove(flow.tuples()).catch((err: unknown) => {
      logger.warn('synjitsu: nft delete failed', { error: errorMessage(err) });
    });
  }

  /**
   * Resets every connection held or relayed for `svc` (its guest is gone or going: a relayed client
   * would otherwise wait on a black hole) and refuses its parked SYNs. Flows already closing are
   * only forgotten.
   */
  resetAll(svc: Service, reason: string): void {
    for (const flow of [...svc.flows.values()]) {
      if (flow.state === 'closing') this.dropFlow(flow, reason);
      else this.resetFlow(flow, reason);
    }
    this.parker.refuseAll(svc, reason);
    this.ctx.wire.flush();
  }
}
