import { describe, expect, it } from 'vitest';
import { createFakeBackend } from '../backends/fake/index.js';
import { parseArgv } from '../cli/argv.js';
import { parseConfigText, mergeRaw } from './file.js';
import { parseServiceArg } from './service-arg.js';
import { validateConfig, type RawConfig } from './validate.js';

const fake = createFakeBackend();
const ctx = { defaultForwarders: () => ['192.0.2.53'], backend: () => fake };
const validate = (argv: string[]) => validateConfig(parseArgv(argv).raw, ctx);

describe('service arguments', () => {
  it('splits key=value pairs, keeps repeats in order, and allows quoted commas', () => {
    expect(parseServiceArg('dns=a.test,dns=b.test,cmdline="console=ttyS0,115200",ip=10.0.0.2')).toEqual([
      ['dns', 'a.test'],
      ['dns', 'b.test'],
      ['cmdline', 'console=ttyS0,115200'],
      ['ip', '10.0.0.2'],
    ]);
    expect(parseServiceArg('exec=a=b')).toEqual([['exec', 'a=b']]);
    expect(parseServiceArg('exec="srv --msg \\"a, b\\" c:\\\\",ip=10.0.0.2')).toEqual([
      ['exec', 'srv --msg "a, b" c:\\'],
      ['ip', '10.0.0.2'],
    ]);
  });

  it.each([
    ['dns', /"dns" in "dns" is not key=value/],
    ['dns=a.test,oops', /"oops" .* is not key=value/],
    ['=x', /empty key/],
    ['cmdline="open', /unterminated quote/],
    ['', /empty service argument/],
  ])('rejects %j', (arg, message) => {
    expect(() => parseServiceArg(arg)).toThrow(message);
  });
});

describe('flags', () => {
  it('keeps the original defaults', () => {
    const c = validate(['dns=www.jitsu.test,ip=10.0.0.2']);
    expect(c).toMatchObject({ bind: ['127.0.0.1'], port: 53, forwarders: ['192.0.2.53'], forwarderPort: 53, backend: 'process', responseDelay: 0.1, ttl: 60, stopMode: 'destroy', idleTimeout: 120, sweepInterval: 5, bridge: 'jitsu0', logLevel: 'info' });
    expect(c.services[0]).toMatchObject({ name: 'www.jitsu.test', dns: ['www.jitsu.test'], ip: '10.0.0.2', family: 4, mask: 'none', responseDelay: 0.1 });
  });

  it('reads short, long and --key=value forms', () => {
    const c = validate(['-b', '127.0.0.1,::1', '-l', '5353', '--forwarder=0.0.0.0', '-t', '30', '-m', 'suspend', '--log-level', 'debug', '--metrics', '[::1]:9000']);
    expect(c).toMatchObject({ bind: ['127.0.0.1', '::1'], port: 5353, forwarders: [], ttl: 30, idleTimeout: 60, stopMode: 'suspend', logLevel: 'debug', metrics: { host: '::1', port: 9000 } });
  });

  it('stop modes: per service with stop=, and only those the backend has (the fake has no hibernate)', () => {
    const svc = 'name=www,dns=www.test,ip=10.0.0.2';
    expect(validate(['-m', 'suspend', svc]).services[0]!.stopMode).toBeUndefined();
    expect(validate([`${svc},stop=shutdown`]).services[0]!.stopMode).toBe('shutdown');
    expect(() => validate(['-m', 'hibernate', svc])).toThrow(/--mode.*cannot stop with mode hibernate.*destroy\|suspend\|shutdown.*stop=MODE/);
    expect(() => validate([`${svc},stop=hibernate`])).toThrow(/stop.*cannot stop with mode hibernate/);
    expect(() => validate([`${svc},stop=nap`])).toThrow(/stop/);
    expect(validate(['--snapshot-dir', '/dev/shm/s', svc]).snapshotDir).toBe('/dev/shm/s');
    expect(() => validate(['--snapshot-dir', 'rel', svc])).toThrow(/--snapshot-dir.*absolute/);
  });
  it('accepts --persistdb as the original name of --state', () => {
    expect(validate(['--persistdb', '/tmp/x']).stateDir).toBe('/tmp/x');
  });

  it('makes --log-file absolute (SIGUSR1 reopens it by path) and logs to stderr without it', () => {
    expect(validate([]).logFile).toBeUndefined();
    expect(validate(['--log-file', 'logs/jitsu.log']).logFile).toBe(`${process.cwd()}/logs/jitsu.log`);
    expect(() => validate(['--log-file', '/var/log/'])).toThrow(/^--log-file: "\/var\/log\/" is not a file path: give a file/);
  });

  it.each([
    [['--nope'], /^--nope: unknown option/],
    [['-l'], /^--port: needs a value/],
    [['-l', '99999'], /^--port: 99999 is out of range/],
    [['-l', 'x'], /^--port: "x" is not a number/],
    [['-m', 'pause'], /^--mode: "pause" is not valid: use one of destroy\|suspend\|shutdown/],
    [['-x', 'docker'], /^--backend: "docker" is not a backend/],
    [['-b', '1.2.3'], /^--bind: "1.2.3" is not an IPv4 or IPv6 address/],
    [['--metrics', 'localhost'], /^--metrics: "localhost" is not HOST:PORT/],
    [['--bridge', 'a-very-long-bridge-name'], /^--bridge: .* not a valid interface name/],
    [['-t', '10', '-t', '20'], /^--ttl: given 2 times/],
    [['--help=yes'], /^--help: takes no value/],
    [['--host-cidr', '10.0.0.1'], /^--host-cidr: "10.0.0.1" is not ADDRESS\/PREFIX/],
    [['--host-cidr', '10.0.0.1/33'], /^--host-cidr: "10.0.0.1\/33" is not ADDRESS\/PREFIX/],
  ])('rejects %j with one line naming the flag', (argv, message) => {
    expect(() => validate(argv)).toThrow(message);
  });
});

describe('service keys', () => {
  it.each([
    ['ip=10.0.0.2', /^dns: .* has no dns= name/],
    ['dns=a.jitsu.test', /^ip: .* has no ip=/],
    ['dns=a.jitsu.test,ip=300.0.0.1', /^ip: "300.0.0.1" is not an IPv4/],
    ['dns=single,ip=10.0.0.2', /^dns: "single" needs a zone/],
    ['dns=bad_.-x.test,ip=10.0.0.2', /^dns: .* invalid label/],
    ['dns=a.jitsu.test,ip=10.0.0.2,colour=red', /^colour: unknown key for the process backend/],
    ['dns=a.jitsu.test,ip=10.0.0.2,mask=magic', /^mask: "magic" is not valid/],
    ['dns=a.jitsu.test,ip=10.0.0.2,mask=activate', /^mask: mask=activate needs the sockets to pass/],
    ['dns=a.jitsu.test,ip=10.0.0.2,ready=http:80', /^ready: "http:80" is not a probe: use tcp:PORT/],
    ['dns=a.jitsu.test,ip=10.0.0.2,wait_for_key=data/ready', /^wait_for_key: XenStore keys are not supported/],
    ['dns=a.jitsu.test,ip=10.0.0.2,ip=10.0.0.3', /^ip: given twice/],
    ['dns=a.jitsu.test,ip=10.0.0.2,response_delay=-1', /^response_delay: -1 is out of range/],
  ])('rejects %j', (service, message) => {
    expect(() => validate([service])).toThrow(message);
  });

  it("rejects a key that conflicts with the service's other keys, naming the fix (the backend's OptionSpec.conflicts)", () => {
    const fake = createFakeBackend();
    const withConflict = {
      ...fake,
      options: [
        { key: 'snapshot', description: 's' },
        { key: 'prespawn', description: 'p', conflicts: (o: Readonly<Record<string, readonly string[]>>) => (o['snapshot']?.[0] === 'template' ? undefined : 'add snapshot=template') },
      ],
    };
    const check = (service: string) => () => validateConfig(parseArgv([service]).raw, { ...ctx, backend: () => withConflict });
    expect(check('dns=a.jitsu.test,ip=10.0.0.2,name=a,prespawn=on')).toThrow(/^prespawn: service a: add snapshot=template/);
    expect(check('dns=a.jitsu.test,ip=10.0.0.2,prespawn=on,snapshot=template')).not.toThrow();
    expect(check('dns=a.jitsu.test,ip=10.0.0.2,snapshot=off')).not.toThrow();
  });

  it('rejects two services claiming the same name, ip or dns name', () => {
    expect(() => validate(['dns=a.jitsu.test,ip=10.0.0.2', 'dns=a.jitsu.test,ip=10.0.0.3,name=b'])).toThrow(/^dns: "a.jitsu.test" is claimed by services/);
    expect(() => validate(['dns=a.jitsu.test,ip=10.0.0.2', 'dns=b.jitsu.test,ip=10.0.0.2'])).toThrow(/^ip: 10.0.0.2 is used by services/);
    expect(() => validate(['dns=a.jitsu.test,ip=10.0.0.2,name=x', 'dns=b.jitsu.test,ip=10.0.0.3,name=x'])).toThrow(/^name: two services are named "x"/);
  });

  it("defaults the mask to the backend's preferred one where the keys allow it (activate needs port=)", () => {
    const activating = { ...createFakeBackend(), options: [{ key: 'port', description: 'p', repeatable: true }] };
    activating.capabilities = { ...activating.capabilities, defaultMask: 'activate' };
    const argv = parseArgv(['dns=a.jitsu.test,ip=10.0.0.2,port=80', 'dns=b.jitsu.test,ip=10.0.0.3']).raw;
    const [withPort, without] = validateConfig(argv, { ...ctx, backend: () => activating }).services;
    expect([withPort!.mask, without!.mask]).toEqual(['activate', 'none']);
  });

  it('maps use_synjitsu to handshake masking and turns Synjitsu on for the bridge', () => {
    const c = validate(['dns=vm.jitsu.test,ip=10.0.0.2,use_synjitsu=true']);
    expect(c.services[0]!.mask).toBe('handshake');
    expect(c.synjitsu).toBe('jitsu0');
  });

  it('reads IPv6 services, ready probes and per-service delays', () => {
    const c = validate(['dns=v6.jitsu.test,dns=V6B.Jitsu.Test.,ip=fd00::10,ready=tcp:8080,response_delay=0.5']);
    expect(c.services[0]).toMatchObject({ dns: ['v6.jitsu.test', 'v6b.jitsu.test'], family: 6, ready: { kind: 'tcp', port: 8080 }, responseDelay: 0.5 });
  });
});

describe('config files', () => {
  const yaml = `
port: 5353
forwarder: 0.0.0.0
ttl: 30
services:
  - dns=a.jitsu.test,ip=10.0.0.2
  - dns: [b.jitsu.test, c.jitsu.test]
    ip: 10.0.0.3
    mask: none
`;

  it('reads YAML with the long flag names and both service forms', () => {
    const c = validateConfig(parseConfigText(yaml, 'test.yaml'), ctx);
    expect(c).toMatchObject({ port: 5353, forwarders: [], ttl: 30 });
    expect(c.services.map((s) => s.dns)).toEqual([['a.jitsu.test'], ['b.jitsu.test', 'c.jitsu.test']]);
  });

  it('reads JSON, and command-line flags override the file', () => {
    const file = parseConfigText('{"port": 5353, "ttl": 30}', 'x.json');
    const cli: RawConfig = parseArgv(['-t', '5', 'dns=a.jitsu.test,ip=10.0.0.2']).raw;
    const c = validateConfig(mergeRaw(file, cli), ctx);
    expect(c).toMatchObject({ port: 5353, ttl: 5 });
    expect(c.services).toHaveLength(1);
  });

  it.each([
    ['colour: red', /^colour: unknown key in t.yaml/],
    ['port: [1, {a: 2}]', /^port: expected a string, number or boolean/],
    ['services: nope', /^services: in t.yaml must be a list/],
    ['services: [42]', /^services\[0\]: must be a "key=value,..." string/],
    ['- a\n- b', /^--config: t.yaml must hold a map/],
    ['port: [unclosed', /^--config: t.yaml is not valid YAML/],
    ['demo: true', /^demo: unknown key/],
  ])('rejects %j', (text, message) => {
    expect(() => validateConfig(parseConfigText(text, 't.yaml'), ctx)).toThrow(message);
  });
});
