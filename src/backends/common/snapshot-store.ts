/**
 * The snapshot dir (--snapshot-dir, --snapshot-max-mb): templates and hibernated guests of every
 * service share it and its bound. Usage is what the filesystem says (allocated blocks: RAM files
 * are sparse), read when asked, never kept as a count that could drift.
 */
import { mkdirSync, readdirSync, statSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import type { SnapshotStore } from '../backend.js';

/** Bytes under `dir` (or under each of its top-level entries: `bySubdir`, one per service). */
export function storeUsage(dir: string): { total: number; bySubdir: Record<string, number> } {
  const bySubdir: Record<string, number> = {};
  let total = 0;
  const walk = (d: string): number => {
    let sum = 0;
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return 0;
    }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) sum += walk(p);
      else sum += (statSync(p, { throwIfNoEntry: false })?.blocks ?? 0) * 512;
    }
    return sum;
  };
  let top;
  try {
    top = readdirSync(dir, { withFileTypes: true });
  } catch {
    return { total, bySubdir };
  }
  for (const e of top) {
    const bytes = e.isDirectory() ? walk(join(dir, e.name)) : (statSync(join(dir, e.name), { throwIfNoEntry: false })?.blocks ?? 0) * 512;
    if (e.isDirectory()) bySubdir[e.name] = bytes;
    total += bytes;
  }
  return { total, bySubdir };
}

/** Room for `bytes` more under the store's bound and on its filesystem. */
export function storeHasRoom(store: SnapshotStore, bytes: number): { ok: true } | { ok: false; reason: string } {
  mkdirSync(store.dir, { recursive: true, mode: 0o711 });
  const used = storeUsage(store.dir).total;
  if (used + bytes > store.maxBytes) {
    return { ok: false, reason: `the snapshot dir ${store.dir} holds ${mib(used)} MiB; ${mib(bytes)} MiB more would pass --snapshot-max-mb ${mib(store.maxBytes)}` };
  }
  const fs = statfsSync(store.dir);
  const freeBytes = fs.bavail * fs.bsize;
  if (freeBytes < bytes) return { ok: false, reason: `the snapshot dir ${store.dir} has ${mib(freeBytes)} MiB free, ${mib(bytes)} MiB needed` };
  return { ok: true };
}

function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(0);
}
