import type { DaemonStatus } from '../daemon.js';
import type { RuntimeStatus } from '../services/runtime.js';

/** `jitsu status` keeps within this many columns. */
export const STATUS_WIDTH = 120;

interface Column {
  title: string;
  value: (s: RuntimeStatus) => string;
  /** Widest it may get; the last column takes what is left. */
  max: number;
  right?: boolean;
}

function stateOf(s: RuntimeStatus): string {
  return s.state === 'stopped' && s.suspended ? 'suspended' : s.state === 'ready' ? 'running' : s.state;
}

const COLUMNS: readonly Column[] = [
  { title: 'SERVICE', value: (s) => s.service, max: 24 },
  { title: 'STATE', value: stateOf, max: 9 },
  { title: 'BACKEND', value: (s) => s.backend, max: 9 },
  { title: 'IP', value: (s) => s.ip, max: 39 },
  { title: 'BOOTS', value: (s) => String(s.bootCount), max: 6, right: true },
  { title: 'LAST BOOT MS', value: (s) => (s.lastBootMs === null ? '-' : s.lastBootMs.toFixed(1)), max: 12, right: true },
  { title: 'IDLE S', value: (s) => (s.idleSeconds === null ? '-' : s.idleSeconds.toFixed(1)), max: 8, right: true },
  { title: 'LAST ERROR', value: (s) => s.lastError ?? '-', max: Number.POSITIVE_INFINITY },
];

/** The last error keeps at least this much room: it says why a service is down. */
const MIN_ERROR_WIDTH = 24;

function fit(text: string, width: number): string {
  const oneLine = text.replace(/\s+/g, ' ');
  return oneLine.length <= width ? oneLine : `${oneLine.slice(0, Math.max(0, width - 1))}…`;
}

/** The services as a table of at most `width` columns: long names and errors are cut with "…". */
export function formatStatusTable(services: readonly RuntimeStatus[], width = STATUS_WIDTH): string {
  const cells = services.map((s) => COLUMNS.map((c) => c.value(s)));
  const widths = COLUMNS.map((c, i) => Math.min(c.max, Math.max(c.title.length, ...cells.map((row) => row[i]!.length))));
  const last = widths.length - 1;
  const minLast = MIN_ERROR_WIDTH;
  let fixed = widths.slice(0, last).reduce((sum, w) => sum + w + 2, 0);
  // Too wide (long names next to IPv6 addresses): the service name gives way first.
  const overflow = fixed + minLast - width;
  if (overflow > 0) {
    const shrunk = Math.max(COLUMNS[0]!.title.length, widths[0]! - overflow);
    fixed -= widths[0]! - shrunk;
    widths[0] = shrunk;
  }
  widths[last] = Math.max(minLast, Math.min(widths[last]!, width - fixed));
  const line = (row: readonly string[]): string =>
    row
      .map((cell, i) => {
        const text = fit(cell, widths[i]!);
        return COLUMNS[i]!.right ? text.padStart(widths[i]!) : i === last ? text : text.padEnd(widths[i]!);
      })
      .join('  ')
      .slice(0, width)
      .trimEnd();
  return [line(COLUMNS.map((c) => c.title)), ...cells.map(line)].join('\n') + '\n';
}

/** The line above the table: version, uptime, where DNS listens, the upstreams. */
export function formatStatusHeader(status: DaemonStatus): string {
  const dns = status.dns.map((a) => (a.address.includes(':') ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`)).join(', ');
  return `jitsu ${status.version}, up ${status.uptimeSeconds} s; DNS on ${dns}; forwarding to ${status.forwarders.join(', ') || 'nobody'}\n`;
}
