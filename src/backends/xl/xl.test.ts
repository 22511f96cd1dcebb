import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import type { ServiceSpec } from '../backend.js';
import { errorCode } from '../../errors.js';
import { parseXlDomain, renderXlConfig, parseDisk } from './config.js';
import { mapXlFailure, xlArgv, xlCause, type XlResult } from './command.js';
import { parseXlList, parseXlListLong, stateFromFlags } from './parse.js';

const fixture = (name: string): string => readFileSync(new URL(`../../../test/fixtures/xl/${name}`, import.meta.url), 'utf8');

const network = { bridge: 'jt5br0', family: 4 as const, ip: '10.204.1.2', prefixLength: 24, gateway: '10.204.1.1', mac: '02:aa:bb:cc:dd:ee' };
const spec = (options: Record<string, string[]>, service = 'www'): Pick<ServiceSpec, 'service' | 'options' | 'network'> => ({ service, options, network });
const failed = (stderr: string, exitCode = 1): XlResult => ({ exitCode, signal: null, stdout: '', stderr });

describe('xl domain config', () => {
  it('maps the original keys, with memory in KiB rounded up to MiB', () => {
    const d = parseXlDomain(
      spec({ kernel: ['/k/www.xen'], memory: ['262145'], cmdline: ['console=hvc0 -v'], disk: ['/img/a.img@xvda', '/img/b@xvdb'], vcpus: ['2'] }),
    );
    expect(d.memoryKiB).toBe(262145);
    expect(d.memoryMiB).toBe(257);
    expect(d.nics).toEqual([{ bridge: 'jt5br0', mac: '02:aa:bb:cc:dd:ee' }]);
    const text = renderXlConfig(d);
    expect(text).toContain('name = "www"\n');
    expect(text).toContain('type = "pv"\n');
    expect(text).toContain('kernel = "/k/www.xen"\n');
    expect(text).toContain('cmdline = "console=hvc0 -v"\n');
    expect(text).toContain('memory = 257\n');
    expect(text).toContain('maxmem = 257\n');
    expect(text).toContain('vcpus = 2\n');
    expect(text).toContain('vif = [ "mac=02:aa:bb:cc:dd:ee,bridge=jt5br0" ]\n');
    expect(text).toContain('disk = [ "format=raw,vdev=xvda,access=rw,target=/img/a.img", "format=raw,vdev=xvdb,access=rw,target=/img/b" ]\n');
    expect(text).toContain('on_crash = "destroy"');
  });

  it('renders exactly (golden)', () => {
    const d = parseXlDomain(spec({ kernel: ['/k/u.xen'], memory: ['65536'], nic: ['br0', 'br1'], mac: ['00:16:3e:00:00:01'], type: ['pvh'], initrd: ['/k/u.rd'] }, 'u1'));
    expect(renderXlConfig(d)).toBe(
      [
        '# Written by jitsu for service u1; rewritten at every start.',
        'name = "u1"',
        'type = "pvh"',
        'kernel = "/k/u.xen"',
        'ramdisk = "/k/u.rd"',
        '# memory=65536 KiB requested; xl takes MiB',
        'memory = 64',
        'maxmem = 64',
        'vcpus = 1',
        `vif = [ "mac=00:16:3e:00:00:01,bridge=br0", "mac=${d.nics[1]!.mac},bridge=br1" ]`,
        'on_poweroff = "destroy"',
        'on_reboot = "restart"',
        'on_crash = "destroy"',
        '',
      ].join('\n'),
    );
    expect(d.nics[1]!.mac).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    expect(d.nics[1]!.mac).not.toBe(d.nics[0]!.mac);
  });

  it.each([
    [{ memory: ['1024'] }, 'kernel', /required/],
    [{ kernel: ['/k'] }, 'memory', /required/],
    [{ kernel: ['k'], memory: ['1024'] }, 'kernel', /absolute/],
    [{ kernel: ['/k'], memory: ['0'] }, 'memory', /whole number of KiB/],
    [{ kernel: ['/k'], memory: ['12M'] }, 'memory', /whole number of KiB/],
    [{ kernel: ['/k'], memory: ['1024', '2048'] }, 'memory', /more than once/],
    [{ kernel: ['/k'], memory: ['1024'], cmdline: ['a"b'] }, 'cmdline', /double quote/],
    [{ kernel: ['/k'], memory: ['1024'], disk: ['/img'] }, 'disk', /PATH@DEVICE/],
    [{ kernel: ['/k'], memory: ['1024'], disk: ['/img@eth0'] }, 'disk', /guest device name/],
    [{ kernel: ['/k'], memory: ['1024'], disk: ['/a,b@xvda'] }, 'disk', /','/],
    [{ kernel: ['/k'], memory: ['1024'], mac: ['zz'] }, 'mac', /look like/],
    [{ kernel: ['/k'], memory: ['1024'], nic: ['a bridge'] }, 'nic', /bridge name/],
    [{ kernel: ['/k'], memory: ['1024'], type: ['hvm'] }, 'type', /pv or pvh/],
    [{ kernel: ['/k'], memory: ['1024'], exec: ['/bin/sh'] }, 'exec', /unknown xl key/],
  ])('rejects %j naming key %s', (options, key, message) => {
    let caught: unknown;
    try {
      parseXlDomain(spec(options));
    } catch (err) {
      caught = err;
    }
    expect(errorCode(caught)).toBe('CONFIG_INVALID');
    expect((caught as { details: { key: string } }).details.key).toBe(key);
    expect((caught as Error).message).toMatch(message);
  });

  it('splits disk on the last @ so paths may contain @', () => {
    expect(parseDisk('/srv/a@b.img@xvdb')).toEqual({ target: '/srv/a@b.img', vdev: 'xvdb' });
  });
});

describe('xl argv', () => {
  it('builds each command', () => {
    expect(xlArgv.create('/run/x.cfg')).toEqual(['create', '/run/x.cfg']);
    expect(xlArgv.destroy('www')).toEqual(['destroy', 'www']);
    expect(xlArgv.shutdown('www')).toEqual(['shutdown', '-w', 'www']);
    expect(xlArgv.pause('www')).toEqual(['pause', 'www']);
    expect(xlArgv.unpause('www')).toEqual(['unpause', 'www']);
    expect(xlArgv.list()).toEqual(['list']);
    expect(xlArgv.listLong()).toEqual(['list', '-l']);
    expect(xlArgv.listLong('www')).toEqual(['list', '-l', 'www']);
  });
});

describe('xl list parsing', () => {
  it('parses the documented table', () => {
    const rows = parseXlList(fixture('documented-list.txt'));
    expect(rows.map((r) => r.name)).toEqual(['Domain-0', 'win', 'linux', 'www', 'paused-svc', 'crashed-svc', '(null)']);
    expect(rows[0]).toEqual({ name: 'Domain-0', domid: 0, memoryMiB: 750, vcpus: 4, flags: 'r-----', cpuSeconds: 11794.3 });
    expect(rows.map((r) => stateFromFlags(r.flags))).toEqual(['running', 'running', 'running', 'running', 'paused', 'stopped', 'stopped']);
  });

  it('finds nothing in captured failure output', () => {
    expect(parseXlList(fixture('captured-no-privcmd.stderr'))).toEqual([]);
    expect(parseXlList('')).toEqual([]);
  });

  it('parses xl list -l JSON', () => {
    const rows = parseXlListLong(fixture('documented-list-long.json'));
    expect(rows).toEqual([
      { domid: 0, name: 'Domain-0', type: 'pv', maxMemKiB: 768000, nics: [] },
      { domid: 5, name: 'www', type: 'pv', maxMemKiB: 262144, kernel: '/var/lib/jitsu/www.xen', nics: [{ mac: '02:3a:7e:11:22:33', bridge: 'jitsu0' }] },
    ]);
    expect(parseXlListLong('  ')).toEqual([]);
    expect(() => parseXlListLong('cannot init xl context')).toThrow();
  });
});

describe('xl failure mapping', () => {
  const reasonOf = (err: unknown): unknown => (err as { details: { reason: unknown } }).details.reason;

  it('maps the captured no-privcmd failure (real xl binary, no hypervisor)', () => {
    const err = mapXlFailure('create', ['create', '/x.cfg'], 'www', failed(fixture('captured-no-privcmd.stderr')));
    expect(err.code).toBe('BACKEND_UNSUPPORTED');
    expect(reasonOf(err)).toBe('no-privcmd');
    expect(err.message).toMatch(/dom0/);
    expect(err.message).toContain('cannot init xl context');
  });

  it('maps the captured Debian wrapper failure', () => {
    const err = mapXlFailure('list', ['list'], undefined, failed(fixture('captured-wrapper-no-hypervisor.stderr')));
    expect(err.code).toBe('BACKEND_UNSUPPORTED');
    expect(reasonOf(err)).toBe('no-hypervisor');
    expect(err.message).toMatch(/not running under Xen/);
  });

  it.each([
    ['destroy', 'documented-invalid-domain.stderr', 'NOT_RUNNING', 'no-domain'],
    ['create', 'documented-create-nomem.stderr', 'BOOT_FAILED', 'out-of-memory'],
    ['create', 'documented-create-name-in-use.stderr', 'BOOT_FAILED', 'name-in-use'],
    ['shutdown', 'documented-shutdown-no-pv.stderr', 'STOP_FAILED', 'no-pv-control'],
  ] as const)('maps %s with %s to %s/%s', (op, file, code, reason) => {
    const err = mapXlFailure(op, [op, 'www'], 'www', failed(fixture(file)));
    expect(err.code).toBe(code);
    expect(reasonOf(err)).toBe(reason);
  });

  it('maps spawn failures and timeouts', () => {
    const missing = mapXlFailure('list', ['list'], undefined, { exitCode: null, signal: null, stdout: '', stderr: '', spawnError: 'ENOENT: spawn xl ENOENT' });
    expect(missing.code).toBe('BACKEND_UNSUPPORTED');
    expect(reasonOf(missing)).toBe('xl-missing');
    expect(missing.message).toMatch(/apt-get install/);
    const slow = mapXlFailure('shutdown', ['shutdown', '-w', 'www'], 'www', { exitCode: null, signal: 'SIGKILL', stdout: '', stderr: '', spawnError: 'timeout', timedOut: true });
    expect(slow.code).toBe('STOP_FAILED');
    expect(reasonOf(slow)).toBe('timeout');
  });

  it('a hotplug line in a stop failure is a stop failure, not a network one (vif-hotplug is for create)', () => {
    const stderr = 'libxl: error: libxl_device.c:1114:device_backend_callback: unable to remove device with path /local/domain/0/backend/vif/1/0\nlibxl: error: libxl_domain.c:1575:devices_destroy_cb: Domain 1:libxl__devices_destroy failed\nlibxl: error: libxl_device.c:1310:device_hotplug: Domain 1:hotplug script failed\ndestroy failed (rc=-15)\n';
    const stop = mapXlFailure('destroy', ['destroy', 'www'], 'www', failed(stderr));
    expect(stop.code).toBe('STOP_FAILED');
    expect(reasonOf(stop)).toBe('xl-failed');
    const create = mapXlFailure('create', ['create', '/x.cfg'], 'www', failed(stderr));
    expect(create.code).toBe('NETWORK_SETUP');
    expect(reasonOf(create)).toBe('vif-hotplug');
  });

  it("the cause is xl's line that names the problem, not the clean-up lines after it", () => {
    const stderr = 'Parsing config from /x.cfg\nxc: error: panic: xc_dom_core.c:689: xc_dom_find_loader: no loader found: Invalid kernel\nlibxl: error: libxl_dom.c:592:libxl__build_dom: xc_dom_parse_image failed\nlibxl: error: libxl_domain.c:1064:domain_destroy_cb: Domain 3:Destruction of domain failed\n';
    const err = mapXlFailure('create', ['create', '/x.cfg'], 'bad', failed(stderr));
    expect(reasonOf(err)).toBe('kernel-rejected');
    expect(err.message).toContain('xc_dom_find_loader: no loader found');
  });

  it('falls back to a per-operation code with the last error line as cause', () => {
    const err = mapXlFailure('pause', ['pause', 'www'], 'www', failed('something\nlibxl: error: weird thing happened\n'));
    expect(err.code).toBe('STOP_FAILED');
    expect(reasonOf(err)).toBe('xl-failed');
    expect(err.message).toContain('libxl: error: weird thing happened');
    expect(xlCause('a\n\n b \n')).toBe('b');
  });
});
