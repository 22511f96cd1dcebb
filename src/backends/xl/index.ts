/**
 * Xen backend driving the `xl` CLI, with the original Jitsu's libxl keys.
 * Tested on a real Xen 4.17 under emulation only (QEMU TCG, PV dom0 and domUs: test/integration/xl-xen.test.ts);
 * not on hardware, not on ARM; see README.md.
 */
import { access, readFile, rm, writeFile } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Backend, BackendHandle, RuntimeState, ServiceSpec, StopMode } from '../backend.js';
import { JitsuError, errorCode } from '../../errors.js';
import { callAborted, type BoundedCall } from '../common/abort.js';
import { handleCodec } from '../common/handle.js';
import { rxPackets, tcpConnects } from '../common/readiness.js';
import { abortableSleep } from '../common/sleep.js';
import { parseXlDomain, renderXlConfig, XL_OPTIONS } from './config.js';
import { mapXlFailure, runXl, xlArgv, type XlOp } from './command.js';
import { parseXlList, stateFromFlags, type XlListEntry } from './parse.js';

export interface XlBackendOptions {
  /** The xl binary (default `xl` from PATH; Debian's /usr/sbin/xl is a wrapper that needs a running Xen). */
  xl?: string;
  /** Limit for `xl create` (domain build + hotplug scripts). */
  createTimeoutMs?: number;
  /** How long `xl shutdown -w` may take before the domain is destroyed instead. */
  shutdownTimeoutMs?: number;
  /** Limit for the quick commands (list, pause, unpause, destroy). */
  commandTimeoutMs?: number;
  /** Poll interval of the ready check. */
  pollMs?: number;
}

const aborted = (call: BoundedCall, service: string, signal: AbortSignal): JitsuError => callAborted('xl', call, service, signal);

interface XlData {
  /** The domain's name (absent: the service's name, as the config defaults it). */
  domain?: string;
  domid?: number;
  /** The xl config file start() wrote. */
  config?: string;
}

/** Nothing is required: a domain is found by name, and the name defaults to the service's. */
const xlHandle = handleCodec<XlData>({ backend: 'xl', required: {} });

function domainOf(handle: BackendHandle): string {
  return xlHandle.read(handle).data.domain ?? handle.service;
}

/** The domid this handle was made for, when known (handles from start and adoption carry it). */
function domidOf(handle: BackendHandle): number | undefined {
  return xlHandle.read(handle).data.domid;
}

export function createXlBackend(opts: XlBackendOptions = {}): Backend {
  const xl = opts.xl ?? 'xl';
  const createTimeoutMs = opts.createTimeoutMs ?? 120_000;
  const shutdownTimeoutMs = opts.shutdownTimeoutMs ?? 30_000;
  const commandTimeoutMs = opts.commandTimeoutMs ?? 30_000;
  const pollMs = opts.pollMs ?? 5;

  /** Runs xl and throws the mapped JitsuError on failure; returns stdout. */
  async function xlOrThrow(op: XlOp, argv: string[], domain: string | undefined, timeoutMs: number, signal?: AbortSignal): Promise<string> {
    const r = await runXl(xl, argv, timeoutMs, signal);
    if (r.exitCode === 0) return r.stdout;
    throw mapXlFailure(op, argv, domain, r);
  }

  async function find(domain: string): Promise<XlListEntry | undefined> {
    const out = await xlOrThrow('list', xlArgv.list(), undefined, commandTimeoutMs);
    return parseXlList(out).find((e) => e.name === domain);
  }

  function handleFor(spec: ServiceSpec, entry: XlListEntry, mac: string, configPath: string): BackendHandle {
    return {
      backend: 'xl',
      service: spec.service,
      // netback names the host side of a guest's first NIC vif<domid>.0.
      link: `vif${entry.domid}.0`,
      mac,
      data: xlHandle.write({ domain: entry.name, domid: entry.domid, config: configPath }),
    };
  }

  /** Where stop mode hibernate saves the domain: beside its config, in the service's run dir. */
  function saveFile(handle: BackendHandle): string {
    return join(dirname(String(handle.data['config'])), `xl-${domainOf(handle)}.save`);
  }

  function handleKey(handle: BackendHandle): string {
    return `${domainOf(handle)}:${String(domidOf(handle))}`;
  }

  /** This handle's domain is in its save file (complete: the `.of` file is written after xl save). */
  async function hibernated(handle: BackendHandle): Promise<boolean> {
    try {
      return (await readFile(`${saveFile(handle)}.of`, 'utf8')) === handleKey(handle);
    } catch {
      return false;
    }
  }

  /** Stops a domain, treating "no such domain" as already stopped (stop is idempotent). */
  async function stopQuietly(op: XlOp, argv: string[], domain: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    try {
      await xlOrThrow(op, argv, domain, timeoutMs, signal);
    } catch (err) {
      if (errorCode(err) === 'NOT_RUNNING') return;
      // Another destroy (an operator, a second toolstack) may have ended the domain meanwhile: xl then fails
      // with its own lock or teardown error (Xen 4.17: "destroy failed (rc=-15)"). Gone is stopped.
      if (errorCode(err) === 'STOP_FAILED' && (await find(domain).then((e) => e === undefined, () => false))) return;
      throw err;
    }
  }

  return {
    name: 'xl',
    summary: 'Xen domains via the xl CLI (original Jitsu libxl keys); tested on Xen under emulation only',
    capabilities: { stopModes: ['destroy', 'shutdown', 'suspend', 'hibernate'], exitWatch: 'poll', netns: false, masking: { prebind: false, hold: true }, defaultMask: 'none' },
    options: XL_OPTIONS,

    async start(spec, signal) {
      const domain = parseXlDomain(spec);
      for (const [key, path] of [['kernel', domain.kernel], ['initrd', domain.ramdisk]] as const) {
        if (path === undefined) continue;
        try {
          await access(path, fsConstants.R_OK);
        } catch {
          throw new JitsuError('CONFIG_INVALID', `service ${spec.service}: ${key}: ${path} does not exist or is not readable in dom0`, { service: spec.service, key });
        }
      }
      if (signal.aborted) throw aborted('start', spec.service, signal);
      const configPath = join(spec.runDir, `xl-${domain.name}.cfg`);
      const mac = domain.nics[0]!.mac;

      // A domain left from an earlier daemon (or paused by stop mode suspend) is adopted, not duplicated.
      const existing = await find(domain.name);
      if (existing && stateFromFlags(existing.flags) !== 'stopped') {
        if (stateFromFlags(existing.flags) === 'paused') await xlOrThrow('unpause', xlArgv.unpause(domain.name), domain.name, commandTimeoutMs);
        return handleFor(spec, existing, mac, configPath);
      }

      await writeFile(configPath, renderXlConfig(domain), { mode: 0o600 });
      // Not tied to `signal`: killing xl mid-build would orphan a half-built domain. We destroy after instead.
      await xlOrThrow('create', xlArgv.create(configPath), domain.name, createTimeoutMs);
      const created = await find(domain.name);
      if (!created) {
        throw new JitsuError('BOOT_FAILED', `xl create succeeded but domain ${domain.name} is gone at once: the guest crashed or powered off during boot (see xl dmesg and /var/log/xen/)`, {
          service: spec.service,
          reason: 'vanished',
        });
      }
      if (signal.aborted) {
        await stopQuietly('destroy', xlArgv.destroy(domain.name), domain.name, commandTimeoutMs);
        throw aborted('start', spec.service, signal);
      }
      return handleFor(spec, created, mac, configPath);
    },

    async ready(handle, spec, signal) {
      if (spec.ready) {
        const { ip } = spec.network;
        while (!(await tcpConnects(ip, spec.ready.port, 200))) await abortableSleep(pollMs * 4, signal, () => aborted('ready', handle.service, signal));
        return;
      }
      // First frame from the guest: netback counts the guest's transmissions as rx on the host vif.
      // The vif may appear only after `xl create` returns: a missing counter reads as no frame yet.
      for (;;) {
        if ((rxPackets(handle.link ?? '') ?? 0) > 0) return;
        await abortableSleep(pollMs, signal, () => aborted('ready', handle.service, signal));
      }
    },

    async stop(handle, _spec, mode: StopMode, signal) {
      const domain = domainOf(handle);
      if (signal.aborted) throw aborted('stop', handle.service, signal);
      // Domains are found by name. A late stop of an old handle (its domain gone, a new one of the same
      // name booted since) must not hit the new domain: seen on Xen when a stale exit's clean-up
      // destroyed the domain booted after it.
      const domid = domidOf(handle);
      if (domid !== undefined) {
        const current = await find(domain);
        if (!current || current.domid !== domid) {
          // Gone, or saved by hibernate: any other stop of a hibernated domain ends it for good.
          if (mode !== 'hibernate' && (await hibernated(handle))) {
            await rm(`${saveFile(handle)}.of`, { force: true });
            await rm(saveFile(handle), { force: true });
          }
          return;
        }
      }
      switch (mode) {
        case 'hibernate':
          // The whole domain into the run dir; the domain ends. `of` (written last) says whose it is.
          try {
            await xlOrThrow('save', xlArgv.save(domain, saveFile(handle)), domain, createTimeoutMs);
          } catch (err) {
            // xl resumes the domain after a failed save; what it wrote is no image, only used space.
            await rm(saveFile(handle), { force: true });
            throw err;
          }
          await writeFile(`${saveFile(handle)}.of`, handleKey(handle));
          return;
        case 'destroy':
          await rm(saveFile(handle), { force: true });
          await rm(`${saveFile(handle)}.of`, { force: true });
          return stopQuietly('destroy', xlArgv.destroy(domain), domain, commandTimeoutMs);
        case 'suspend':
          return stopQuietly('pause', xlArgv.pause(domain), domain, commandTimeoutMs);
        case 'shutdown':
          try {
            // The caller's deadline also ends the wait (killing `xl shutdown -w` only stops the waiting).
            await stopQuietly('shutdown', xlArgv.shutdown(domain), domain, shutdownTimeoutMs, signal);
          } catch (err) {
            // A guest that ignores or cannot take the shutdown request is destroyed: stop must end it.
            if (errorCode(err) !== 'STOP_FAILED') throw err;
            await stopQuietly('destroy', xlArgv.destroy(domain), domain, commandTimeoutMs);
          }
          return;
      }
    },

    async resume(handle, spec, signal) {
      if (signal.aborted) throw aborted('resume', handle.service, signal);
      const domain = domainOf(handle);
      if (await hibernated(handle)) {
        // xl restore makes a new domain (a new domid): a new handle.
        const file = saveFile(handle);
        await xlOrThrow('restore', xlArgv.restore(file), domain, createTimeoutMs);
        await rm(`${file}.of`, { force: true });
        await rm(file, { force: true });
        const restored = await find(domain);
        if (!restored) throw new JitsuError('BOOT_FAILED', `xl restore of ${domain} succeeded but the domain is gone at once`, { service: spec.service, reason: 'vanished' });
        return handleFor(spec, restored, handle.mac ?? parseXlDomain(spec).nics[0]!.mac, String(handle.data['config'] ?? join(spec.runDir, `xl-${domain}.cfg`)));
      }
      await xlOrThrow('unpause', xlArgv.unpause(domain), domain, commandTimeoutMs);
    },

    async state(handle): Promise<RuntimeState> {
      try {
        const entry = await find(domainOf(handle));
        const domid = domidOf(handle);
        // A domain of that name with another domid is a newer one: this handle's domain is gone.
        if (entry && domid !== undefined && entry.domid !== domid) return 'stopped';
        if (!entry && (await hibernated(handle))) return 'paused';
        return entry ? stateFromFlags(entry.flags) : 'stopped';
      } catch (err) {
        // The host cannot run Xen at all: say so rather than pretend the state is merely unknown.
        if (errorCode(err) === 'BACKEND_UNSUPPORTED') throw err;
        // Any other list failure is transient as far as we can tell.
        return 'unknown';
      }
    },
  };
}

export const backend: Backend = createXlBackend();
