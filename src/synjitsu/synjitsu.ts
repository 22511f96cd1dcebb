import type { BackendHandle } from '../backends/backend.js';
import { errorCode, errorMessage, JitsuError } from '../errors.js';
import type { Logger } from '../observe/log.js';
import type { MetricsRegistry } from '../observe/metrics.js';
import { loadNative, type RingOptions } from '../native/index.js';
import { answerArp } from './arp.js';
import { Capture } from './capture.js';
import type { MaskContext } from './context.js';
import { TcpDispatch } from './dispatch.js';
import { FlowBudget } from './flowtable.js';
import { LATE_HANDSHAKE_MS, RstGuard } from './guard.js';
import { Handover } from './handover.js';
import { Handshake } from './handshake.js';
import { KernelRelay } from './kernel-relay.js';
import { openHostPort, type HostPort } from './hostport.js';
import { resolveLimits, type SynjitsuLimits } from './limits.js';
import type { BootMasker, MaskTarget, RelayMode, SummonOnSyn } from './masker.js';
import { SynjitsuMetrics, type EventCounts } from './metrics.js';
import { RelayFilter } from './nft.js';
import { Parker } from './park.js';
import { formatMac, parseMac } from './pdu/ethernet.js';
import { Relay } from './relay.js';
import { ServiceTable } from './services.js';
import type { Service } from './state.js';
import { maskStrategy } from '../masking/registry.js';
import { Teardown } from './teardown.js';
import { TxQueue } from './tx.js';
import { Wire } from './wire.js';

/** Relayed flows idle past relayIdleMs, and boots past maxMaskMs, are looked for this often. */
const SWEEP_MS = 5000;

export interface SynjitsuOptions {
  /** Bridge the services and clients share; it is put in promiscuous mode. */
  iface: string;
  logger: Logger;
  metrics: MetricsRegistry;
  onSummon: SummonOnSyn;
  limits?: Partial<SynjitsuLimits>;
  ring?: RingOptions;
  /**
   * Mask the host's own connections too (default true): adds a veth port `<bridge>-sjp` to the
   * bridge (see hostport.ts) and watches the host's outgoing frames.
   */
  hostClients?: boolean;
  /**
   * Who translates handed-over connections (default 'kernel'). The kernel path needs Linux >= 6.6
   * (tcx) and a V3 ring; without them the daemon relays, and says why.
   */
  relay?: RelayMode;
}

/** Counters a test or the status page can read without parsing Prometheus text. */
export interface SynjitsuStats extends EventCounts {
  flows: number;
  parked: number;
  bufferedBytes: number;
  ringDrops: number;
  txDropped: number;
}

/** The masker the service lifecycle drives: one capture on one bridge, every strategy behind it. */
export class Synjitsu implements BootMasker {
  private readonly ctx: MaskContext;
  private readonly capture: Capture;
  private readonly guard: RstGuard;
  private readonly parker: Parker;
  private readonly teardown: Teardown;
  private readonly handover: Handover;
  private readonly services: ServiceTable;
  private readonly dispatch: TcpDispatch;
  private readonly sweepTimer: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly o: SynjitsuOptions,
    private readonly hostPort?: HostPort,
  ) {
    const limits = resolveLimits(o.limits);
    const relayFilter = new RelayFilter(o.iface, hostPort ? { bridgeMac: formatMac(hostPort.bridgeMac), portMac: formatMac(hostPort.mac) } : undefined);
    const metrics = new SynjitsuMetrics(o.metrics);
    const kernelRelay = this.openKernelRelay(limits);
    // The capture's callbacks run only from the event loop, once everything below is in place.
    try {
      this.capture = new Capture({
        iface: o.iface,
        ring: o.ring,
        hostPortMac: hostPort?.mac,
        logger: o.logger,
        counts: metrics.counts,
        watchedIps: () => this.services.watchedIps(),
        onTcp: (v) => this.dispatch.onTcp(v),
        onArp: (v) => answerArp(v, this.services.byIp, this.ctx.wire),
        afterBatch: () => this.ctx.wire.flush(),
        relayMark: kernelRelay ? loadNative().RELAY_MARK : undefined,
      });
    } catch (err) {
      kernelRelay?.close();
      throw err;
    }
    let wire: Wire;
    try {
      wire = new Wire(new TxQueue(this.capture.socket), hostPort, o.logger, kernelRelay);
    } catch (err) {
      this.capture.close();
      kernelRelay?.close();
      throw err;
    }
    this.ctx = {
      limits,
      budget: new FlowBudget(limits),
      metrics,
      wire,
      relayFilter,
      kernelRelay,
      logger: o.logger,
      refilter: () => this.refilter(),
      wholeRelayedFrames: (wanted) => this.capture.wholeRelayedFrames(wanted),
    };
    this.guard = new RstGuard(relayFilter, o.logger);
    this.parker = new Parker(this.ctx);
    this.teardown = new Teardown(this.ctx, this.parker);
    this.services = new ServiceTable(this.ctx, this.teardown);
    const relay = new Relay(this.ctx, this.teardown);
    this.handover = new Handover(this.ctx, this.teardown, relay);
    this.dispatch = new TcpDispatch({
      ctx: this.ctx,
      byIp: this.services.byIp,
      onSummon: o.onSummon,
      startMasking: (svc) => this.startMasking(svc),
      handshake: new Handshake(this.ctx, this.teardown, relay),
      handover: this.handover,
    });
    const budget = this.ctx.budget;
    metrics.gauges({
      flows: () => budget.flows,
      parked: () => budget.parked,
      bufferedBytes: () => budget.bufferedBytes,
      ringDrops: () => this.capture.ringDrops(),
      txDropped: () => wire.dropped(this.services.values()),
    });
    this.sweepTimer = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweepTimer.unref();
  }

  private openKernelRelay(limits: SynjitsuLimits): KernelRelay | undefined {
    const mode = this.o.relay ?? 'kernel';
    if (mode === 'daemon') return undefined;
    const why = this.o.ring?.version === 2 ? 'a V2 ring does not report which frames the kernel translated' : undefined;
    const opened = why ?? KernelRelay.open(limits.maxFlows);
    if (typeof opened === 'string') {
      this.o.logger.warn('synjitsu: handed-over connections are relayed by the daemon, not the kernel', { reason: opened, fix: 'Linux >= 6.6 (tcx) and CAP_BPF + CAP_NET_ADMIN' });
      return undefined;
    }
    this.o.logger.debug('synjitsu: handed-over connections are relayed in the kernel (tc program on each guest link)');
    return opened;
  }

  // ---- BootMasker -------------------------------------------------------------------------------

  configure(targets: readonly MaskTarget[]): void {
    try {
      const keep = new Set<string>();
      for (const t of targets) {
        keep.add(t.service);
        this.services.get(t);
      }
      this.services.retain(keep);
      this.refilter();
      if (targets.some((t) => maskStrategy(t.mask).holdsConnections)) {
        this.ctx.relayFilter.prepare().catch((err: unknown) => {
          this.o.logger.error('synjitsu: masking needs nftables (bridge family) to relay handed-over connections and hold back early RSTs', {
            error: errorMessage(err),
            fix: 'install nftables and load nf_tables / nft_chain_bridge',
          });
        });
      }
    } catch (err) {
      this.o.logger.error('synjitsu configure failed', { error: errorMessage(err) });
    }
  }

  booting(target: MaskTarget): void {
    const svc = this.services.get(target);
    if (!svc) return;
    svc.summoned = true;
    if (svc.phase !== 'booting') this.startMasking(svc);
  }

  private startMasking(svc: Service): void {
    svc.phase = 'booting';
    svc.maskingSince = Date.now();
    this.refilter();
    this.o.logger.debug('synjitsu masking', { service: svc.target.service, ip: svc.target.ip, mask: svc.target.mask });
    this.guard.hold(svc);
  }

  async ready(target: MaskTarget, handle: BackendHandle): Promise<void> {
    const svc = this.services.get(target);
    if (!svc) return;
    try {
      svc.phase = 'ready';
      svc.readyAt = Date.now();
      svc.primed.clear();
      if (handle.mac) {
        try {
          svc.guestMac = parseMac(handle.mac);
        } catch {
          /* keep the configured MAC */
        }
      }
      const t0 = process.hrtime.bigint();
      const held = svc.parked.size + svc.flows.size;
      this.ctx.wire.openLink(svc, handle.link);
      // Attaching takes an RCU grace period or two: start now, while the handover runs in the daemon.
      if (svc.flows.size > 0 && svc.linkName) this.ctx.kernelRelay?.attach(svc.linkName).catch(() => undefined);
      if (svc.parked.size > 0) await this.parker.replay(svc);
      if (svc.flows.size > 0) await this.handover.all(svc);
      if (held > 0) svc.m.readyToReplay.observe(Number(process.hrtime.bigint() - t0) / 1e9);
      // Lift the RST guard once late handshakes can no longer arrive; not now: spawning nft blocks
      // the loop for milliseconds, just when the guest's first answers need relaying.
      const readyAt = svc.readyAt;
      setTimeout(() => {
        if (svc.phase === 'ready' && svc.readyAt === readyAt) this.guard.lift(svc, 0);
        this.refilter();
      }, LATE_HANDSHAKE_MS).unref();
    } catch (err) {
      this.o.logger.error('synjitsu handover failed', { service: svc.target.service, error: errorMessage(err) });
    }
  }

  failed(target: MaskTarget, reason: string): void {
    const svc = this.services.get(target);
    if (!svc) return;
    this.o.logger.info('synjitsu resetting held connections: boot failed', {
      service: svc.target.service,
      reason,
      parked: svc.parked.size,
      flows: svc.flows.size,
    });
    this.teardown.resetAll(svc, 'boot-failed');
    svc.replayed.clear();
    this.ctx.wire.closeLink(svc);
    this.guard.lift(svc, 0);
    this.unwatch(svc);
  }

  stopped(target: MaskTarget): void {
    const svc = this.services.get(target);
    if (!svc) return;
    svc.replayed.clear();
    if (svc.phase === 'booting') {
      // A SYN summoned it again while it was stopping: what we hold is for the boot that follows;
      // what we relayed was the old guest's and ends with it.
      for (const flow of [...svc.flows.values()]) {
        if (flow.state === 'relay') this.teardown.resetFlow(flow, 'stopped');
        else if (flow.state !== 'buffering') this.teardown.dropFlow(flow, 'stopped');
      }
      this.ctx.wire.closeLink(svc);
      return;
    }
    this.teardown.resetAll(svc, 'stopped');
    this.ctx.wire.closeLink(svc);
    if (Date.now() - svc.readyAt < LATE_HANDSHAKE_MS) this.guard.lift(svc, 0);
    this.unwatch(svc);
  }

  /** Back to watching the IP for summon-on-SYN. */
  private unwatch(svc: Service): void {
    svc.phase = 'watched';
    svc.summoned = false;
    this.refilter();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweepTimer);
    for (const svc of this.services.values()) {
      this.teardown.resetAll(svc, 'shutdown');
      this.ctx.wire.closeLink(svc);
    }
    this.ctx.wire.flush();
    this.capture.close();
    this.ctx.wire.close();
    this.ctx.kernelRelay?.close();
    try {
      await this.ctx.relayFilter.close();
    } catch (err) {
      this.o.logger.warn('synjitsu: could not remove nft table', { error: errorMessage(err) });
    }
    await this.hostPort?.close();
  }

  stats(): SynjitsuStats {
    const budget = this.ctx.budget;
    return {
      flows: budget.flows,
      parked: budget.parked,
      bufferedBytes: budget.bufferedBytes,
      ...this.ctx.metrics.counts,
      ringDrops: this.capture.ringDrops(),
      txDropped: this.ctx.wire.dropped(this.services.values()),
    };
  }

  private refilter(): void {
    if (!this.closed) this.capture.refilter();
  }

  private sweep(): void {
    const now = Date.now();
    for (const svc of this.services.values()) {
      if (svc.phase === 'booting' && now - svc.maskingSince > this.ctx.limits.maxMaskMs && (svc.parked.size > 0 || svc.flows.size > 0)) {
        this.o.logger.warn('synjitsu: no ready() or failed() in time, resetting held connections', { service: svc.target.service });
        this.teardown.resetAll(svc, 'mask-timeout');
        this.guard.lift(svc, 0);
        svc.phase = 'watched';
        svc.summoned = false;
      }
      for (const flow of [...svc.flows.values()]) {
        if (flow.state === 'relay' && now - flow.lastSeen > this.ctx.limits.relayIdleMs) this.teardown.dropFlow(flow, 'idle');
      }
    }
  }
}

/** Opens the capture on `iface` and returns the masker the service lifecycle drives. */
export async function createSynjitsu(opts: SynjitsuOptions): Promise<Synjitsu> {
  let hostPort: HostPort | undefined;
  if (opts.hostClients !== false) {
    try {
      loadNative();
      hostPort = await openHostPort(opts.iface);
    } catch (err) {
      if (errorCode(err) === 'NATIVE_UNAVAILABLE') throw err;
      opts.logger.warn('synjitsu: the host\'s own connections will not be masked', { error: errorMessage(err) });
    }
  }
  try {
    return new Synjitsu(opts, hostPort);
  } catch (err) {
    await hostPort?.close();
    if (errorCode(err) === 'NATIVE_UNAVAILABLE') throw err;
    throw new JitsuError(
      'NETWORK_SETUP',
      `synjitsu cannot capture on "${opts.iface}": ${errorMessage(err)} (the bridge must exist and the daemon needs root or CAP_NET_RAW + CAP_NET_ADMIN)`,
      { iface: opts.iface },
      { cause: err },
    );
  }
}
