import type { BackendHandle } from '../backends/backend.js';
import { errorCode, errorMessage, JitsuError } from '../errors.js';
import type { Logger } from '../observe/log.js';
import type { CounterChild, MetricsRegistry } from '../observe/metrics.js';
import { FRAME_TRUNCATED, loadNative, type PacketSocket, type RingOptions } from '../native/index.js';
import { watchFilter } from './bpf.js';
import { SynCookies } from './cookies.js';
import { endpointKey, FlowBudget, seq, type RefuseReason } from './flowtable.js';
import { resolveLimits, type SynjitsuLimits } from './limits.js';
import type { BootMasker, MaskTarget, SummonOnSyn } from './masker.js';
import { openHostPort, type HostPort } from './hostport.js';
import { RelayFilter } from './nft.js';
import { ARP_REQUEST, arp, writeArpReply, writeArpRequest } from './pdu/arp.js';
import { formatMac, macEquals, parseMac } from './pdu/ethernet.js';
import { FRAME_ARP, FRAME_TCP, FrameView } from './pdu/frame.js';
import { formatIpv4, parseIpv4 } from './pdu/ipv4.js';
import { parseTcpOptions, setTcpChecksum, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TcpOptions, writeTcpFrame, type SegmentSpec } from './pdu/tcp.js';
import { Flow, OUR_WSCALE, serviceMetrics, type Service } from './state.js';
import { TxQueue } from './tx.js';

/** MSS we advertise to clients: Ethernet MTU 1500. */
const OUR_MSS = 1460;
const MAX_FRAME = 1514 + 64;
/** Parked SYNs replayed per event-loop turn: a veth's backlog (netdev_max_backlog) holds ~1000 frames. */
const REPLAY_BATCH = 128;
/**
 * Resend schedule for SYNs handed to a guest that has just come up: its first frames are often
 * lost (link still settling, neighbour entry incomplete), and its own SYN-ACK retransmit waits 1 s.
 * A duplicate SYN makes Linux resend its SYN-ACK at once (rate-limited to one per 500 ms).
 */
const GUEST_SYN_RESEND_MS: readonly number[] = [30, 500, 1000, 2000];
/**
 * Intervals between resends of replayed (park) SYNs the guest has not answered with a SYN-ACK: also
 * covers a guest whose network is up before its service listens (it answers RST, which the RST guard
 * keeps from the client, and a later resend finds the listener). Ends inside LATE_HANDSHAKE_MS.
 */
const PARK_RESEND_MS: readonly number[] = [30, 470, 500, 500, 500, 500];
/** A guest that refused a handed-over SYN (not listening yet) gets it again this much later. */
const REFUSED_RETRY_MS = 100;
const REPLAY_RTO_MS = 300;
const REPLAY_MAX_TRIES = 10;
const LINGER_MS = 3000;
const SWEEP_MS = 5000;
/**
 * After ready(), handshakes we answered just before may still complete (client ACK in flight, or a
 * retransmitted first segment): for this long they are still accepted and handed over, and the
 * guest's RSTs to them are dropped at the bridge.
 */
const LATE_HANDSHAKE_MS = 3000;
/** Longest boot the RST guard covers before it lapses on its own (a lost ready()/failed()). */
const GUARD_MAX_MS = 3600_000;

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
}

/** Counters a test or the status page can read without parsing Prometheus text. */
export interface SynjitsuStats {
  flows: number;
  parked: number;
  bufferedBytes: number;
  synsSeen: number;
  cookiesSent: number;
  invalidCookies: number;
  refused: number;
  handedOver: number;
  reset: number;
  ringDrops: number;
  txDropped: number;
  /** Frames larger than a ring slot, ignored. */
  truncated: number;
}

export class Synjitsu implements BootMasker {
  private readonly limits: SynjitsuLimits;
  private readonly budget: FlowBudget;
  private readonly cookies = new SynCookies();
  private readonly view = new FrameView();
  private readonly opts = new TcpOptions();
  private readonly seg: SegmentSpec;
  private readonly byIp = new Map<number, Service>();
  private readonly byName = new Map<string, Service>();
  private readonly socket: PacketSocket;
  private readonly tx: TxQueue;
  private readonly rxData: Buffer;
  private readonly rxMeta: Uint32Array;
  private readonly relayFilter: RelayFilter;
  private readonly dirtyQueues = new Set<TxQueue>();
  private readonly sweepTimer: NodeJS.Timeout;
  private closed = false;
  private readonly counters = { synsSeen: 0, cookiesSent: 0, invalidCookies: 0, refused: 0, handedOver: 0, reset: 0, truncated: 0 };
  private readonly refusedCounter;
  private readonly resetCounter;
  private readonly invalidCookieCounter: CounterChild;
  private readonly cookieCounter: CounterChild;

  private readonly hostTx: TxQueue | undefined;
  private readonly hostSocket: PacketSocket | undefined;

  constructor(
    private readonly o: SynjitsuOptions,
    private readonly hostPort?: HostPort,
  ) {
    this.limits = resolveLimits(o.limits);
    this.budget = new FlowBudget(this.limits);
    this.relayFilter = new RelayFilter(o.iface, hostPort ? { bridgeMac: formatMac(hostPort.bridgeMac), portMac: formatMac(hostPort.mac) } : undefined);
    const native = loadNative();
    if (hostPort) {
      this.hostSocket = new native.PacketSocket({ iface: hostPort.name });
      this.hostTx = new TxQueue(this.hostSocket, 1 << 18);
    }
    this.rxData = Buffer.allocUnsafe(1 << 20);
    this.rxMeta = new Uint32Array(4096 * 3);
    this.socket = new native.PacketSocket({
      iface: o.iface,
      receive: true,
      promisc: true,
      // The host's own frames (it is a client too) are outgoing on the bridge.
      ignoreOutgoing: !hostPort,
      filter: watchFilter([]),
      ...(o.ring ? { ring: o.ring } : {}),
      data: this.rxData,
      meta: this.rxMeta,
      onBatch: (count) => this.onBatch(count),
    });
    this.tx = new TxQueue(this.socket);
    const zero = Buffer.alloc(6);
    this.seg = { srcMac: zero, dstMac: zero, srcIp: 0, dstIp: 0, srcPort: 0, dstPort: 0, seq: 0, ack: 0, flags: 0, window: 0 };

    const m = o.metrics;
    this.refusedCounter = m.counter('synjitsu_connections_refused_total', 'Connections or SYNs not held, by reason');
    this.resetCounter = m.counter('synjitsu_connections_reset_total', 'Held connections reset (RST sent to the client), by reason');
    this.invalidCookieCounter = m.counter('synjitsu_invalid_cookies_total', 'ACKs whose SYN cookie did not verify').labels();
    this.cookieCounter = m.counter('synjitsu_syn_cookies_total', 'SYN-ACKs sent with a SYN cookie (no state kept)').labels();
    m.gauge('synjitsu_flows', 'Handshaken connections held (buffering or relayed)').labels().collect = () => this.budget.flows;
    m.gauge('synjitsu_parked_syns', 'SYNs currently parked').labels().collect = () => this.budget.parked;
    m.gauge('synjitsu_buffered_bytes', 'Client bytes currently buffered').labels().collect = () => this.budget.bufferedBytes;
    m.gauge('synjitsu_ring_drops', 'Frames the kernel dropped because the receive ring was full').labels().collect = () =>
      this.socket.stats().drops;
    m.gauge('synjitsu_tx_dropped', 'Frames the kernel refused to send').labels().collect = () => this.txDropped();
    m.gauge('synjitsu_truncated_frames', 'Captured frames larger than a ring slot (ignored; the sender retransmits)').labels().collect = () =>
      this.counters.truncated;

    this.sweepTimer = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweepTimer.unref();
  }

  // ---- BootMasker -------------------------------------------------------------------------------

  configure(targets: readonly MaskTarget[]): void {
    try {
      const keep = new Set<string>();
      for (const t of targets) {
        keep.add(t.service);
        this.service(t);
      }
      for (const [name, svc] of this.byName) {
        if (!keep.has(name)) {
          this.resetAll(svc, 'unconfigured');
          this.closeLink(svc);
          this.byName.delete(name);
          this.byIp.delete(svc.ip);
        }
      }
      this.refilter();
      if (targets.some((t) => t.mask === 'handshake' || t.mask === 'park')) {
        this.relayFilter.prepare().catch((err: unknown) => {
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
    const svc = this.service(target);
    if (!svc) return;
    svc.summoned = true;
    if (svc.phase !== 'booting') this.startMasking(svc);
  }

  private startMasking(svc: Service): void {
    svc.phase = 'booting';
    svc.maskingSince = Date.now();
    this.refilter();
    this.o.logger.debug('synjitsu masking', { service: svc.target.service, ip: svc.target.ip, mask: svc.target.mask });
    if (svc.target.mask === 'handshake' || svc.target.mask === 'park') {
      // After this turn's frames are out: spawning nft blocks the loop for a few ms (fork).
      setImmediate(() => {
        if (svc.phase !== 'booting') return;
        this.relayFilter.guardRsts(svc.ip, GUARD_MAX_MS).catch((err: unknown) => {
          this.o.logger.warn('synjitsu: cannot install the RST guard', { service: svc.target.service, error: errorMessage(err) });
        });
      });
    }
  }

  private endGuard(svc: Service, afterMs: number): void {
    if (svc.target.mask !== 'handshake' && svc.target.mask !== 'park') return;
    const done = afterMs > 0 ? this.relayFilter.guardRsts(svc.ip, afterMs) : this.relayFilter.unguard(svc.ip);
    done.catch((err: unknown) => {
      this.o.logger.warn('synjitsu: cannot update the RST guard', { service: svc.target.service, error: errorMessage(err) });
    });
  }

  async ready(target: MaskTarget, handle: BackendHandle): Promise<void> {
    const svc = this.service(target);
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
      this.openLink(svc, handle.link);
      if (svc.parked.size > 0) await this.replayParked(svc);
      if (svc.flows.size > 0) await this.handOver(svc);
      if (held > 0) svc.m.readyToReplay.observe(Number(process.hrtime.bigint() - t0) / 1e9);
      // Lift the RST guard once late handshakes can no longer arrive; not now: spawning nft blocks
      // the loop for milliseconds, just when the guest's first answers need relaying.
      const readyAt = svc.readyAt;
      setTimeout(() => {
        if (svc.phase === 'ready' && svc.readyAt === readyAt) this.endGuard(svc, 0);
        this.refilter();
      }, LATE_HANDSHAKE_MS).unref();
    } catch (err) {
      this.o.logger.error('synjitsu handover failed', { service: svc.target.service, error: errorMessage(err) });
    }
  }

  failed(target: MaskTarget, reason: string): void {
    const svc = this.service(target);
    if (!svc) return;
    this.o.logger.info('synjitsu resetting held connections: boot failed', {
      service: svc.target.service,
      reason,
      parked: svc.parked.size,
      flows: svc.flows.size,
    });
    this.resetAll(svc, 'boot-failed');
    svc.replayed.clear();
    this.closeLink(svc);
    this.endGuard(svc, 0);
    svc.phase = 'watched';
    svc.summoned = false;
    this.refilter();
  }

  stopped(target: MaskTarget): void {
    const svc = this.service(target);
    if (!svc) return;
    svc.replayed.clear();
    if (svc.phase === 'booting') {
      // A SYN summoned it again while it was stopping: what we hold is for the boot that follows.
      for (const flow of [...svc.flows.values()]) if (flow.state !== 'buffering') this.dropFlow(flow, 'stopped');
      this.closeLink(svc);
      return;
    }
    this.resetAll(svc, 'stopped');
    this.closeLink(svc);
    if (Date.now() - svc.readyAt < LATE_HANDSHAKE_MS) this.endGuard(svc, 0);
    svc.phase = 'watched';
    svc.summoned = false;
    this.refilter();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweepTimer);
    for (const svc of this.byName.values()) {
      this.resetAll(svc, 'shutdown');
      this.closeLink(svc);
    }
    this.flushAll();
    this.socket.close();
    this.hostSocket?.close();
    try {
      await this.relayFilter.close();
    } catch (err) {
      this.o.logger.warn('synjitsu: could not remove nft table', { error: errorMessage(err) });
    }
    await this.hostPort?.close();
  }

  // ---- introspection ----------------------------------------------------------------------------

  stats(): SynjitsuStats {
    return {
      flows: this.budget.flows,
      parked: this.budget.parked,
      bufferedBytes: this.budget.bufferedBytes,
      ...this.counters,
      ringDrops: this.socket.stats().drops,
      txDropped: this.txDropped(),
    };
  }

  private closedTxDropped = 0;

  private txDropped(): number {
    let n = this.tx.dropped + this.closedTxDropped + (this.hostTx?.dropped ?? 0);
    for (const svc of this.byName.values()) if (svc.guestTx && svc.guestTx !== this.tx) n += svc.guestTx.dropped;
    return n;
  }

  // ---- services ---------------------------------------------------------------------------------

  private service(t: MaskTarget): Service | undefined {
    const existing = this.byName.get(t.service);
    if (existing && existing.target.ip === t.ip && existing.target.mac === t.mac) {
      existing.target = t;
      return existing;
    }
    if (t.ip.includes(':')) {
      this.o.logger.warn('synjitsu masks IPv4 services only; this one is not masked', { service: t.service, ip: t.ip });
      return undefined;
    }
    let ip: number;
    let mac: Buffer;
    try {
      ip = parseIpv4(t.ip);
      mac = parseMac(t.mac);
    } catch (err) {
      this.o.logger.warn('synjitsu cannot mask service', { service: t.service, error: errorMessage(err) });
      return undefined;
    }
    if (existing) {
      this.resetAll(existing, 'reconfigured');
      this.closeLink(existing);
      this.byIp.delete(existing.ip);
    }
    const svc: Service = {
      target: t,
      ip,
      mac,
      phase: existing?.phase === 'ready' ? 'ready' : 'watched',
      summoned: false,
      parked: new Map(),
      flows: new Map(),
      guestTx: undefined,
      linkSocket: undefined,
      linkName: '',
      guestMac: mac,
      readyAt: 0,
      maskingSince: 0,
      replayed: new Map(),
      primed: new Set(),
      m: serviceMetrics(this.o.metrics, t.service),
    };
    this.byName.set(t.service, svc);
    this.byIp.set(ip, svc);
    this.refilter();
    return svc;
  }

  /**
   * The capture takes only what needs us: ARP and TCP for services stopped or booting, and for ready
   * ones only while they still have relayed or pending connections. A running service's traffic is
   * never copied to JS for nothing. Coalesced per event-loop turn; setsockopt only on change.
   */
  private refilter(): void {
    if (this.closed || this.refilterPending) return;
    this.refilterPending = true;
    setImmediate(() => {
      this.refilterPending = false;
      if (this.closed) return;
      const now = Date.now();
      const ips: number[] = [];
      for (const svc of this.byName.values()) {
        if (svc.phase !== 'ready' || svc.flows.size > 0 || svc.replayed.size > 0 || now - svc.readyAt < LATE_HANDSHAKE_MS) ips.push(svc.ip);
      }
      ips.sort((a, b) => a - b);
      const key = ips.join(',');
      if (key === this.filterKey) return;
      try {
        this.socket.setFilter(watchFilter(ips));
        this.filterKey = key;
      } catch (err) {
        this.o.logger.error('synjitsu: cannot update capture filter', { error: errorMessage(err) });
      }
    });
  }

  private refilterPending = false;
  private filterKey = '\u0000';

  private openLink(svc: Service, link: string | undefined): void {
    // A reboot may bring the guest back on another tap: reopen when the link changed.
    if (svc.guestTx && svc.linkName === (link ?? '')) return;
    this.closeLink(svc);
    if (link) {
      try {
        svc.linkSocket = new (loadNative().PacketSocket)({ iface: link });
        svc.guestTx = new TxQueue(svc.linkSocket, 1 << 18);
        svc.linkName = link;
        return;
      } catch (err) {
        this.o.logger.warn('synjitsu: cannot open guest link, sending via the bridge', { link, error: errorMessage(err) });
      }
    }
    svc.guestTx = this.tx;
    svc.linkName = '';
  }

  private closeLink(svc: Service): void {
    if (svc.guestTx && svc.guestTx !== this.tx) {
      svc.guestTx.flush();
      this.closedTxDropped += svc.guestTx.dropped;
    }
    svc.linkSocket?.close();
    svc.linkSocket = undefined;
    svc.guestTx = undefined;
    svc.linkName = '';
  }

  /** Frames to the host itself enter the bridge through our host port; all others leave via the bridge. */
  private clientTx(mac: Uint8Array, off: number): TxQueue {
    const host = this.hostPort;
    if (this.hostTx && host && macEquals(mac, off, host.bridgeMac)) {
      this.dirtyQueues.add(this.hostTx);
      return this.hostTx;
    }
    return this.tx;
  }

  /** Frames through the host port carry its MAC as source: the capture skips them when they come back. */
  private stamp(tx: TxQueue, at: number): void {
    if (tx === this.hostTx) this.hostPort!.mac.copy(tx.buffer, at + 6);
  }

  private sendToClient(s: SegmentSpec): void {
    const tx = this.clientTx(s.dstMac, 0);
    const at = tx.reserve(MAX_FRAME);
    const len = writeTcpFrame(tx.buffer, at, s);
    this.stamp(tx, at);
    tx.commit(len);
  }

  // ---- receive path -----------------------------------------------------------------------------

  private onBatch(count: number): void {
    const v = this.view;
    const data = this.rxData;
    const meta = this.rxMeta;
    const own = this.hostPort?.mac;
    for (let i = 0; i < count; i++) {
      // Our own frames to the host come back up the bridge: never act on them.
      if (own && macEquals(data, meta[i * 3]! + 6, own)) continue;
      if (meta[i * 3 + 2]! & FRAME_TRUNCATED) {
        // Never act on a frame whose payload we do not have: the sender will retransmit.
        this.counters.truncated++;
        continue;
      }
      try {
        const kind = v.parse(data, meta[i * 3]!, meta[i * 3 + 1]!);
        if (kind === FRAME_TCP) this.onTcp(v);
        else if (kind === FRAME_ARP) this.onArp(v);
      } catch (err) {
        this.o.logger.warn('synjitsu: frame handling failed', { error: errorMessage(err) });
      }
    }
    this.flushAll();
  }

  private onArp(v: FrameView): void {
    const b = v.buf;
    const off = v.off;
    if (!arp.isIpv4OverEthernet(b, off, v.len) || arp.op(b, off) !== ARP_REQUEST) return;
    const svc = this.byIp.get(arp.targetIp(b, off));
    if (!svc || !this.answersArp(svc)) return;
    const sender = arp.senderIp(b, off);
    // Never answer the guest itself (its own probes and gratuitous ARPs would see a conflict).
    if (sender === 0 || sender === svc.ip || b.compare(svc.mac, 0, 6, off + 22, off + 28) === 0) return;
    const tx = this.clientTx(b, off + 22);
    const at = tx.reserve(64);
    const len = writeArpReply(tx.buffer, at, b, off, svc.ip, svc.mac);
    this.stamp(tx, at);
    tx.commit(len);
    svc.m.arpReplies.inc();
  }

  private answersArp(svc: Service): boolean {
    const mode = svc.target.mask;
    if (svc.phase === 'watched') return mode === 'park' || mode === 'handshake' || mode === 'none';
    if (svc.phase === 'booting') return mode === 'park' || mode === 'handshake';
    return false;
  }

  private onTcp(v: FrameView): void {
    const toSvc = this.byIp.get(v.dstIp);
    if (toSvc) {
      this.fromClient(toSvc, v);
      return;
    }
    const fromSvc = this.byIp.get(v.srcIp);
    if (!fromSvc) return;
    if (fromSvc.replayed.size > 0 && (v.flags & (TCP_SYN | TCP_ACK)) === (TCP_SYN | TCP_ACK)) {
      fromSvc.replayed.delete(endpointKey(v.dstIp, v.dstPort));
    }
    if (fromSvc.flows.size > 0) this.fromGuest(fromSvc, v);
  }

  private fromClient(svc: Service, v: FrameView): void {
    const flags = v.flags;
    const isSyn = (flags & (TCP_SYN | TCP_ACK | TCP_RST)) === TCP_SYN;
    if (isSyn) this.counters.synsSeen++;
    if (svc.phase === 'watched') {
      if (!isSyn) return;
      const mode = svc.target.mask;
      if (mode === 'activate') return;
      if (!svc.summoned) {
        svc.summoned = true;
        svc.m.summons.inc();
        this.o.logger.info('synjitsu summon on SYN', { service: svc.target.service, client: formatIpv4(v.srcIp) });
        try {
          this.o.onSummon(svc.target.service);
        } catch (err) {
          this.o.logger.error('synjitsu summon callback failed', { service: svc.target.service, error: errorMessage(err) });
        }
      }
      if (mode !== 'park' && mode !== 'handshake') {
        svc.phase = 'booting';
        return;
      }
      this.startMasking(svc);
    }
    const key = endpointKey(v.srcIp, v.srcPort);
    const flow = svc.flows.get(key);
    if (flow && flow.svcPort === v.dstPort) {
      this.clientSegment(flow, v);
      return;
    }
    if (svc.phase === 'ready') {
      // A handshake we answered just before the guest came up completes now: hand it over at once.
      if (
        svc.target.mask === 'handshake' &&
        (flags & (TCP_ACK | TCP_SYN | TCP_RST)) === TCP_ACK &&
        Date.now() - svc.readyAt < LATE_HANDSHAKE_MS
      ) {
        const late = this.cookieAck(svc, v, key, false);
        if (late) void this.handOverLate(late);
      }
      return;
    }
    if (svc.phase !== 'booting') return;
    if (svc.target.mask === 'park') this.park(svc, v, key, isSyn);
    else if (svc.target.mask === 'handshake') {
      if (isSyn) this.synAck(svc, v);
      else if ((flags & (TCP_ACK | TCP_SYN | TCP_RST)) === TCP_ACK) this.cookieAck(svc, v, key);
    }
  }

  // ---- park -------------------------------------------------------------------------------------

  private park(svc: Service, v: FrameView, key: number, isSyn: boolean): void {
    if (!isSyn) {
      // The client gave up on a parked SYN: forget it so it is not replayed.
      if (v.flags & TCP_RST) {
        const p = svc.parked.get(key);
        if (p && svc.parked.delete(key)) this.budget.releaseParked();
      }
      return;
    }
    const existing = svc.parked.get(key);
    if (existing && existing.isn === v.seq) {
      svc.m.duplicateSyns.inc();
      return;
    }
    if (!existing) {
      const refused = this.budget.admitParked(svc.parked.size);
      if (refused) {
        this.refuse(refused);
        return;
      }
    }
    const len = v.ipFrameLength;
    const frame = Buffer.allocUnsafe(len);
    v.buf.copy(frame, 0, v.off, v.off + len);
    // The captured checksum may be unfinished (checksum offload); the guest will verify it.
    setTcpChecksum(frame, v.tcpOff - v.off, v.tcpLen, v.srcIp, v.dstIp);
    svc.parked.set(key, { frame, isn: v.seq });
    svc.m.parked.inc();
  }

  /**
   * Tells the guest a client's MAC with an ARP request from that client, so the guest's first answer
   * does not wait on its own ARP (whose first try a just-booted guest often loses: then 1 s passes).
   */
  private primeNeighbour(svc: Service, tx: TxQueue, clientMac: Uint8Array, clientIp: number): void {
    if (svc.primed.has(clientIp) || svc.primed.size >= this.limits.maxParkedPerService) return;
    svc.primed.add(clientIp);
    const at = tx.reserve(64);
    tx.commit(writeArpRequest(tx.buffer, at, svc.guestMac, clientMac, clientIp, svc.ip));
  }

  private async replayParked(svc: Service): Promise<void> {
    const tx = svc.guestTx ?? this.tx;
    const entries = [...svc.parked];
    this.budget.releaseParked(svc.parked.size);
    svc.parked.clear();
    for (let i = 0; i < entries.length; i += REPLAY_BATCH) {
      if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      const end = Math.min(entries.length, i + REPLAY_BATCH);
      for (let j = i; j < end; j++) {
        const [key, p] = entries[j]!;
        this.primeNeighbour(svc, tx, p.frame.subarray(6, 12), p.frame.readUInt32BE(26));
        const at = tx.reserve(p.frame.length);
        p.frame.copy(tx.buffer, at);
        tx.commit(p.frame.length);
        if (svc.replayed.size < this.limits.maxParkedPerService) svc.replayed.set(key, p);
      }
      tx.flush();
      svc.m.handedOver.inc(end - i);
      this.counters.handedOver += end - i;
    }
    this.resendReplayed(svc, 0);
  }

  /** Resends replayed SYNs the guest has not answered yet, on GUEST_SYN_RESEND_MS; then forgets them. */
  private resendReplayed(svc: Service, attempt: number): void {
    if (svc.replayed.size === 0) return;
    if (attempt >= PARK_RESEND_MS.length || svc.phase !== 'ready') {
      // Past this the client's own SYN retransmissions reach the guest directly.
      svc.replayed.clear();
      this.refilter();
      return;
    }
    const timer = setTimeout(() => {
      if (svc.phase !== 'ready' || svc.replayed.size === 0) return;
      const tx = svc.guestTx ?? this.tx;
      this.o.logger.debug('synjitsu resending replayed SYNs', { service: svc.target.service, count: svc.replayed.size, attempt });
      for (const p of svc.replayed.values()) {
        const at = tx.reserve(p.frame.length);
        p.frame.copy(tx.buffer, at);
        tx.commit(p.frame.length);
      }
      tx.flush();
      this.resendReplayed(svc, attempt + 1);
    }, PARK_RESEND_MS[attempt]);
    timer.unref();
  }

  // ---- handshake: SYN cookies and buffering -----------------------------------------------------

  private synAck(svc: Service, v: FrameView): void {
    const o = parseTcpOptions(v.buf, v.tcpOff, this.opts);
    const isn = this.cookies.make(v.srcIp, v.srcPort, v.dstIp, v.dstPort, v.seq, o.mss, o.wscale);
    const s = this.seg;
    s.srcMac = svc.mac;
    s.dstMac = v.buf.subarray(v.off + 6, v.off + 12);
    s.srcIp = svc.ip;
    s.dstIp = v.srcIp;
    s.srcPort = v.dstPort;
    s.dstPort = v.srcPort;
    s.seq = isn;
    s.ack = seq.add(v.seq, 1);
    s.flags = TCP_SYN | TCP_ACK;
    s.window = Math.min(0xffff, this.budget.space(0));
    s.mss = OUR_MSS;
    s.wscale = o.wscale >= 0 ? OUR_WSCALE : -1;
    s.sackPermitted = false;
    s.payload = undefined;
    this.sendToClient(s);
    s.mss = -1;
    s.wscale = -1;
    this.counters.cookiesSent++;
    this.cookieCounter.inc();
  }

  /** `countInvalid` is false after ready(), when most ACKs belong to the guest's own connections. */
  private cookieAck(svc: Service, v: FrameView, key: number, countInvalid = true): Flow | undefined {
    const clientIsn = seq.add(v.seq, -1);
    const ourIsn = seq.add(v.ack, -1);
    const facts = this.cookies.check(v.srcIp, v.srcPort, v.dstIp, v.dstPort, clientIsn, ourIsn);
    if (!facts) {
      if (countInvalid) {
        this.counters.invalidCookies++;
        this.invalidCookieCounter.inc();
      }
      return undefined;
    }
    const refused = this.budget.admitFlow(svc.flows.size);
    if (refused) {
      this.refuse(refused);
      this.sendRst(svc, v.buf.subarray(v.off + 6, v.off + 12), v.srcIp, v.srcPort, v.dstPort, v.ack, seq.add(v.seq, v.payloadLen));
      return undefined;
    }
    const clientMac = Buffer.from(v.buf.subarray(v.off + 6, v.off + 12));
    const flow = new Flow(svc, v.srcIp, v.srcPort, v.dstPort, clientMac, clientIsn, ourIsn, facts.mss, facts.wscale, v.seq);
    svc.flows.set(key, flow);
    svc.m.handshakes.inc();
    svc.m.buffered.inc();
    // Install the bridge drop for this connection now, so the handover does not wait for nft.
    flow.nftAdded = this.relayFilter.add(flow.tuples()).catch((err: unknown) => {
      this.o.logger.error('synjitsu: nft add failed; relayed connections may break', { error: errorMessage(err) });
    });
    this.clientSegment(flow, v);
    return svc.flows.get(key) === flow ? flow : undefined;
  }

  private async handOverLate(flow: Flow): Promise<void> {
    await flow.nftAdded;
    if (flow.state !== 'buffering' || flow.svc.flows.get(endpointKey(flow.clientIp, flow.clientPort)) !== flow) return;
    flow.state = 'syn-sent';
    flow.tries = 0;
    flow.handoverStarted = Date.now();
    this.sendGuestSyn(flow);
    this.flushAll();
  }

  private clientSegment(flow: Flow, v: FrameView): void {
    flow.lastSeen = Date.now();
    if (flow.state === 'relay' || flow.state === 'closing') {
      this.relayToGuest(flow, v);
      return;
    }
    const flags = v.flags;
    if (flags & TCP_RST) {
      this.dropFlow(flow, 'client-reset');
      return;
    }
    if (flags & TCP_SYN) return;
    flow.clientWindow = v.buf.readUInt16BE(v.tcpOff + 14);
    let advanced = false;
    if (v.payloadLen > 0) {
      const end = seq.add(v.seq, v.payloadLen);
      if (seq.le(v.seq, flow.rcvNxt) && seq.lt(flow.rcvNxt, end) && !flow.fin) {
        const skip = seq.diff(flow.rcvNxt, v.seq);
        const n = this.budget.take(flow.buffered, v.payloadLen - skip);
        if (n > 0) {
          const start = v.payloadOff + skip;
          flow.chunks.push(Buffer.from(v.buf.subarray(start, start + n)));
          flow.buffered += n;
          flow.rcvNxt = seq.add(flow.rcvNxt, n);
          flow.svc.m.bytesBuffered.inc(n);
          advanced = true;
        }
      }
    }
    if (flags & TCP_FIN && !flow.fin && seq.add(v.seq, v.payloadLen) === flow.rcvNxt) {
      flow.fin = true;
      flow.rcvNxt = seq.add(flow.rcvNxt, 1);
      advanced = true;
    }
    // ACK every segment carrying data or FIN (also duplicates: the client must learn the window).
    if (advanced || v.payloadLen > 0 || flags & TCP_FIN) this.ackClient(flow);
  }

  private ackClient(flow: Flow): void {
    const s = this.seg;
    s.srcMac = flow.svc.mac;
    s.dstMac = flow.clientMac;
    s.srcIp = flow.svc.ip;
    s.dstIp = flow.clientIp;
    s.srcPort = flow.svcPort;
    s.dstPort = flow.clientPort;
    s.seq = seq.add(flow.ourIsn, 1);
    s.ack = flow.rcvNxt;
    s.flags = TCP_ACK;
    s.window = this.budget.space(flow.buffered) >> flow.ourWs;
    s.payload = undefined;
    this.sendToClient(s);
  }

  private sendRst(svc: Service, clientMac: Uint8Array, clientIp: number, clientPort: number, svcPort: number, seqNo: number, ackNo: number): void {
    const s = this.seg;
    s.srcMac = svc.mac;
    s.dstMac = clientMac;
    s.srcIp = svc.ip;
    s.dstIp = clientIp;
    s.srcPort = svcPort;
    s.dstPort = clientPort;
    s.seq = seqNo;
    s.ack = ackNo;
    s.flags = TCP_RST | TCP_ACK;
    s.window = 0;
    s.payload = undefined;
    this.sendToClient(s);
  }

  // ---- handover: replay to the guest, then relay with sequence translation ----------------------

  private async handOver(svc: Service): Promise<void> {
    const flows = [...svc.flows.values()].filter((f) => f.state === 'buffering');
    await Promise.all(flows.map((f) => f.nftAdded));
    for (const flow of flows) {
      if (flow.state !== 'buffering' || svc.flows.get(endpointKey(flow.clientIp, flow.clientPort)) !== flow) continue;
      flow.state = 'syn-sent';
      flow.tries = 0;
      flow.handoverStarted = Date.now();
      this.sendGuestSyn(flow);
    }
    this.flushAll();
  }

  private guestTx(flow: Flow): TxQueue {
    const tx = flow.svc.guestTx ?? this.tx;
    this.dirtyQueues.add(tx);
    return tx;
  }

  private sendGuestSyn(flow: Flow): void {
    const s = this.seg;
    s.srcMac = flow.clientMac;
    s.dstMac = flow.svc.guestMac;
    s.srcIp = flow.clientIp;
    s.dstIp = flow.svc.ip;
    s.srcPort = flow.clientPort;
    s.dstPort = flow.svcPort;
    s.seq = flow.clientIsn;
    s.ack = 0;
    s.flags = TCP_SYN;
    s.window = Math.min(0xffff, flow.clientWindow << Math.max(0, flow.clientWs));
    s.mss = flow.clientMss;
    s.wscale = flow.clientWs;
    s.payload = undefined;
    const tx = this.guestTx(flow);
    this.primeNeighbour(flow.svc, tx, flow.clientMac, flow.clientIp);
    const at = tx.reserve(MAX_FRAME);
    tx.commit(writeTcpFrame(tx.buffer, at, s));
    s.mss = -1;
    s.wscale = -1;
    const delay = GUEST_SYN_RESEND_MS[Math.min(flow.tries, GUEST_SYN_RESEND_MS.length - 1)]!;
    flow.tries++;
    clearTimeout(flow.timer);
    if (Date.now() - flow.handoverStarted > this.limits.handoverTimeoutMs) {
      flow.timer = undefined;
      this.resetFlow(flow, 'guest-no-answer');
      return;
    }
    flow.timer = setTimeout(() => {
      if (flow.state !== 'syn-sent') return;
      this.o.logger.debug('synjitsu handover SYN retransmit', { service: flow.svc.target.service, client: formatIpv4(flow.clientIp), port: flow.clientPort, tries: flow.tries });
      this.sendGuestSyn(flow);
      this.flushAll();
    }, delay);
    flow.timer.unref();
  }

  /** Window field as the guest must read it: raw when the guest scales with the client's factor. */
  private clientWindowForGuest(flow: Flow, field: number): number {
    if (flow.clientWs >= 0 && flow.guestWs < 0) return Math.min(0xffff, field << flow.clientWs);
    return field;
  }

  private fromGuest(svc: Service, v: FrameView): void {
    const flow = svc.flows.get(endpointKey(v.dstIp, v.dstPort));
    if (!flow || flow.svcPort !== v.srcPort) return;
    flow.lastSeen = Date.now();
    const flags = v.flags;
    if (flow.state === 'syn-sent') {
      if ((flags & (TCP_SYN | TCP_ACK)) === (TCP_SYN | TCP_ACK) && v.ack === seq.add(flow.clientIsn, 1)) {
        clearTimeout(flow.timer);
        flow.timer = undefined;
        const o = parseTcpOptions(v.buf, v.tcpOff, this.opts);
        flow.guestIsn = v.seq;
        flow.guestWs = flow.clientWs >= 0 && o.wscale >= 0 ? o.wscale : -1;
        flow.guestMss = o.mss > 0 ? o.mss : 536;
        flow.guestAcked = seq.add(flow.clientIsn, 1);
        flow.guestWindow = v.buf.readUInt16BE(v.tcpOff + 14);
        flow.replay = flow.chunks.length === 1 ? flow.chunks[0] : Buffer.concat(flow.chunks);
        flow.chunks = [];
        flow.replaySent = 0;
        flow.state = 'relay';
        flow.tries = 0;
        // A FIN we buffered is the client's close: it goes to the guest with the replay.
        flow.clientFin = flow.fin;
        if (this.o.logger.enabled('debug')) {
          this.o.logger.debug('synjitsu handed over', { service: svc.target.service, client: formatIpv4(flow.clientIp), port: flow.clientPort, ms: Date.now() - flow.handoverStarted, bytes: flow.buffered });
        }
        flow.svc.m.handedOver.inc();
        this.counters.handedOver++;
        this.guestAck(flow, seq.add(flow.clientIsn, 1));
        this.pumpReplay(flow);
      } else if (flags & TCP_RST) {
        // Up but not listening yet (the RST guard keeps this RST from the client): ask again shortly.
        if (Date.now() - flow.handoverStarted > this.limits.handoverTimeoutMs) {
          this.resetFlow(flow, 'guest-refused');
          return;
        }
        clearTimeout(flow.timer);
        flow.timer = setTimeout(() => {
          if (flow.state !== 'syn-sent') return;
          this.sendGuestSyn(flow);
          this.flushAll();
        }, REFUSED_RETRY_MS);
        flow.timer.unref();
      }
      return;
    }
    if (flow.state !== 'relay' && flow.state !== 'closing') return;
    if (flags & TCP_SYN) {
      // Our ACK of its SYN-ACK was lost: repeat it (the client never sees this exchange).
      this.guestAck(flow, seq.add(flow.clientIsn, 1));
      return;
    }
    if (flags & TCP_ACK) {
      if (seq.lt(flow.guestAcked, v.ack)) flow.guestAcked = v.ack;
      flow.guestWindow = v.buf.readUInt16BE(v.tcpOff + 14) << Math.max(0, flow.guestWs);
      if (flow.replay) this.pumpReplay(flow);
    }
    this.relayToClient(flow, v);
  }

  /** Pure ACK to the guest, as the client, acknowledging its SYN. */
  private guestAck(flow: Flow, seqNo: number): void {
    const s = this.seg;
    s.srcMac = flow.clientMac;
    s.dstMac = flow.svc.guestMac;
    s.srcIp = flow.clientIp;
    s.dstIp = flow.svc.ip;
    s.srcPort = flow.clientPort;
    s.dstPort = flow.svcPort;
    s.seq = seqNo;
    s.ack = seq.add(flow.guestIsn, 1);
    s.flags = TCP_ACK;
    s.window = this.clientWindowForGuest(flow, flow.clientWindow);
    s.payload = undefined;
    const tx = this.guestTx(flow);
    const at = tx.reserve(MAX_FRAME);
    tx.commit(writeTcpFrame(tx.buffer, at, s));
  }

  /** Sends buffered client bytes the guest has room for; retransmits on a timer until all are acked. */
  private pumpReplay(flow: Flow): void {
    const replay = flow.replay;
    if (!replay) return;
    const base = seq.add(flow.clientIsn, 1);
    const total = replay.length + (flow.fin ? 1 : 0);
    const acked = Math.max(0, Math.min(total, seq.diff(flow.guestAcked, base)));
    if (acked >= total) {
      this.budget.give(replay.length);
      flow.replay = undefined;
      clearTimeout(flow.timer);
      flow.timer = undefined;
      return;
    }
    if (flow.replaySent < acked) flow.replaySent = acked;
    const limit = acked + Math.max(flow.guestWindow, flow.guestMss);
    const s = this.seg;
    s.srcMac = flow.clientMac;
    s.dstMac = flow.svc.guestMac;
    s.srcIp = flow.clientIp;
    s.dstIp = flow.svc.ip;
    s.srcPort = flow.clientPort;
    s.dstPort = flow.svcPort;
    s.ack = seq.add(flow.guestIsn, 1);
    s.window = this.clientWindowForGuest(flow, flow.clientWindow);
    const tx = this.guestTx(flow);
    while (flow.replaySent < replay.length && flow.replaySent < limit) {
      const n = Math.min(flow.guestMss, replay.length - flow.replaySent, limit - flow.replaySent);
      s.seq = seq.add(base, flow.replaySent);
      s.payload = replay.subarray(flow.replaySent, flow.replaySent + n);
      flow.replaySent += n;
      s.flags = TCP_ACK | (flow.replaySent === replay.length ? TCP_PSH : 0);
      if (flow.fin && flow.replaySent === replay.length) s.flags |= TCP_FIN;
      const at = tx.reserve(MAX_FRAME);
      tx.commit(writeTcpFrame(tx.buffer, at, s));
      flow.svc.m.bytesToGuest.inc(n);
    }
    if (replay.length === 0 && flow.fin && flow.replaySent === 0) {
      s.seq = base;
      s.payload = undefined;
      s.flags = TCP_ACK | TCP_FIN;
      const at = tx.reserve(MAX_FRAME);
      tx.commit(writeTcpFrame(tx.buffer, at, s));
      flow.replaySent = 0;
    }
    s.payload = undefined;
    if (!flow.timer) {
      flow.timer = setTimeout(() => {
        flow.timer = undefined;
        if (!flow.replay || flow.state !== 'relay') return;
        if (++flow.tries > REPLAY_MAX_TRIES) {
          this.resetFlow(flow, 'guest-no-ack');
          this.flushAll();
          return;
        }
        this.o.logger.debug('synjitsu replay retransmit', { service: flow.svc.target.service, client: formatIpv4(flow.clientIp), port: flow.clientPort, tries: flow.tries });
        // Go back to the guest's last ACK and resend from there.
        flow.replaySent = 0;
        this.pumpReplay(flow);
        this.flushAll();
      }, REPLAY_RTO_MS);
      flow.timer.unref();
    }
  }

  /**
   * Writes one received segment back out, translated, as MSS-sized frames. Frames are rebuilt rather
   * than patched: captured frames may carry an unfinished (offloaded) checksum or be GSO super-frames
   * larger than the MTU, and no options need carrying (we never negotiate timestamps or SACK).
   */
  private emit(tx: TxQueue, v: FrameView, seqNo: number, ackNo: number, window: number, mss: number): void {
    const s = this.seg;
    s.seq = seqNo;
    s.ack = ackNo;
    s.window = window;
    const flags = v.flags & (TCP_ACK | TCP_FIN | TCP_PSH | TCP_RST);
    let sent = 0;
    do {
      const n = Math.min(mss, v.payloadLen - sent);
      const last = sent + n >= v.payloadLen;
      s.seq = seq.add(seqNo, sent);
      s.payload = n > 0 ? v.buf.subarray(v.payloadOff + sent, v.payloadOff + sent + n) : undefined;
      s.flags = last ? flags : flags & TCP_ACK;
      const at = tx.reserve(MAX_FRAME);
      const len = writeTcpFrame(tx.buffer, at, s);
      this.stamp(tx, at);
      tx.commit(len);
      sent += n;
    } while (sent < v.payloadLen);
    s.payload = undefined;
  }

  /** Client -> guest: the guest's sequence space is offset from ours; translate the ACK field. */
  private relayToGuest(flow: Flow, v: FrameView): void {
    const flags = v.flags;
    if (flags & TCP_SYN) return;
    const s = this.seg;
    s.srcMac = flow.clientMac;
    s.dstMac = flow.svc.guestMac;
    s.srcIp = flow.clientIp;
    s.dstIp = flow.svc.ip;
    s.srcPort = flow.clientPort;
    s.dstPort = flow.svcPort;
    const ack = flags & TCP_ACK ? (v.ack - flow.ourIsn + flow.guestIsn) >>> 0 : 0;
    const win = this.clientWindowForGuest(flow, v.buf.readUInt16BE(v.tcpOff + 14));
    this.emit(this.guestTx(flow), v, v.seq, ack, win, Math.min(flow.guestMss, OUR_MSS));
    if (v.payloadLen > 0) flow.svc.m.bytesToGuest.inc(v.payloadLen);
    if (flags & TCP_FIN) flow.clientFin = true;
    if (flags & TCP_RST) this.finish(flow);
    else if (flow.clientFin && flow.guestFin) this.finish(flow);
  }

  /** Guest -> client: translate SEQ into the ISN we gave the client, rescale the window. */
  private relayToClient(flow: Flow, v: FrameView): void {
    const flags = v.flags;
    const s = this.seg;
    s.srcMac = flow.svc.mac;
    s.dstMac = flow.clientMac;
    s.srcIp = flow.svc.ip;
    s.dstIp = flow.clientIp;
    s.srcPort = flow.svcPort;
    s.dstPort = flow.clientPort;
    const sq = (v.seq - flow.guestIsn + flow.ourIsn) >>> 0;
    const bytes = v.buf.readUInt16BE(v.tcpOff + 14) * 2 ** Math.max(0, flow.guestWs);
    const win = Math.min(0xffff, Math.floor(bytes / 2 ** flow.ourWs));
    this.emit(this.clientTx(flow.clientMac, 0), v, sq, v.ack, win, flow.clientMss);
    if (v.payloadLen > 0) flow.svc.m.bytesToClient.inc(v.payloadLen);
    if (flags & TCP_FIN) flow.guestFin = true;
    if (flags & TCP_RST) this.finish(flow);
    else if (flow.clientFin && flow.guestFin) this.finish(flow);
  }

  // ---- teardown ---------------------------------------------------------------------------------

  /** Both sides are done: keep translating stragglers (final ACKs, retransmits) for a while, then forget. */
  private finish(flow: Flow): void {
    if (flow.state === 'closing') return;
    flow.state = 'closing';
    clearTimeout(flow.timer);
    flow.timer = setTimeout(() => this.dropFlow(flow, undefined), LINGER_MS);
    flow.timer.unref();
  }

  private resetFlow(flow: Flow, reason: string): void {
    this.sendRst(flow.svc, flow.clientMac, flow.clientIp, flow.clientPort, flow.svcPort, seq.add(flow.ourIsn, 1), flow.rcvNxt);
    this.dirtyQueues.add(this.tx);
    this.counters.reset++;
    this.resetCounter.labels({ service: flow.svc.target.service, reason }).inc();
    this.dropFlow(flow, undefined);
  }

  /** Forgets a flow and returns its memory; `reason` counts it as refused-after-admission when set. */
  private dropFlow(flow: Flow, reason: string | undefined): void {
    const key = endpointKey(flow.clientIp, flow.clientPort);
    if (flow.svc.flows.get(key) !== flow) return;
    flow.svc.flows.delete(key);
    clearTimeout(flow.timer);
    flow.timer = undefined;
    this.budget.releaseFlow();
    if (flow.svc.flows.size === 0) this.refilter();
    this.budget.give(flow.buffered - (flow.replay === undefined && flow.state !== 'buffering' && flow.state !== 'syn-sent' ? flow.buffered : 0));
    flow.chunks = [];
    flow.replay = undefined;
    flow.state = 'closing';
    if (reason) this.o.logger.debug('synjitsu flow dropped', { service: flow.svc.target.service, reason });
    this.relayFilter.remove(flow.tuples()).catch((err: unknown) => {
      this.o.logger.warn('synjitsu: nft delete failed', { error: errorMessage(err) });
    });
  }

  private resetAll(svc: Service, reason: string): void {
    for (const flow of [...svc.flows.values()]) {
      if (flow.state === 'buffering' || flow.state === 'syn-sent') this.resetFlow(flow, reason);
      else this.dropFlow(flow, reason);
    }
    if (svc.parked.size > 0) {
      // A parked SYN gets RST+ACK: the client's connect() fails at once (ECONNREFUSED) instead of hanging.
      for (const p of svc.parked.values()) {
        const f = p.frame;
        const t = 14 + (f[14]! & 0x0f) * 4;
        this.sendRst(svc, f.subarray(6, 12), f.readUInt32BE(26), f.readUInt16BE(t), f.readUInt16BE(t + 2), 0, seq.add(p.isn, 1));
        this.counters.reset++;
        this.resetCounter.labels({ service: svc.target.service, reason }).inc();
      }
      this.budget.releaseParked(svc.parked.size);
      svc.parked.clear();
    }
    this.flushAll();
  }

  private refuse(reason: RefuseReason): void {
    this.counters.refused++;
    this.refusedCounter.labels({ reason }).inc();
  }

  private sweep(): void {
    const now = Date.now();
    for (const svc of this.byName.values()) {
      if (svc.phase === 'booting' && now - svc.maskingSince > this.limits.maxMaskMs && (svc.parked.size > 0 || svc.flows.size > 0)) {
        this.o.logger.warn('synjitsu: no ready() or failed() in time, resetting held connections', { service: svc.target.service });
        this.resetAll(svc, 'mask-timeout');
        this.endGuard(svc, 0);
        svc.phase = 'watched';
        svc.summoned = false;
      }
      for (const flow of [...svc.flows.values()]) {
        if (flow.state === 'relay' && now - flow.lastSeen > this.limits.relayIdleMs) this.dropFlow(flow, 'idle');
      }
    }
  }

  private flushAll(): void {
    this.tx.flush();
    this.hostTx?.flush();
    for (const q of this.dirtyQueues) q.flush();
    this.dirtyQueues.clear();
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
