/**
 * The `libvirt` backend, the original Jitsu's default: it controls EXISTING libvirt domains by name
 * (it never defines one), through `virsh -c URI` (URI = `-c`, default qemu:///system). start boots
 * a shut-off domain, resumes a paused one and adopts a running one; stop destroys, shuts down or
 * suspends it. Ready = the first frame from the domain's MAC on its host link (from domiflist), or
 * the `ready=tcp:PORT` probe.
 */
import { readFile } from 'node:fs/promises';
import type { Backend, BackendHandle, OptionSpec, RuntimeState, ServiceSpec, StopMode } from '../backend.js';
import { JitsuError } from '../../errors.js';
import { linkExists } from '../../network/link.js';
import { abortError, timedOut } from '../common/abort.js';
import { handleCodec } from '../common/handle.js';
import { rxPackets, waitFirstFrame, waitTcp } from '../common/readiness.js';
import { DEFAULT_URI, isNoDomain, parseDomIfList, parseDomState, runtimeStateOf, virsh, virshReason, type DomIface, type DomState } from './virsh.js';

export { parseDomIfList, parseDomState, runtimeStateOf, virsh, DEFAULT_URI } from './virsh.js';

const DOMAIN_RE = /^[A-Za-z0-9_.+:-]{1,128}$/;

export const libvirtOptions: readonly OptionSpec[] = [
  {
    key: 'domain',
    description: 'name of the existing libvirt domain to control (default: the service name)',
    example: 'web-vm',
    validate: (v) => (DOMAIN_RE.test(v) ? undefined : `domain must be a libvirt domain name (letters, digits, _ . + : -), got "${v}"`),
  },
  {
    key: 'shutdown_timeout',
    description: 'seconds stop mode shutdown waits for the guest to power off before destroying it (default 30)',
    example: '30',
    validate: (v) => (/^\d+$/.test(v) && Number(v) <= 3600 ? undefined : `shutdown_timeout must be whole seconds from 0 to 3600, got "${v}"`),
  },
];

interface LibvirtConfig {
  domain: string;
  uri: string;
  shutdownTimeoutMs: number;
}

export function parseLibvirtOptions(spec: ServiceSpec): LibvirtConfig {
  const known = new Set(libvirtOptions.map((o) => o.key));
  for (const key of Object.keys(spec.options)) {
    if (!known.has(key)) throw new JitsuError('CONFIG_INVALID', `service ${spec.service}: unknown libvirt key "${key}" (known: ${[...known].join(', ')})`, { service: spec.service, key });
  }
  const one = (key: string): string | undefined => {
    const vs = spec.options[key];
    if (!vs || vs.length === 0) return undefined;
    if (vs.length > 1) throw new JitsuError('CONFIG_INVALID', `service ${spec.service}: libvirt key "${key}" given ${vs.length} times; give it once`, { service: spec.service, key });
    const problem = libvirtOptions.find((o) => o.key === key)?.validate?.(vs[0]!);
    if (problem) throw new JitsuError('CONFIG_INVALID', `service ${spec.service}: ${problem}`, { service: spec.service, key, value: vs[0]! });
    return vs[0]!;
  };
  const domain = one('domain') ?? spec.service;
  if (!DOMAIN_RE.test(domain)) {
    throw new JitsuError('CONFIG_INVALID', `service ${spec.service}: "${domain}" is not a libvirt domain name; set domain=NAME`, { service: spec.service, key: 'domain' });
  }
  return { domain, uri: spec.backendUri ?? DEFAULT_URI, shutdownTimeoutMs: Number(one('shutdown_timeout') ?? 30) * 1000 };
}

interface LibvirtData {
  domain: string;
  uri: string;
  shutdownTimeoutMs: number;
  /** rx_packets of the domain's link at start: frames past it come from the guest. */
  rxBaseline: number;
  /** The domain was already running when start() adopted it: its network is up. */
  adopted: boolean;
}

/** Every call names the domain at its URI; the pid (local qemu driver only) is a fact, not a need. */
const libvirtHandle = handleCodec<LibvirtData>({ backend: 'libvirt', required: { domain: 'string', uri: 'string' } });

async function domState(cfg: Pick<LibvirtConfig, 'uri' | 'domain'>, service: string): Promise<{ state: DomState; reason?: string }> {
  const r = await virsh(cfg.uri, ['domstate', '--reason', cfg.domain], 10_000);
  if (!r.ok) {
    if (isNoDomain(r.stderr)) {
      throw new JitsuError('BOOT_FAILED', `service ${service}: libvirt has no domain "${cfg.domain}" at ${cfg.uri} (define it first, or set domain=NAME)`, { service, domain: cfg.domain, uri: cfg.uri });
    }
    throw new JitsuError('BOOT_FAILED', `service ${service}: virsh domstate ${cfg.domain} failed: ${virshReason(r.stderr)} (is libvirtd running? scripts/start-libvirtd.sh)`, { service, domain: cfg.domain, uri: cfg.uri });
  }
  return parseDomState(r.stdout);
}

async function mustVirsh(cfg: LibvirtConfig, args: string[], service: string, code: 'BOOT_FAILED' | 'STOP_FAILED', timeoutMs = 60_000): Promise<void> {
  const r = await virsh(cfg.uri, args, timeoutMs);
  if (!r.ok) throw new JitsuError(code, `service ${service}: virsh ${args.join(' ')} failed: ${virshReason(r.stderr)}`, { service, domain: cfg.domain, uri: cfg.uri });
}

/** The interface Jitsu watches: the one with the service's MAC, else the domain's first. */
async function domIface(cfg: LibvirtConfig, spec: ServiceSpec): Promise<DomIface | undefined> {
  const r = await virsh(cfg.uri, ['domiflist', cfg.domain], 10_000);
  if (!r.ok) return undefined;
  const all = parseDomIfList(r.stdout);
  return all.find((i) => i.mac === spec.network.mac.toLowerCase()) ?? all[0];
}

async function domPid(cfg: LibvirtConfig): Promise<number | undefined> {
  // Only the local qemu driver keeps a pid file; remote URIs simply have no pid.
  if (!/^qemu:\/\/\/(system|session)$/.test(cfg.uri)) return undefined;
  try {
    const pid = Number((await readFile(`/run/libvirt/qemu/${cfg.domain}.pid`, 'utf8')).trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function start(spec: ServiceSpec, signal: AbortSignal): Promise<BackendHandle> {
  const cfg = parseLibvirtOptions(spec);
  const before = await domState(cfg, spec.service);
  if (signal.aborted) throw abortError(signal, 'start', { timeout: `service ${spec.service}: start timed out`, aborted: `service ${spec.service}: start aborted` }, { service: spec.service });
  let adopted = false;
  switch (before.state) {
    case 'running':
    case 'blocked':
    case 'idle':
      adopted = true;
      break;
    case 'paused':
    case 'pmsuspended':
      await mustVirsh(cfg, ['resume', cfg.domain], spec.service, 'BOOT_FAILED');
      adopted = true;
      break;
    case 'in shutdown':
    case 'dying':
      // Let the shutdown finish, then boot: destroying is what the user asked by summoning.
      await mustVirsh(cfg, ['destroy', cfg.domain], spec.service, 'BOOT_FAILED');
      await mustVirsh(cfg, ['start', cfg.domain], spec.service, 'BOOT_FAILED');
      break;
    default:
      // A managed save (stop mode hibernate) is restored by start itself: the guest runs on where
      // it was, so there is no first frame to wait for.
      adopted = await hasManagedSave(cfg);
      await mustVirsh(cfg, ['start', cfg.domain], spec.service, 'BOOT_FAILED');
  }
  const iface = await domIface(cfg, spec);
  const link = iface && iface.link !== '-' ? iface.link : undefined;
  const pid = await domPid(cfg);
  const data: LibvirtData = {
    domain: cfg.domain,
    uri: cfg.uri,
    shutdownTimeoutMs: cfg.shutdownTimeoutMs,
    rxBaseline: link ? (rxPackets(link) ?? 0) : 0,
    adopted,
  };
  return {
    backend: 'libvirt',
    service: spec.service,
    ...(link ? { link } : {}),
    ...(iface ? { mac: iface.mac } : {}),
    ...(pid !== undefined ? { pid } : {}),
    data: libvirtHandle.write(data),
  };
}

async function ready(handle: BackendHandle, spec: ServiceSpec, signal: AbortSignal): Promise<void> {
  const { data: d } = libvirtHandle.read(handle);
  const link = handle.link;
  // The domain's tap vanishes when it dies: a cheap liveness check that needs no virsh fork.
  const check = (): void => {
    if (link && !linkExists(link)) throw new JitsuError('BOOT_FAILED', `service ${spec.service}: domain ${d.domain} stopped before its network came up (its link ${link} is gone)`, { service: spec.service, domain: d.domain });
  };
  try {
    if (link && !d.adopted) await waitFirstFrame(link, d.rxBaseline, signal, { check });
    if (spec.ready?.kind === 'tcp') await waitTcp(spec.network.ip, spec.ready.port, signal, { check });
    else if (!link && !d.adopted) {
      throw new JitsuError('READY_TIMEOUT', `service ${spec.service}: domain ${d.domain} has no host link to watch; set ready=tcp:PORT`, { service: spec.service, domain: d.domain });
    }
  } catch (err) {
    if (err instanceof JitsuError) throw err;
    if (signal.aborted) {
      const st = await domState(d, spec.service).catch(() => undefined);
      const what = spec.ready ? `tcp:${spec.ready.port} on ${spec.network.ip}` : `a first frame on ${link ?? '?'}`;
      if (!timedOut(signal)) throw abortError(signal, 'ready', { timeout: `service ${spec.service}: ready aborted` }, { service: spec.service });
      const timeout = `service ${spec.service}: no ${what} from domain ${d.domain} (state: ${st ? `${st.state}${st.reason ? ` (${st.reason})` : ''}` : 'unknown'})`;
      throw abortError(signal, 'ready', { timeout }, { service: spec.service, domain: d.domain, state: st?.state ?? 'unknown' });
    }
    throw new JitsuError('READY_TIMEOUT', `service ${spec.service}: cannot watch ${link}: ${(err as Error).message}`, { service: spec.service }, { cause: err });
  }
}

async function stop(handle: BackendHandle, spec: ServiceSpec, mode: StopMode, signal: AbortSignal): Promise<void> {
  const { data: d } = libvirtHandle.read(handle);
  const cfg: LibvirtConfig = { domain: d.domain, uri: d.uri, shutdownTimeoutMs: d.shutdownTimeoutMs };
  let st: DomState;
  let full: { state: DomState; reason?: string };
  try {
    full = await domState(cfg, spec.service);
    st = full.state;
  } catch (err) {
    // A transient domain is gone once stopped: nothing left to stop.
    if (/has no domain/.test((err as Error).message)) return;
    throw new JitsuError('STOP_FAILED', (err as Error).message, { service: spec.service, domain: d.domain });
  }
  const state = runtimeStateOf(st);
  // Any other stop of a hibernated domain ends it for good: its next start boots cold.
  if (mode !== 'hibernate' && runtimeStateOf(full.state) === 'stopped' && (await hasManagedSave(cfg))) await mustVirsh(cfg, ['managedsave-remove', cfg.domain], spec.service, 'STOP_FAILED');
  if (state === 'stopped') return;
  if (mode === 'hibernate') {
    // libvirt's own save of the whole guest; the next start restores it.
    await mustVirsh(cfg, ['managedsave', cfg.domain], spec.service, 'STOP_FAILED');
    return;
  }
  if (mode === 'suspend') {
    if (state === 'paused') return;
    await mustVirsh(cfg, ['suspend', cfg.domain], spec.service, 'STOP_FAILED');
    return;
  }
  if (mode === 'shutdown') {
    if (state === 'paused') await mustVirsh(cfg, ['resume', cfg.domain], spec.service, 'STOP_FAILED');
    await mustVirsh(cfg, ['shutdown', cfg.domain], spec.service, 'STOP_FAILED');
    const deadline = Date.now() + cfg.shutdownTimeoutMs;
    while (Date.now() < deadline && !signal.aborted) {
      await new Promise((r) => setTimeout(r, 100));
      const now = await domState(cfg, spec.service).catch(() => ({ state: 'shut off' as DomState }));
      if (runtimeStateOf(now.state) === 'stopped') return;
    }
  }
  const r = await virsh(cfg.uri, ['destroy', cfg.domain], 30_000);
  if (!r.ok && !/not running|no domain|failed to get domain/i.test(r.stderr)) {
    throw new JitsuError('STOP_FAILED', `service ${spec.service}: virsh destroy ${cfg.domain} failed: ${virshReason(r.stderr)}`, { service: spec.service, domain: d.domain });
  }
}

async function resume(handle: BackendHandle, spec: ServiceSpec, signal: AbortSignal): Promise<BackendHandle | void> {
  const { data: d } = libvirtHandle.read(handle);
  const cfg: LibvirtConfig = { domain: d.domain, uri: d.uri, shutdownTimeoutMs: d.shutdownTimeoutMs };
  const st = await domState(cfg, spec.service);
  // Hibernated: start restores the managed save (a new QEMU: a new handle, its tap may differ).
  if (runtimeStateOf(st.state) === 'stopped' && (await hasManagedSave(cfg))) return start(spec, signal);
  if (runtimeStateOf(st.state) === 'stopped') {
    throw new JitsuError('NOT_RUNNING', `service ${spec.service}: domain ${d.domain} is shut off; start it instead of resuming`, { service: spec.service, domain: d.domain });
  }
  if (runtimeStateOf(st.state) === 'paused') await mustVirsh(cfg, ['resume', cfg.domain], spec.service, 'STOP_FAILED');
}

async function state(handle: BackendHandle, spec: ServiceSpec): Promise<RuntimeState> {
  const { data: d } = libvirtHandle.read(handle);
  const r = await virsh(d.uri, ['domstate', d.domain], 10_000);
  if (!r.ok) return isNoDomain(r.stderr) ? 'stopped' : 'unknown';
  void spec;
  const st = runtimeStateOf(parseDomState(r.stdout).state);
  return st === 'stopped' && (await hasManagedSave(d)) ? 'paused' : st;
}

/** Hibernated: shut off with a managed save (`virsh dominfo`: "Managed save: yes"), which the next start restores. */
async function hasManagedSave(cfg: Pick<LibvirtConfig, 'uri' | 'domain'>): Promise<boolean> {
  const r = await virsh(cfg.uri, ['dominfo', cfg.domain], 10_000);
  return r.ok && /^Managed save:\s+yes$/m.test(r.stdout);
}

export const backend: Backend = {
  name: 'libvirt',
  summary: 'existing libvirt domains, by name, through virsh -c URI (KVM or TCG domains alike)',
  capabilities: { stopModes: ['destroy', 'shutdown', 'suspend', 'hibernate'], exitWatch: 'poll', netns: false, masking: { prebind: false, hold: true }, defaultMask: 'none' },
  options: libvirtOptions,
  start,
  ready,
  stop,
  resume,
  state,
};
