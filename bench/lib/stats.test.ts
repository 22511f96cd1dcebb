import { describe, expect, it } from 'vitest';
import { fmt, percentile, summarize } from './stats.js';
import { bootLatencySvg } from './svg.js';
import { metricValue } from './daemon.js';
import { parseAAnswer, aQuery } from './net.js';

describe('bench statistics', () => {
  it('uses nearest-rank percentiles, so every figure was observed', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(xs, 50)).toBe(50);
    expect(percentile(xs, 99)).toBe(99);
    expect(percentile([7], 99)).toBe(7);
    expect(Number.isNaN(percentile([], 50))).toBe(true);
  });

  it('summarizes unsorted samples and ignores non-finite ones', () => {
    const s = summarize([3, 1, 2, Number.NaN, 4], 'ms');
    expect(s).toEqual({ unit: 'ms', n: 4, min: 1, median: 2, p99: 4, mean: 2.5, max: 4 });
  });

  it('formats 3 significant figures', () => {
    expect(fmt(0.012345)).toBe('0.0123');
    expect(fmt(123456.7)).toBe('123,457');
    expect(fmt(Number.NaN)).toBe('–');
  });
});

describe('boot latency chart', () => {
  it('draws one row per backend with a dot per run, and names skipped backends', () => {
    const svg = bootLatencySvg({ process: [4, 5, 6], qemu: [900, 1000] }, { container: 'crun missing' }, 'Boot <test>');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.match(/<circle /g)?.length).toBe(5);
    expect(svg).toContain('skipped: crun missing');
    expect(svg).toContain('Boot &lt;test&gt;');
    expect(svg).toContain('median 5 ms (n=3)');
    expect(svg).toContain('median 900 ms (n=2)');
    expect(svg).toContain('>1 s<');
  });
});

describe('bench parsers', () => {
  it('reads one labelled sample from Prometheus text', () => {
    const text = [
      '# TYPE jitsu_orchestration_seconds histogram',
      'jitsu_orchestration_seconds_sum{step="query_to_start"} 0.00042',
      'jitsu_orchestration_seconds_sum{step="ready_to_handover"} 0.5',
      'jitsu_orchestration_seconds_count{step="query_to_start"} 3',
    ].join('\n');
    expect(metricValue(text, 'jitsu_orchestration_seconds_sum', { step: 'ready_to_handover' })).toBe(0.5);
    expect(metricValue(text, 'jitsu_orchestration_seconds_count', { step: 'query_to_start' })).toBe(3);
    expect(metricValue(text, 'jitsu_orchestration_seconds', { step: 'query_to_start' })).toBeUndefined();
  });

  it('parses the A records of a reply built from its own query', () => {
    const q = aQuery('www.jt6.test', 0x4242);
    const answer = Buffer.concat([q, Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 205, 0, 9])]);
    answer[2] = 0x84;
    answer.writeUInt16BE(1, 6);
    expect(parseAAnswer(answer)).toEqual({ rcode: 0, addresses: ['10.205.0.9'] });
  });
});

describe('headline table', () => {
  it('pulls goal figures out of the sections and leaves out sections that did not run', async () => {
    const { headlineTable } = await import('./summary.js');
    const { emptySection } = await import('./types.js');
    const dns = emptySection('dns', 'DNS');
    dns.values = { 'jitsu-daemon qps': 120000, 'jitsu-daemon ratio to dnsmasq': 1.2, 'dnsmasq qps': 100000 };
    const t = headlineTable({ dns });
    expect(t.rows.length).toBeGreaterThan(0);
    expect(t.rows[0]).toEqual(['DNS qps, jitsu daemon (running services)', '120,000 qps = 1.20× dnsmasq', '≥ 1.0× dnsmasq on 2 cores']);
    expect(t.rows.some((r) => String(r[0]).startsWith('boot to first byte'))).toBe(false);
  });
});
