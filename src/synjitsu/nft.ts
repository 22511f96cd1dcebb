import { execFile } from 'node:child_process';
import { formatIpv4 } from './pdu/ipv4.js';
import { JitsuError } from '../errors.js';

/**
 * While a handed-over connection is relayed (sequence numbers translated by the daemon), the bridge
 * must not also deliver its frames directly between client and guest: each side would see segments
 * from the other's sequence space. One nftables bridge table per masked bridge holds a set of such
 * 4-tuples (both directions) and drops their forwarded copies; the daemon still sees them because the
 * promiscuous bridge passes a copy up, and it injects translated frames itself (locally sent frames
 * skip the forward hook). Changes are coalesced: one `nft` run per event-loop turn.
 */
export interface Tuple {
  srcIp: number;
  srcPort: number;
  dstIp: number;
  dstPort: number;
}

function elements(tuples: readonly Tuple[], withTimeout: boolean): string {
  return tuples
    .map((t) => `${formatIpv4(t.srcIp)} . ${t.srcPort} . ${formatIpv4(t.dstIp)} . ${t.dstPort}${withTimeout ? ' timeout 1h' : ''}`)
    .join(', ');
}

function runNft(script: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile('nft', ['-f', '-'], { timeout: 10_000 }, (err, _stdout, stderr) => {
      if (err) reject(new JitsuError('NETWORK_SETUP', `nft failed: ${stderr.trim() || err.message}`, { script: script.slice(0, 500) }));
      else resolve();
    });
    child.stdin?.end(script);
  });
}

export class RelayFilter {
  readonly table: string;
  private created: Promise<void> | undefined;
  private pendingAdd: Tuple[] = [];
  private pendingDel: Tuple[] = [];
  private flushing: Promise<void> | undefined;
  private closed = false;

  /**
   * With `host` (the host is a client too): frames between a guest and the host never cross the
   * bridge's forward hook. Guest -> host frames of relayed connections are dropped at IP input
   * (after the capture saw them) unless they carry our host port's MAC (our translated copies); host ->
   * guest frames are dropped at the bridge's output hook when they carry the bridge's (the host's) MAC.
   */
  constructor(
    readonly bridge: string,
    private readonly host?: { bridgeMac: string; portMac: string },
  ) {
    this.table = `jitsu_synjitsu_${bridge.replace(/[^A-Za-z0-9_]/g, '_')}`;
  }

  private families(): string[] {
    return this.host ? ['bridge', 'ip'] : ['bridge'];
  }

  private ensureTable(): Promise<void> {
    const t = this.table;
    const sets =
      `  set relay { type ipv4_addr . inet_service . ipv4_addr . inet_service; flags timeout; size 262144; }\n` +
      `  set rst_guard { type ipv4_addr; flags timeout; size 65536; }\n`;
    let script =
      `table bridge ${t} {}\ndelete table bridge ${t}\n` +
      `table bridge ${t} {\n` +
      sets +
      `  chain relay_drop { type filter hook forward priority -200; policy accept;\n` +
      `    ip saddr . tcp sport . ip daddr . tcp dport @relay drop;\n` +
      `    ip saddr @rst_guard tcp flags & rst == rst drop; }\n`;
    if (this.host) {
      script +=
        `  chain relay_out { type filter hook output priority -200; policy accept;\n` +
        `    ether saddr ${this.host.bridgeMac} ip saddr . tcp sport . ip daddr . tcp dport @relay drop; }\n`;
    }
    script += `}\n`;
    if (this.host) {
      const own = `iifname "${this.bridge}" ether saddr != ${this.host.portMac}`;
      script +=
        `table ip ${t} {}\ndelete table ip ${t}\n` +
        `table ip ${t} {\n` +
        sets +
        // input, not prerouting: with br_netfilter loaded, prerouting runs inside the bridge, before the
        // capture has seen the frame.
        `  chain relay_in { type filter hook input priority -300; policy accept;\n` +
        `    ${own} ip saddr . tcp sport . ip daddr . tcp dport @relay drop;\n` +
        `    ${own} ip saddr @rst_guard tcp flags & rst == rst drop; }\n` +
        `}\n`;
    }
    this.created ??= runNft(
      script,
    ).catch((err: unknown) => {
      // Let the next use try again (nft installed later, module loaded, ...).
      this.created = undefined;
      throw err;
    });
    return this.created;
  }

  /** Creates the table now, so a missing nftables shows up at configuration rather than at handover. */
  prepare(): Promise<void> {
    return this.ensureTable();
  }

  /** Starts dropping bridged frames of these tuples; resolves once the kernel has them. */
  add(tuples: readonly Tuple[]): Promise<void> {
    this.pendingAdd.push(...tuples);
    return this.schedule();
  }

  remove(tuples: readonly Tuple[]): Promise<void> {
    this.pendingDel.push(...tuples);
    return this.schedule();
  }

  private schedule(): Promise<void> {
    if (this.flushing) return this.flushing;
    this.flushing = new Promise<void>((resolve) => setImmediate(resolve)).then(async () => {
      this.flushing = undefined;
      if (this.closed) return;
      await this.ensureTable();
      const add = this.pendingAdd;
      const del = this.pendingDel;
      this.pendingAdd = [];
      this.pendingDel = [];
      let script = '';
      for (const f of this.families()) {
        if (add.length) script += `add element ${f} ${this.table} relay { ${elements(add, true)} }\n`;
        // Deleting a missing element fails the whole batch; adding first makes the delete always valid.
        if (del.length) {
          script += `add element ${f} ${this.table} relay { ${elements(del, false)} }\n`;
          script += `delete element ${f} ${this.table} relay { ${elements(del, false)} }\n`;
        }
      }
      if (script) await runNft(script);
    });
    return this.flushing;
  }

  /**
   * Drops RSTs a just-booted guest sends for connections it has not been handed yet (a client whose
   * handshake with us completed while the guest came up): until `ttlMs` after the call, or until
   * unguard(). Installed at boot start, so it is in place before the guest's link comes up.
   */
  async guardRsts(ip: number, ttlMs: number): Promise<void> {
    if (this.closed) return;
    await this.ensureTable();
    const e = formatIpv4(ip);
    let script = '';
    for (const f of this.families()) {
      script +=
        `add element ${f} ${this.table} rst_guard { ${e} }\n` +
        `delete element ${f} ${this.table} rst_guard { ${e} }\n` +
        `add element ${f} ${this.table} rst_guard { ${e} timeout ${Math.max(1, Math.ceil(ttlMs / 1000))}s }\n`;
    }
    await runNft(script);
  }

  async unguard(ip: number): Promise<void> {
    if (this.closed || !this.created) return;
    await this.ensureTable();
    const e = formatIpv4(ip);
    let script = '';
    for (const f of this.families()) {
      script += `add element ${f} ${this.table} rst_guard { ${e} }\ndelete element ${f} ${this.table} rst_guard { ${e} }\n`;
    }
    await runNft(script);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (!this.created) return;
    try {
      await this.created;
    } catch {
      return;
    }
    await runNft(this.families().map((f) => `delete table ${f} ${this.table}\n`).join(''));
  }
}
