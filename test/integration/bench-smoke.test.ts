/**
 * Smoke test of the benchmark suite: `node dist/bench/run.js --quick --only micro,dns` with tiny
 * bounds must write a latest.json of the documented shape with positive, finite figures (no
 * thresholds: the suite reports numbers, it does not judge them) and a markdown report.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Stat } from '../../bench/lib/stats.js';
import { ROOT, haveCommand, isRoot } from '../helpers/daemon.js';

const run = promisify(execFile);
const RUN_JS = join(ROOT, 'dist/bench/run.js');

interface Section {
  id: string;
  status: string;
  skipped: Record<string, string>;
  metrics: Record<string, Stat>;
  values: Record<string, number | string>;
  tables: { title: string; columns: string[]; rows: unknown[][] }[];
}

interface Doc {
  schema: string;
  options: { quick: boolean; only: string[] };
  machine: { cpuModel: string; cores: number; kernel: string; node: string; tools: Record<string, string> };
  sections: Record<string, Section>;
}

const positive = (x: unknown): boolean => typeof x === 'number' && Number.isFinite(x) && x > 0;

describe.skipIf(!isRoot() || !haveCommand('dnsperf'))('bench smoke: --quick --only micro,dns', () => {
  const out = mkdtempSync(join(tmpdir(), 'jt6-smoke-'));
  let doc: Doc;
  let stdout = '';

  beforeAll(async () => {
    if (!existsSync(RUN_JS)) await run('npx', ['tsc', '-p', ROOT], { cwd: ROOT, timeout: 300_000 }).catch(() => undefined);
    const r = await run(process.execPath, [RUN_JS, '--quick', '--only', 'micro,dns', '--dns-seconds', '1', '--out', out], {
      cwd: ROOT,
      timeout: 170_000,
      maxBuffer: 8 << 20,
    });
    stdout = r.stdout;
    doc = JSON.parse(readFileSync(join(out, 'latest.json'), 'utf8')) as Doc;
  }, 180_000);

  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('records the machine and the tool versions', () => {
    expect(doc.schema).toBe('jitsu-bench/1');
    expect(doc.options).toMatchObject({ quick: true, only: ['micro', 'dns'] });
    expect(doc.machine.cores).toBeGreaterThan(0);
    expect(doc.machine.node).toMatch(/^v\d+/);
    expect(Object.keys(doc.machine.tools).sort()).toEqual(['crun', 'dig', 'dnsmasq', 'dnsperf', 'knot', 'nsd', 'qemu', 'unbound']);
    expect(doc.machine.tools['dnsperf']).toMatch(/^\d+\.\d+/);
    expect(Object.keys(doc.sections)).toEqual(['micro', 'dns']);
  });

  it('micro: every operation has positive finite ns/op statistics', () => {
    const micro = doc.sections['micro']!;
    expect(micro.status).toBe('ok');
    const names = Object.keys(micro.metrics);
    expect(names).toEqual(expect.arrayContaining(['dns decodeMessage (query, EDNS)', 'dns encodeMessage (answer A + SOA)', 'dns handler, cached answer (UDP)', 'pdu FrameView.parse (TCP SYN)']));
    for (const name of names) {
      const s = micro.metrics[name]!;
      expect(s.unit, name).toBe('ns/op');
      expect(s.n, name).toBeGreaterThan(0);
      for (const k of ['min', 'median', 'p99', 'mean', 'max'] as const) expect(positive(s[k]), `${name} ${k}=${s[k]}`).toBe(true);
      expect(s.min).toBeLessThanOrEqual(s.median);
      expect(s.median).toBeLessThanOrEqual(s.p99);
      expect(positive(micro.values[`${name} ops/s`]), name).toBe(true);
    }
  });

  it('dns: every server has a positive qps and a ratio to dnsmasq, or says why it was skipped', () => {
    const dns = doc.sections['dns']!;
    expect(['ok', 'partial']).toContain(dns.status);
    const ids = ['dnsmasq', 'unbound-1t', 'unbound-2t', 'knot-1w', 'nsd-1p', 'jitsu-dns-layer', 'jitsu-dns-layer-dgram', 'jitsu-dns-layer-2w', 'jitsu-daemon', 'jitsu-daemon-rrl-off', 'jitsu-daemon-rrl-on'];
    for (const id of ids) {
      if (dns.skipped[id] !== undefined) {
        expect(dns.skipped[id]!.length, id).toBeGreaterThan(0);
        continue;
      }
      expect(positive(dns.values[`${id} qps`]), `${id} qps`).toBe(true);
      expect(positive(dns.values[`${id} ratio to dnsmasq`]), `${id} ratio`).toBe(true);
      expect(positive(dns.values[`${id} dnsperf cores`]), `${id} client CPU`).toBe(true);
    }
    // The reference and our own DNS layer must have run for the ratios to mean anything.
    expect(dns.skipped['dnsmasq']).toBeUndefined();
    expect(dns.skipped['jitsu-dns-layer']).toBeUndefined();
    expect(dns.values['dnsmasq ratio to dnsmasq']).toBe(1);
    expect(dns.tables[0]!.rows.length).toBe(ids.filter((id) => dns.skipped[id] === undefined).length);
  });

  it('writes a markdown report and prints the tables', () => {
    const md = readFileSync(join(out, 'latest.md'), 'utf8');
    expect(md).toContain('# Jitsu benchmark report');
    expect(md).toContain('| server | qps (median) | ratio to dnsmasq');
    expect(stdout).toContain('Per-operation cost');
    // Only the boot section draws the chart.
    expect(existsSync(join(out, 'boot-latency.svg'))).toBe(false);
  });
});
