/**
 * The headline table: the figures DESIGN.md §6 sets goals for, pulled out of the sections, next to
 * their goals. Missing figures (skipped parts) show as "–"; nothing is judged pass/fail.
 */
import { fmt, type Stat } from './stats.js';
import type { SectionResult, Table } from './types.js';

type Sections = Record<string, SectionResult>;

function metric(s: Sections, section: string, name: string): Stat | undefined {
  return s[section]?.metrics[name];
}

function value(s: Sections, section: string, name: string): number | undefined {
  const v = s[section]?.values[name];
  return typeof v === 'number' ? v : undefined;
}

const ms = (x: number | undefined): string => (x === undefined ? '–' : `${fmt(x)} ms`);
const us = (x: number | undefined): string => (x === undefined ? '–' : `${fmt(x)} µs`);
const ratio = (x: number | undefined): string => (x === undefined ? '–' : `${x.toFixed(2)}×`);

export function headlineTable(s: Sections): Table {
  // [section, metric, figure, goal]; rows of sections that did not run are left out.
  const rows: string[][] = [];
  const qps = (id: string): string => {
    const q = value(s, 'dns', `${id} qps`);
    return q === undefined ? '–' : `${fmt(q)} qps = ${ratio(value(s, 'dns', `${id} ratio to dnsmasq`))} dnsmasq`;
  };
  rows.push(['dns', 'DNS qps, jitsu daemon (running services)', qps('jitsu-daemon'), '≥ 1.0× dnsmasq on 2 cores']);
  rows.push(['dns', 'DNS qps, jitsu DNS layer only: default UDP path / Node dgram / 2 cluster workers', `${qps('jitsu-dns-layer')}; ${qps('jitsu-dns-layer-dgram')}; ${qps('jitsu-dns-layer-2w')}`, '≥ 1.0× dnsmasq']);
  const cpu = (id: string): string => fmt(value(s, 'dns', `${id} server CPU µs per query`));
  rows.push(['dns', 'server CPU per answer, µs: dnsmasq / unbound 1t / knot 1w / nsd 1p / jitsu layer / jitsu layer dgram / jitsu daemon', ['dnsmasq', 'unbound-1t', 'knot-1w', 'nsd-1p', 'jitsu-dns-layer', 'jitsu-dns-layer-dgram', 'jitsu-daemon'].map(cpu).join(' / '), 'reported']);
  rows.push(['dns', 'DNS qps, dnsmasq / unbound 1 thread / unbound 2 threads / knot 1 UDP worker / nsd 1 server', ['dnsmasq', 'unbound-1t', 'unbound-2t', 'knot-1w', 'nsd-1p'].map((id) => fmt(value(s, 'dns', `${id} qps`))).join(' / '), 'reference']);
  for (const b of ['process', 'container', 'container-precreate', 'qemu']) {
    const st = metric(s, 'boot', `${b} query to first byte`);
    rows.push(['boot', `boot to first byte, ${b} (median / p99)`, st ? `${ms(st.median)} / ${ms(st.p99)}` : `– (${s['boot']?.skipped[b] ?? 'not run'})`.slice(0, 120), 'reported side by side']);
  }
  const qts = ['process', 'container', 'container-precreate', 'qemu'].map((b) => metric(s, 'boot', `${b} overhead query_to_start`)).filter((x): x is Stat => x !== undefined);
  rows.push([
    'boot',
    'daemon overhead: query → backend start call (median / worst p99 over backends)',
    qts.length ? `${us(Math.max(...qts.map((x) => x.median)))} / ${us(Math.max(...qts.map((x) => x.p99)))}` : '–',
    '< 1 ms p99',
  ]);
  for (const mask of ['park', 'handshake']) {
    const h = Object.entries(s['firstbyte']?.metrics ?? {}).filter(([k]) => k.endsWith(`/${mask} overhead ready_to_handover`)).map(([, v]) => v);
    rows.push([
      'firstbyte',
      `daemon overhead: ready → connections handed over, ${mask} (median / worst p99)`,
      h.length ? `${us(Math.max(...h.map((x) => x.median)))} / ${us(Math.max(...h.map((x) => x.p99)))}` : '–',
      '< 1 ms p99',
    ]);
  }
  for (const profile of ['slow', 'qemu']) {
    const cells = ['none', 'activate', 'park', 'handshake']
      .map((m) => {
        const st = metric(s, 'firstbyte', `${profile}/${m} first byte`);
        if (!st) return undefined;
        return `${m} ${ms(st.median)} (${value(s, 'firstbyte', `${profile}/${m} SYN retransmissions`) ?? '–'} SYN retrans)`;
      })
      .filter(Boolean);
    rows.push([
      'firstbyte',
      `first byte, cold ${profile === 'slow' ? 'process with 1.5 s init' : 'qemu microVM'} (median, SYN retransmits over all runs)`,
      cells.length ? cells.join('; ') : '–',
      'masked ≤ boot + 5 ms, 0 SYN retransmits',
    ]);
  }
  let heldCount = '';
  const held = ['activate', 'park', 'handshake']
    .map((m) => {
      const key = Object.keys(s['hold']?.values ?? {}).find((k) => k.startsWith(`${m} x`) && k.endsWith(' served'));
      if (!key) return undefined;
      const base = key.slice(0, -' served'.length);
      heldCount = base.slice(base.indexOf(' x') + 2);
      return `${m}: ${fmt(value(s, 'hold', `${base} served`))} served, ${fmt(value(s, 'hold', `${base} SYN retransmissions`))} SYN retrans, ${fmt(value(s, 'hold', `${base} daemon RSS growth bytes per connection`))} B/conn in the daemon`;
    })
    .filter(Boolean);
  rows.push(['hold', `connections held during one boot (${heldCount || '10,000'} at once)`, held.length ? held.join('; ') : '–', '10k, bounded memory, 0 lost']);
  const summons = [4, 16]
    .map((n) => {
      const st = metric(s, 'hold', `summons per second x${n}`);
      return st ? `${n} at once: ${fmt(st.median)}/s (${value(s, 'hold', `summon burst x${n}: failed boots`) ?? 0} failed)` : undefined;
    })
    .filter(Boolean);
  rows.push(['hold', 'summons per second (process services)', summons.length ? summons.join('; ') : '–', 'reported']);
  return {
    title: 'Headline figures (goals from DESIGN.md §6; no pass/fail)',
    columns: ['metric', 'this run', 'goal'],
    rows: rows.filter((r) => s[r[0]!] !== undefined).map((r) => r.slice(1)),
  };
}
