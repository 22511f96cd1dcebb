/**
 * Hand-written SVG of the boot-latency distribution: one row per backend with a box (p25–p75),
 * whiskers (min–p99), the median, and every run as a dot. Log time axis, since a process boots
 * in milliseconds and a TCG microVM in about a second.
 */
import { percentile } from './stats.js';

const W = 760;
const ROW = 64;
const LEFT = 150;
const RIGHT = 30;
const TOP = 40;
const AXIS = 62;

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function niceTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo * 0.999 && v <= hi * 1.001) ticks.push(v);
    }
  }
  return ticks;
}

function label(ms: number): string {
  return ms >= 1000 ? `${Number((ms / 1000).toPrecision(3))} s` : `${Number(ms.toPrecision(3))} ms`;
}

/** `series`: backend -> boot-to-first-byte samples in ms. Empty series are drawn as "skipped". */
export function bootLatencySvg(series: Record<string, number[]>, skipped: Record<string, string>, title: string): string {
  const names = [...new Set([...Object.keys(series), ...Object.keys(skipped)])];
  const all = Object.values(series).flat().filter((x) => x > 0 && Number.isFinite(x));
  const lo = all.length ? 10 ** Math.floor(Math.log10(Math.min(...all))) : 1;
  const hi = all.length ? 10 ** Math.ceil(Math.log10(Math.max(...all))) : 1000;
  const plotW = W - LEFT - RIGHT;
  const x = (ms: number): number => LEFT + ((Math.log10(ms) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo) || 1)) * plotW;
  const H = TOP + names.length * ROW + AXIS;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>`,
  ];
  const axisY = TOP + names.length * ROW;
  for (const t of niceTicks(lo, hi)) {
    const tx = x(t).toFixed(1);
    parts.push(`<line x1="${tx}" y1="${TOP}" x2="${tx}" y2="${axisY}" stroke="#e4e4e4"/>`);
    parts.push(`<text x="${tx}" y="${axisY + 16}" text-anchor="middle" fill="#444">${label(t)}</text>`);
  }
  parts.push(`<line x1="${LEFT}" y1="${axisY}" x2="${W - RIGHT}" y2="${axisY}" stroke="#444"/>`);
  parts.push(`<text x="${LEFT + plotW / 2}" y="${axisY + 36}" text-anchor="middle" fill="#444">DNS query sent → first byte received (log scale)</text>`);
  const colours = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e'];
  names.forEach((name, i) => {
    const cy = TOP + i * ROW + ROW / 2;
    const samples = (series[name] ?? []).filter((v) => v > 0 && Number.isFinite(v)).sort((a, b) => a - b);
    parts.push(`<text x="${LEFT - 10}" y="${cy + 4}" text-anchor="end" font-weight="bold">${esc(name)}</text>`);
    if (samples.length === 0) {
      parts.push(`<text x="${LEFT + 8}" y="${cy + 4}" fill="#888">skipped: ${esc((skipped[name] ?? 'no samples').slice(0, 90))}</text>`);
      return;
    }
    const c = colours[i % colours.length]!;
    const [p25, p50, p75, p99] = [25, 50, 75, 99].map((p) => percentile(samples, p)) as [number, number, number, number];
    const min = samples[0]!;
    parts.push(`<line x1="${x(min).toFixed(1)}" y1="${cy}" x2="${x(p99).toFixed(1)}" y2="${cy}" stroke="${c}"/>`);
    for (const v of [min, p99]) parts.push(`<line x1="${x(v).toFixed(1)}" y1="${cy - 8}" x2="${x(v).toFixed(1)}" y2="${cy + 8}" stroke="${c}"/>`);
    parts.push(
      `<rect x="${x(p25).toFixed(1)}" y="${cy - 12}" width="${Math.max(1, x(p75) - x(p25)).toFixed(1)}" height="24" fill="${c}" fill-opacity="0.18" stroke="${c}"/>`,
    );
    parts.push(`<line x1="${x(p50).toFixed(1)}" y1="${cy - 14}" x2="${x(p50).toFixed(1)}" y2="${cy + 14}" stroke="${c}" stroke-width="3"/>`);
    samples.forEach((v, k) => {
      // Deterministic jitter so overlapping runs stay visible.
      const jy = cy + 18 + ((k * 7) % 9) - 4;
      parts.push(`<circle cx="${x(v).toFixed(1)}" cy="${jy}" r="2" fill="${c}" fill-opacity="0.6"/>`);
    });
    parts.push(`<text x="${x(p50).toFixed(1)}" y="${cy - 17}" text-anchor="middle" fill="${c}">median ${label(p50)} (n=${samples.length})</text>`);
  });
  parts.push(
    `<text x="${LEFT + plotW / 2}" y="${axisY + 54}" text-anchor="middle" fill="#777" font-size="11">box: p25–p75 · thick bar: median · whiskers: min–p99 · dots: every run</text>`,
  );
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
