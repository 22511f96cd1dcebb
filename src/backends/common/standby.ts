import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BackendHandle } from '../backend.js';
import { readSmallFile, removeFile } from '../../system/files.js';

/**
 * What a backend's prepare() holds ahead for the next start (a container created, a QEMU waiting
 * for its template, a command waiting to exec), recorded in the service's run dir so any worker
 * thread, and a restarted daemon, finds it. `key` says what it was made for: a standby whose key is
 * not the service's current one is ended, never started.
 */
export interface Standby {
  key: string;
  handle: BackendHandle;
}

const standbyPath = (runDir: string): string => join(runDir, 'standby.json');

/** The record, if there is one and `check` (the backend's handle decoder) accepts its handle. */
export function readStandby(runDir: string, check: (handle: BackendHandle) => unknown): Standby | undefined {
  try {
    const doc = JSON.parse(readSmallFile(standbyPath(runDir), 'utf8')) as Partial<Standby>;
    if (typeof doc.key !== 'string' || typeof doc.handle !== 'object' || doc.handle === null) return undefined;
    check(doc.handle);
    return { key: doc.key, handle: doc.handle };
  } catch {
    return undefined; // none, or not one of ours: a new one is made
  }
}

export function writeStandby(runDir: string, standby: Standby): void {
  writeFileSync(standbyPath(runDir), JSON.stringify(standby));
}

export function removeStandby(runDir: string): void {
  removeFile(standbyPath(runDir));
}

/** Reads and removes the record: a standby that is taken is a running service, or is ended. */
export function takeStandby(runDir: string, check: (handle: BackendHandle) => unknown): Standby | undefined {
  const held = readStandby(runDir, check);
  removeStandby(runDir);
  return held;
}
