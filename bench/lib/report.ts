/** Renders latest.json as markdown: machine facts, then each section's tables, skips and notes. */
import { fmt, type Stat } from './stats.js';
import type { SectionResult, Table } from './types.js';
import type { MachineFacts } from './facts.js';

export interface BenchDocument {
  schema: 'jitsu-bench/1';
  startedAt: string;
  durationSeconds: number;
  command: string;
  options: { quick: boolean; runs: number; dnsSeconds: number; only: string[]; rows?: string[] };
  machine: MachineFacts;
  /** Headline figures next to their goals (filled once every section ran). */
  summary?: Table;
  sections: Record<string, SectionResult>;
}

function cell(c: string | number | null): string {
  if (c === null) return '–';
  return typeof c === 'number' ? fmt(c) : c.replace(/\|/g, '\\|');
}

export function tableMarkdown(t: Table): string {
  const lines = [`**${t.title}**`, '', `| ${t.columns.join(' | ')} |`, `|${t.columns.map(() => '---').join('|')}|`];
  for (const row of t.rows) lines.push(`| ${row.map(cell).join(' | ')} |`);
  return lines.join('\n');
}

export function tableText(t: Table): string {
  const rows = [t.columns, ...t.rows.map((r) => r.map(cell))];
  const widths = t.columns.map((_, i) => Math.max(...rows.map((r) => String(r[i] ?? '').length)));
  const line = (r: (string | number | null)[]): string => r.map((c, i) => String(c ?? '').padEnd(widths[i]!)).join('  ');
  return [t.title, line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

export function statCells(s: Stat | undefined): (number | null)[] {
  return s ? [s.min, s.median, s.p99, s.mean, s.n] : [null, null, null, null, 0];
}

export function renderMarkdown(doc: BenchDocument, svgName: string | undefined): string {
  const m = doc.machine;
  const out: string[] = [
    '# Jitsu benchmark report',
    '',
    `Run ${doc.startedAt}, ${doc.durationSeconds.toFixed(0)} s, \`${doc.command}\`.`,
    '',
    `Machine: ${m.cpuModel}, ${m.cores} cores, ${(m.memoryBytes / 2 ** 30).toFixed(1)} GiB, Linux ${m.kernel}, Node ${m.node}; ` +
      `load average at start ${m.loadAverage.join(' ')}.`,
    `Tools: ${Object.entries(m.tools)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}.`,
    '',
    'No pass/fail thresholds: figures, medians and ratios. Latencies are min / median / p99 / mean over n runs (nearest-rank percentiles).',
    '',
  ];
  if (doc.summary) out.push(tableMarkdown(doc.summary), '');
  for (const s of Object.values(doc.sections)) {
    out.push(`## ${s.title}`, '', `Status: **${s.status}** (${(s.durationMs / 1000).toFixed(1)} s)${s.error ? ` — error: ${s.error}` : ''}`, '');
    for (const [part, reason] of Object.entries(s.skipped)) out.push(`- skipped \`${part}\`: ${reason}`);
    if (Object.keys(s.skipped).length) out.push('');
    if (s.id === 'boot' && svgName && s.samples && Object.keys(s.samples).length) out.push(`![boot latency per backend](${svgName})`, '');
    for (const t of s.tables) out.push(tableMarkdown(t), '');
    for (const n of s.notes) out.push(`- ${n}`);
    if (s.notes.length) out.push('');
  }
  return out.join('\n');
}
