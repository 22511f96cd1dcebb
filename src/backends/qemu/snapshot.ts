/**
 * Memory snapshots of qemu services (`snapshot=template`): where a service's template lives, what
 * it is keyed by, and whether one on disk may be restored. The QMP side (save, restore) is in
 * index.ts; the guest side of clone safety in agent.ts.
 *
 * A template is a directory `<snapshot-dir>/<service>/<key>/` holding `mem` (the guest's RAM: the
 * file its memory-backend-file maps), `state` (device state, saved with x-ignore-shared so RAM is
 * not in it) and `meta.json`, written last: a directory without a valid meta.json is unfinished and
 * never restored. The key hashes everything a restore must match (QEMU binary and version, the
 * argv with run-specific paths taken out — machine, CPU, memory, devices, kernel command line, MAC,
 * IP —, and the kernel and initrd files), so a changed service gets a new template, never a wrong
 * guest. The state file's hash is checked before every restore; a mismatch is a cold boot.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage } from '../../errors.js';
import { findExecutable } from '../common/path-lookup.js';
import type { SnapshotStore } from '../backend.js';

export interface TemplateMeta {
  key: string;
  service: string;
  memBytes: number;
  stateBytes: number;
  stateSha256: string;
  qemuVersion: string;
  createdAt: string;
}

export interface TemplatePaths {
  dir: string;
  mem: string;
  state: string;
  meta: string;
}

export function templatePaths(store: SnapshotStore, service: string, key: string): TemplatePaths {
  const dir = join(store.dir, service, key);
  return { dir, mem: join(dir, 'mem'), state: join(dir, 'state'), meta: join(dir, 'meta.json') };
}

/** A directory a template is built in, renamed to its key once complete. */
export function buildPaths(store: SnapshotStore, service: string): TemplatePaths {
  const dir = join(store.dir, service, `.build-${process.pid}-${Date.now().toString(36)}`);
  return { dir, mem: join(dir, 'mem'), state: join(dir, 'state'), meta: join(dir, 'meta.json') };
}

const versions = new Map<string, string>();

/** `qemu --version`'s first line, once per binary (path, size and mtime): a summon only stats it. */
export function qemuVersion(binary: string): string {
  let id = binary;
  const resolved = findExecutable(binary, process.env['PATH'] ?? '');
  const st = resolved === undefined ? undefined : statSync(resolved, { throwIfNoEntry: false });
  // Not found: the version call below fails the same way.
  if (resolved !== undefined && st !== undefined) id = `${resolved}:${st.size}:${st.mtimeMs}`;
  const known = versions.get(id);
  if (known !== undefined) return known;
  const line = execFileSync(binary, ['--version'], { encoding: 'utf8', timeout: 5000 }).split('\n')[0]!.trim();
  versions.set(id, `${id} ${line}`);
  return `${id} ${line}`;
}

const fileHashes = new Map<string, string>();

/** sha256 of a file, cached by path, size and mtime (kernels are MBs; a restore must not hash them). */
export function fileIdentity(path: string): string {
  const st = statSync(path);
  const id = `${path}:${st.size}:${st.mtimeMs}:${st.ino}`;
  let sum = fileHashes.get(id);
  if (sum === undefined) {
    sum = createHash('sha256').update(readFileSync(path)).digest('hex');
    fileHashes.set(id, sum);
  }
  return sum;
}

/**
 * The template key: QEMU's identity, the argv with the run-specific values (`runSpecific`: run-dir
 * paths, tap name, RAM file path) replaced by placeholders, and the content of every file QEMU loads.
 */
export function templateKey(version: string, argv: readonly string[], runSpecific: readonly string[], files: readonly string[]): string {
  const h = createHash('sha256').update(version).update('\0');
  const ordered = [...runSpecific].filter((v) => v.length > 0).sort((a, b) => b.length - a.length);
  for (const arg of argv) {
    let a = arg;
    ordered.forEach((v, i) => (a = a.split(v).join(`<${i}>`)));
    h.update(a).update('\0');
  }
  for (const f of files) h.update(fileIdentity(f)).update('\0');
  return h.digest('hex').slice(0, 20);
}

export type TemplateCheck = { ok: true; paths: TemplatePaths; meta: TemplateMeta } | { ok: false; reason: string; present: boolean };

/** Whether the template for this key may be restored: complete, matching, and its state intact. */
export function checkTemplate(store: SnapshotStore, service: string, key: string, memBytes: number): TemplateCheck {
  const paths = templatePaths(store, service, key);
  let meta: TemplateMeta;
  try {
    meta = JSON.parse(readFileSync(paths.meta, 'utf8')) as TemplateMeta;
  } catch (err) {
    const present = statSync(paths.dir, { throwIfNoEntry: false }) !== undefined;
    return { ok: false, present, reason: present ? `template ${paths.dir} has no readable meta.json (${errorMessage(err)})` : 'no template yet' };
  }
  const bad = (reason: string): TemplateCheck => ({ ok: false, present: true, reason: `template ${paths.dir}: ${reason}` });
  if (meta.key !== key) return bad(`meta.json is for key ${String(meta.key)}`);
  const mem = statSync(paths.mem, { throwIfNoEntry: false });
  if (mem === undefined) return bad('the memory file is missing');
  if (mem.size !== memBytes || meta.memBytes !== memBytes) return bad(`the memory file has ${mem.size} bytes, expected ${memBytes}`);
  let state: Buffer;
  try {
    state = readFileSync(paths.state);
  } catch (err) {
    return bad(`the state file cannot be read (${errorMessage(err)})`);
  }
  if (state.length !== meta.stateBytes || createHash('sha256').update(state).digest('hex') !== meta.stateSha256) return bad('the state file does not match its hash (corrupt or truncated)');
  return { ok: true, paths, meta };
}

/** Seals a built template: meta.json last, then the directory takes the key's name (replacing older ones of this service). */
export function sealTemplate(store: SnapshotStore, service: string, key: string, build: TemplatePaths, qemuVersionLine: string, memBytes: number): TemplatePaths {
  const state = readFileSync(build.state);
  const meta: TemplateMeta = {
    key,
    service,
    memBytes,
    stateBytes: state.length,
    stateSha256: createHash('sha256').update(state).digest('hex'),
    qemuVersion: qemuVersionLine,
    createdAt: new Date().toISOString(),
  };
  writeFileSync(build.meta, `${JSON.stringify(meta, null, 2)}\n`);
  const final = templatePaths(store, service, key);
  removeTemplates(store, service); // one template per service; builds in progress stay
  renameSync(build.dir, final.dir);
  return final;
}

/** Where a service's hibernated guest lives, beside its templates (never removed with them). */
export const HIBERNATED_DIR = 'hibernated';

/** Removes this service's templates (or those `which` selects); unfinished builds of dead daemons too. */
export function removeTemplates(store: SnapshotStore, service: string, which: (name: string) => boolean = () => true): void {
  const root = join(store.dir, service);
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return;
  }
  for (const name of names) {
    if (name === HIBERNATED_DIR || (name.startsWith('.build-') && buildIsOurs(name))) continue;
    if (name.startsWith('.build-') || which(name)) rmSync(join(root, name), { recursive: true, force: true });
  }
}

/** A build directory of a process still running (this daemon's, perhaps in another worker). */
function buildIsOurs(name: string): boolean {
  const pid = Number(/^\.build-(\d+)-/.exec(name)?.[1]);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

