// The xl backend's orchestration (adopt, create, stop fallbacks, state) against a scripted stand-in for
// xl: no Xen runs here, so this is the only way to exercise these paths. The stub speaks xl's documented
// output (see test/fixtures/xl/README.md) and records every argv it gets.
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServiceSpec } from '../backend.js';
import { createXlBackend } from './index.js';

const STUB = `#!/bin/sh
# Stand-in for xl: domains live in $0.domains as "name id flags" lines.
d="$0.domains"; touch "$d"; echo "$*" >> "$0.log"
row() { grep "^$1 " "$d"; }
case "$1" in
  list)
    printf 'Name                                        ID   Mem VCPUs\\tState\\tTime(s)\\n'
    printf '%-40s %5s %5s %5s     %s %9s\\n' Domain-0 0 750 4 r----- 11794.3
    while read -r n i f; do printf '%-40s %5s %5s %5s     %s %9s\\n' "$n" "$i" 64 1 "$f" 0.1; done < "$d" ;;
  create)
    if [ -f "$0.fail" ]; then cat "$0.fail" >&2; exit 1; fi
    n=$(sed -n 's/^name = "\\(.*\\)"$/\\1/p' "$2"); echo "Parsing config from $2" >&2; echo "$n 7 -b----" >> "$d" ;;
  destroy|shutdown|pause|unpause)
    eval "n=\\$$#"
    row "$n" > /dev/null || { echo "$n is an invalid domain identifier (rc=-6)" >&2; exit 1; }
    case "$1" in
      destroy) grep -v "^$n " "$d" > "$d.new"; mv "$d.new" "$d"
        # A destroy racing another: the domain goes, and this xl still fails.
        if [ -f "$0.destroy-race" ]; then echo "libxl: error: libxl_domain.c:1575:devices_destroy_cb: Domain 7:libxl__devices_destroy failed" >&2; echo "destroy failed (rc=-15)" >&2; exit 1; fi ;;
      shutdown) [ -f "$0.ignore-shutdown" ] && exec sleep 5; grep -v "^$n " "$d" > "$d.new"; mv "$d.new" "$d" ;;
      pause) sed -i "s/^$n \\([0-9]*\\) .*/$n \\1 --p---/" "$d" ;;
      unpause) sed -i "s/^$n \\([0-9]*\\) .*/$n \\1 -b----/" "$d" ;;
    esac ;;
  save)
    row "$2" > "$3" || { echo "$2 is an invalid domain identifier (rc=-6)" >&2; exit 1; }
    # A full disk: xl's stream writer fails part way, xl resumes the domain and leaves what it wrote.
    if [ -f "$0.disk-full" ]; then
      echo "libxl: error: libxl_stream_write.c:325:libxl__xc_domain_save_done: saving domain: domain did not respond to suspend request: No space left on device" >&2
      echo "Failed to save domain, resuming domain" >&2; exit 1
    fi
    grep -v "^$2 " "$d" > "$d.new"; mv "$d.new" "$d" ;;
  restore)
    read -r n i f < "$2"; echo "$n 8 -b----" >> "$d" ;;
  *) echo "unknown command $1" >&2; exit 1 ;;
esac
`;

describe('xl backend orchestration (stub xl)', () => {
  let dir = '';
  let xl = '';
  let spec: ServiceSpec;
  const signal = new AbortController().signal;
  const calls = (): string[] => (existsSync(`${xl}.log`) ? readFileSync(`${xl}.log`, 'utf8').trim().split('\n') : []);
  const domains = (text: string): void => writeFileSync(`${xl}.domains`, text);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'jt5-xlstub-'));
    xl = join(dir, 'xl');
    writeFileSync(xl, STUB);
    chmodSync(xl, 0o755);
    writeFileSync(join(dir, 'kernel'), 'k');
    spec = {
      service: 'www',
      backend: 'xl',
      network: { bridge: 'jt5br0', family: 4, ip: '127.0.0.1', prefixLength: 24, gateway: '10.204.9.1', mac: '02:00:00:00:00:07' },
      mask: 'none',
      options: { kernel: [join(dir, 'kernel')], memory: ['65536'] },
      runDir: dir,
    };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('start writes the config, creates the domain and returns its domid and vif', async () => {
    const h = await createXlBackend({ xl }).start(spec, signal);
    expect(h).toMatchObject({ backend: 'xl', service: 'www', link: 'vif7.0', mac: '02:00:00:00:00:07', data: { domain: 'www', domid: 7 } });
    const cfg = join(dir, 'xl-www.cfg');
    expect(readFileSync(cfg, 'utf8')).toContain('memory = 64\n');
    expect(calls()).toEqual(['list', `create ${cfg}`, 'list']);
  });

  it('adopts a running domain and unpauses a paused one instead of creating another', async () => {
    domains('www 3 -b----\n');
    const backend = createXlBackend({ xl });
    expect((await backend.start(spec, signal)).data['domid']).toBe(3);
    domains('www 4 --p---\n');
    expect((await backend.start(spec, signal)).link).toBe('vif4.0');
    expect(calls()).toEqual(['list', 'list', 'unpause www']);
  });

  it('state follows the State column; stop modes run the right commands; stop is idempotent', async () => {
    const backend = createXlBackend({ xl });
    const h = await backend.start(spec, signal);
    expect(await backend.state(h, spec)).toBe('running');
    await backend.stop(h, spec, 'suspend', signal);
    expect(await backend.state(h, spec)).toBe('paused');
    await backend.resume!(h, spec, signal);
    expect(await backend.state(h, spec)).toBe('running');
    await backend.stop(h, spec, 'shutdown', signal);
    expect(await backend.state(h, spec)).toBe('stopped');
    await backend.stop(h, spec, 'destroy', signal);
    await backend.stop(h, spec, 'shutdown', signal);
    // Once its domain is gone, stopping the handle again runs no xl command that could hit another domain.
    expect(calls().filter((c) => c !== 'list')).toEqual([`create ${join(dir, 'xl-www.cfg')}`, 'pause www', 'unpause www', 'shutdown -w www']);
  });

  it('a destroy that fails while the domain goes anyway (another destroy raced it) counts as stopped', async () => {
    const backend = createXlBackend({ xl });
    const h = await backend.start(spec, signal);
    writeFileSync(`${xl}.destroy-race`, '');
    await backend.stop(h, spec, 'destroy', signal);
    expect(await backend.state(h, spec)).toBe('stopped');
    // A failed destroy of a domain that is still there stays a failure.
    domains('www 7 -b----\n');
    const stub = readFileSync(xl, 'utf8').replace('destroy) grep -v "^$n " "$d" > "$d.new"; mv "$d.new" "$d"', 'destroy) :');
    writeFileSync(xl, stub);
    const err = (await backend.stop(h, spec, 'destroy', signal).catch((e: unknown) => e)) as { code: string };
    expect(err.code).toBe('STOP_FAILED');
  });

  it('an old handle never touches a newer domain of the same name (state says stopped, stop does nothing)', async () => {
    const backend = createXlBackend({ xl });
    const old = await backend.start(spec, signal);
    domains('www 9 -b----\n'); // the old domain (7) is gone; a new one of the same name runs
    expect(await backend.state(old, spec)).toBe('stopped');
    await backend.stop(old, spec, 'destroy', signal);
    expect(readFileSync(`${xl}.domains`, 'utf8')).toBe('www 9 -b----\n');
    expect(calls()).not.toContain('destroy www');
    // The current handle still stops its own domain.
    const current = await backend.start(spec, signal);
    expect(current.data['domid']).toBe(9);
    await backend.stop(current, spec, 'destroy', signal);
    expect(await backend.state(current, spec)).toBe('stopped');
  });

  it('a guest that ignores shutdown is destroyed once the bounded wait ends', async () => {
    const backend = createXlBackend({ xl, shutdownTimeoutMs: 300 });
    const h = await backend.start(spec, signal);
    writeFileSync(`${xl}.ignore-shutdown`, '');
    const t = performance.now();
    await backend.stop(h, spec, 'shutdown', signal);
    expect(performance.now() - t).toBeLessThan(3000);
    // The list between: a guest that went down just as the wait ended needs no destroy.
    expect(calls().slice(-3)).toEqual(['shutdown -w www', 'list', 'destroy www']);
    expect(await backend.state(h, spec)).toBe('stopped');
  });

  it("the caller's deadline also ends the shutdown wait", async () => {
    const backend = createXlBackend({ xl, shutdownTimeoutMs: 30_000 });
    const h = await backend.start(spec, signal);
    writeFileSync(`${xl}.ignore-shutdown`, '');
    const t = performance.now();
    await backend.stop(h, spec, 'shutdown', AbortSignal.timeout(200));
    expect(performance.now() - t).toBeLessThan(3000);
    // The list between: a guest that went down just as the wait ended needs no destroy.
    expect(calls().slice(-3)).toEqual(['shutdown -w www', 'list', 'destroy www']);
  });

  it('a create failure becomes BOOT_FAILED with the reason and xl\'s words', async () => {
    writeFileSync(`${xl}.fail`, readFileSync(new URL('../../../test/fixtures/xl/documented-create-nomem.stderr', import.meta.url)));
    const err = (await createXlBackend({ xl }).start(spec, signal).catch((e: unknown) => e)) as { code: string; message: string; details: { reason: string } };
    expect(err.code).toBe('BOOT_FAILED');
    expect(err.details.reason).toBe('out-of-memory');
    expect(err.message).toMatch(/lower memory=/);
  });

  it('ready with a tcp probe waits for the guest to accept', async () => {
    const backend = createXlBackend({ xl, pollMs: 5 });
    const h = await backend.start(spec, signal);
    let server: Server | undefined;
    const port = 20000 + Math.floor(Math.random() * 20000);
    setTimeout(() => {
      server = createServer((s) => s.destroy()).listen(port, '127.0.0.1');
    }, 150);
    const t = performance.now();
    await backend.ready(h, { ...spec, ready: { kind: 'tcp', port } }, signal);
    expect(performance.now() - t).toBeGreaterThanOrEqual(140);
    server?.close();
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const err = (await backend.ready({ ...h, link: 'jt5-none' }, spec, ac.signal).catch((e: unknown) => e)) as { code: string };
    expect(err.code).toBe('ABORTED');
    // A deadline (how the service layer calls us) is a timeout, not a plain abort.
    const late = (await backend.ready({ ...h, link: 'jt5-none' }, spec, AbortSignal.timeout(50)).catch((e: unknown) => e)) as { code: string };
    expect(late.code).toBe('READY_TIMEOUT');
  });

  it('hibernate: xl save ends the domain (state paused), resume restores it as a new domain, destroy drops the save', async () => {
    const b = createXlBackend({ xl, pollMs: 5 });
    const h = await b.start(spec, signal);
    await b.stop(h, spec, 'hibernate', signal);
    expect(calls()).toContain(`save www ${join(dir, 'xl-www.save')}`);
    expect(await b.state(h, spec)).toBe('paused');
    const woken = await b.resume!(h, spec, signal);
    expect(woken).toMatchObject({ link: 'vif8.0' });
    expect(calls()).toContain(`restore ${join(dir, 'xl-www.save')}`);
    expect(existsSync(join(dir, 'xl-www.save'))).toBe(false);
    expect(await b.state(woken!, spec)).toBe('running');
    // The old handle's domain is gone for good; a hibernated one dropped by destroy leaves nothing.
    expect(await b.state(h, spec)).toBe('stopped');
    await b.stop(woken!, spec, 'hibernate', signal);
    await b.stop(woken!, spec, 'destroy', signal);
    expect(existsSync(join(dir, 'xl-www.save'))).toBe(false);
    expect(await b.state(woken!, spec)).toBe('stopped');
  });

  it('a hibernate whose xl save fails (a full disk) says why, keeps the domain running and removes the partial image', async () => {
    const b = createXlBackend({ xl, pollMs: 5 });
    const h = await b.start(spec, signal);
    writeFileSync(`${xl}.disk-full`, '');
    const err = await b.stop(h, spec, 'hibernate', signal).then(() => undefined, (e: unknown) => e as { code: string; message: string; details: Record<string, unknown> });
    expect(err?.code).toBe('STOP_FAILED');
    expect(err?.details['reason']).toBe('no-space');
    expect(err?.message).toMatch(/run dir \(under --state\) is full.*No space left on device/);
    expect(existsSync(join(dir, 'xl-www.save'))).toBe(false);
    expect(await b.state(h, spec)).toBe('running');
  });
});
