import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BackendHandle, ServiceSpec } from '../backends/backend.js';
import { JitsuError } from '../errors.js';

/** What survives a daemon restart for one service: enough to find it again, and to stop it. */
export interface PersistedService {
  spec: ServiceSpec;
  handle: BackendHandle;
  /**
   * The handle is not a running service but what the backend holds ahead for its next start
   * (Backend.prepare): a restarted daemon lets the backend reuse it, or destroys it when the service
   * is no longer configured.
   */
  standby?: boolean;
  suspended: boolean;
  bootCount: number;
  lastBootMs?: number;
}

interface StateFile {
  version: 1;
  services: Record<string, PersistedService>;
}

/**
 * The state directory's `state.json`. Writes are atomic (temp file + rename) and serialised, so a
 * daemon killed mid-write leaves the previous complete file, never a torn one. A write starts on
 * the event loop's next turn (after the I/O callbacks, so a boot's answers go out before it) and
 * takes every change made until then: a burst of changes costs one write, and flush() covers every
 * change made before it was called.
 */
export class StateStore {
  private readonly path: string;
  private services: Record<string, PersistedService> = {};
  private writing: Promise<void> = Promise.resolve();
  /** The write that has not started yet: later changes join it. */
  private queued: Promise<void> | undefined;

  constructor(readonly dir: string) {
    this.path = join(dir, 'state.json');
  }

  async load(): Promise<Record<string, PersistedService>> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return (this.services = {});
      throw err;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new JitsuError('STATE_CORRUPT', `${this.path} is not valid JSON: move it aside (services it lists may need stopping by hand)`);
    }
    const file = parsed as Partial<StateFile>;
    if (file.version !== 1 || typeof file.services !== 'object' || file.services === null) {
      throw new JitsuError('STATE_CORRUPT', `${this.path} has an unknown format: move it aside`);
    }
    this.services = { ...file.services };
    return { ...this.services };
  }

  /** Record (or with `undefined`, forget) one service; resolves once a file holding it is on disk. */
  set(service: string, entry: PersistedService | undefined): Promise<void> {
    if (entry) this.services[service] = entry;
    else delete this.services[service];
    if (this.queued) return this.queued;
    // A failed write must not wedge later ones: each write starts from the previous outcome, either way.
    const next = this.writing
      .catch(() => undefined)
      .then(() => new Promise<void>((resolve) => setImmediate(resolve)))
      .then(() => {
        this.queued = undefined;
        return this.write({ version: 1, services: { ...this.services } });
      });
    this.queued = next;
    this.writing = next;
    return next;
  }

  private async write(file: StateFile): Promise<void> {
    const tmp = `${this.path}.tmp`;
    await writeFile(tmp, JSON.stringify(file, null, 1), { mode: 0o600 });
    await rename(tmp, this.path);
  }

  flush(): Promise<void> {
    return this.writing.catch(() => undefined);
  }
}
