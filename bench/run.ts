/**
 * `npm run bench` — runs every benchmark side by side in one process tree and writes
 * bench/results/latest.json, latest.md and boot-latency.svg (or --out DIR).
 *
 *   node dist/bench/run.js [--only micro,dns,boot,firstbyte,hold,relay] [--quick] [--runs N]
 *                          [--dns-seconds S] [--out DIR]
 *
 * No thresholds: figures, medians and ratios. A part whose prerequisite is missing records
 * `skipped: <reason>` instead of a number.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deferCleanup, runPendingCleanups } from './lib/cleanup.js';
import { machineFacts } from './lib/facts.js';
import { renderMarkdown, tableText, type BenchDocument } from './lib/report.js';
import { bootLatencySvg } from './lib/svg.js';
import { headlineTable } from './lib/summary.js';
import { sweepStale } from './lib/sweep.js';
import { emptySection, type Benchmark, type SectionResult } from './lib/types.js';
import { microBenchmark } from './micro/index.js';
import { dnsQpsBenchmark } from './macro/dns-qps.js';
import { BOOT_ROWS, bootBenchmark } from './macro/boot.js';
import { firstByteBenchmark } from './macro/first-byte.js';
import { holdBenchmark } from './macro/hold.js';
import { relayBenchmark } from './macro/relay.js';

/** Sections in run order, each with its share of the ~18-minute budget (seconds, full run). */
const SECTIONS: { bench: Benchmark; budgetS: number; quickBudgetS: number }[] = [
  { bench: microBenchmark, budgetS: 60, quickBudgetS: 20 },
  { bench: dnsQpsBenchmark, budgetS: 290, quickBudgetS: 80 },
  { bench: bootBenchmark, budgetS: 330, quickBudgetS: 90 },
  { bench: firstByteBenchmark, budgetS: 180, quickBudgetS: 60 },
  { bench: holdBenchmark, budgetS: 120, quickBudgetS: 60 },
  { bench: relayBenchmark, budgetS: 90, quickBudgetS: 40 },
];

interface Options {
  only: string[];
  rows: string[];
  quick: boolean;
  runs: number;
  dnsSeconds: number;
  out: string;
}

const HELP = `usage: node dist/bench/run.js [options]
  --only LIST        comma-separated sections: ${SECTIONS.map((s) => s.bench.id).join(',')} (default: all)
  --quick            small bounds (smoke runs): fewer runs, 2 s dnsperf runs
  --rows LIST        boot section only: comma-separated rows (${BOOT_ROWS.join(',')}); they share its whole budget
  --runs N           runs per latency series (default 30, quick 5)
  --dns-seconds S    seconds per dnsperf run (default 6, quick 2)
  --out DIR          where latest.json, latest.md and boot-latency.svg go (default bench/results)
`;

function usage(message: string): never {
  process.stderr.write(`bench: ${message}\n${HELP}`);
  process.exit(2);
}

function parseOptions(argv: readonly string[], root: string): Options {
  const opts: Options = { only: [], rows: [], quick: false, runs: 0, dnsSeconds: 0, out: join(root, 'bench/results') };
  const known = new Set(SECTIONS.map((s) => s.bench.id));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      return v;
    };
    const positive = (v: string): number => {
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0) usage(`${a} needs a positive number, got "${v}"`);
      return n;
    };
    if (a === '--help' || a === '-h') {
      process.stdout.write(HELP);
      process.exit(0);
    } else if (a === '--quick') opts.quick = true;
    else if (a === '--only') {
      opts.only = value().split(',').filter(Boolean);
      for (const id of opts.only) if (!known.has(id)) usage(`unknown section "${id}"`);
    } else if (a === '--rows') {
      opts.rows = value().split(',').filter(Boolean);
      for (const id of opts.rows) if (!BOOT_ROWS.includes(id)) usage(`unknown boot row "${id}"`);
    } else if (a === '--runs') opts.runs = Math.round(positive(value()));
    else if (a === '--dns-seconds') opts.dnsSeconds = positive(value());
    else if (a === '--out') opts.out = resolve(value());
    else usage(`unknown option "${a}"`);
  }
  if (opts.runs === 0) opts.runs = opts.quick ? 5 : 30;
  if (opts.dnsSeconds === 0) opts.dnsSeconds = opts.quick ? 2 : 6;
  return opts;
}

async function main(): Promise<void> {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const opts = parseOptions(process.argv.slice(2), root);
  const began = Date.now();
  const log = (m: string): void => void process.stderr.write(`[bench +${((Date.now() - began) / 1000).toFixed(1)}s] ${m}\n`);

  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    log(`${signal}: cleaning up`);
    void runPendingCleanups().then(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const doc: BenchDocument = {
    schema: 'jitsu-bench/1',
    startedAt: new Date(began).toISOString(),
    durationSeconds: 0,
    command: ['node dist/bench/run.js', ...process.argv.slice(2)].join(' '),
    options: { quick: opts.quick, runs: opts.runs, dnsSeconds: opts.dnsSeconds, only: opts.only, rows: opts.rows },
    machine: await machineFacts(),
    sections: {},
  };
  const stale = await sweepStale();
  if (stale.length) log(`removed leftovers of an earlier run: ${stale.join(', ')}`);
  const selected = SECTIONS.filter((s) => opts.only.length === 0 || opts.only.includes(s.bench.id));
  for (const { bench, budgetS, quickBudgetS } of selected) {
    const out: SectionResult = emptySection(bench.id, bench.title);
    const t0 = Date.now();
    log(`section ${bench.id}: ${bench.title}`);
    try {
      await bench.run({ quick: opts.quick, runs: opts.runs, dnsSeconds: opts.dnsSeconds, rows: opts.rows, deadline: t0 + 1000 * (opts.quick ? quickBudgetS : budgetS), log, root }, out);
      if (out.status === 'ok' && Object.keys(out.skipped).length > 0) {
        out.status = Object.keys(out.metrics).length + Object.keys(out.values).length > 0 ? 'partial' : 'skipped';
      }
    } catch (err) {
      out.status = 'failed';
      out.error = err instanceof Error ? err.message : String(err);
      log(`section ${bench.id} failed: ${out.error}`);
    } finally {
      await runPendingCleanups();
    }
    out.durationMs = Date.now() - t0;
    doc.sections[bench.id] = out;
    for (const t of out.tables) process.stdout.write('\n' + tableText(t) + '\n');
    for (const [part, reason] of Object.entries(out.skipped)) process.stdout.write(`skipped ${bench.id}/${part}: ${reason}\n`);
    if (interrupted) break;
  }
  doc.durationSeconds = (Date.now() - began) / 1000;
  const headline = headlineTable(doc.sections);
  if (headline.rows.length) {
    doc.summary = headline;
    process.stdout.write('\n' + tableText(headline) + '\n');
  }

  mkdirSync(opts.out, { recursive: true });
  const boot = doc.sections['boot'];
  let svgName: string | undefined;
  if (boot?.samples) {
    svgName = 'boot-latency.svg';
    writeFileSync(join(opts.out, svgName), bootLatencySvg(boot.samples, boot.skipped, 'Boot to first byte per backend (summoned by a DNS query)'));
  }
  writeFileSync(join(opts.out, 'latest.json'), JSON.stringify(doc, null, 2) + '\n');
  writeFileSync(join(opts.out, 'latest.md'), renderMarkdown(doc, svgName));
  log(`wrote ${join(opts.out, 'latest.json')} and latest.md in ${doc.durationSeconds.toFixed(0)} s`);
}

// Keep a reference so the cleanup module is loaded before any benchmark registers steps.
void deferCleanup;

main().catch(async (err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.stack : String(err)}\n`);
  await runPendingCleanups();
  process.exit(1);
});
