/**
 * Parsers for `xl list` (the table) and `xl list -l` (JSON). Formats follow xl(1) and libxl's JSON
 * generator; see test/fixtures/xl/README.md for which samples were captured and which are documented.
 */
import type { RuntimeState } from '../backend.js';

export interface XlListEntry {
  name: string;
  domid: number;
  memoryMiB: number;
  vcpus: number;
  /** The six-letter flag field, e.g. `-b----`, `--p---`. */
  flags: string;
  cpuSeconds: number;
}

export interface XlLongEntry {
  domid: number;
  name: string;
  type?: string;
  maxMemKiB?: number;
  kernel?: string;
  nics: Array<{ mac?: string; bridge?: string }>;
}

const ROW_RE = /^(.*\S)\s+(\d+)\s+(\d+)\s+(\d+)\s+([rbpscd-]{6})\s+(\d+(?:\.\d+)?)\s*$/;

/** Parses the table `xl list` prints. Unknown lines (header, warnings) are skipped, not fatal. */
export function parseXlList(text: string): XlListEntry[] {
  const out: XlListEntry[] = [];
  for (const line of text.split('\n')) {
    const m = ROW_RE.exec(line);
    if (!m) continue;
    out.push({
      name: m[1]!.trim(),
      domid: Number(m[2]),
      memoryMiB: Number(m[3]),
      vcpus: Number(m[4]),
      flags: m[5]!,
      cpuSeconds: Number(m[6]),
    });
  }
  return out;
}

/** xl's six state letters (r b p s c d) -> the backend contract's coarse state. */
export function stateFromFlags(flags: string): RuntimeState {
  // Shut down, crashed or dying: the domain is on its way out and serves nothing.
  if (/[scd]/.test(flags)) return 'stopped';
  if (flags.includes('p')) return 'paused';
  return 'running';
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses `xl list -l` JSON (an array of `{domid, config: libxl_domain_config}`). Throws on non-JSON. */
export function parseXlListLong(text: string): XlLongEntry[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  const doc: unknown = JSON.parse(trimmed);
  const items = Array.isArray(doc) ? doc : [doc];
  const out: XlLongEntry[] = [];
  for (const item of items) {
    if (!isRecord(item) || typeof item['domid'] !== 'number') continue;
    const config = isRecord(item['config']) ? item['config'] : {};
    const cInfo = isRecord(config['c_info']) ? config['c_info'] : {};
    const bInfo = isRecord(config['b_info']) ? config['b_info'] : {};
    const entry: XlLongEntry = {
      domid: item['domid'],
      name: typeof cInfo['name'] === 'string' ? cInfo['name'] : '',
      nics: [],
    };
    if (typeof cInfo['type'] === 'string') entry.type = cInfo['type'];
    if (typeof bInfo['max_memkb'] === 'number') entry.maxMemKiB = bInfo['max_memkb'];
    // libxl keys a union's fields by its discriminator: `type.pv`, `type.pvh`, `type.hvm`.
    for (const key of ['type.pv', 'type.pvh', 'type.hvm']) {
      const t = bInfo[key];
      if (isRecord(t) && typeof t['kernel'] === 'string') entry.kernel = t['kernel'];
    }
    if (entry.kernel === undefined && typeof bInfo['kernel'] === 'string') entry.kernel = bInfo['kernel'];
    const nics = Array.isArray(config['nics']) ? config['nics'] : [];
    for (const nic of nics) {
      if (!isRecord(nic)) continue;
      const n: { mac?: string; bridge?: string } = {};
      if (typeof nic['mac'] === 'string') n.mac = nic['mac'];
      if (typeof nic['bridge'] === 'string') n.bridge = nic['bridge'];
      entry.nics.push(n);
    }
    out.push(entry);
  }
  return out;
}
