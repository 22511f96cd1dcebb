/** Flags of confinement: --allow-forward, --rrl-rate/--rrl-slip, --max-booting/--summon-rate. */
import { describe, expect, it } from 'vitest';
import { createFakeBackend } from '../backends/fake/index.js';
import { parseArgv } from '../cli/argv.js';
import { validateConfig } from './validate.js';

const fake = createFakeBackend();
const validate = (argv: string[]) => validateConfig(parseArgv(argv).raw, { defaultForwarders: () => ['192.0.2.53'], backend: () => fake });

describe('confinement flags', () => {
  it('defaults: forward for loopback and the services subnets, RRL 200/s slip 2, 16 boots at once, 20 summons/s per client', () => {
    const c = validate(['dns=a.jitsu.test,ip=10.0.0.2', 'dns=b.jitsu.test,ip=10.0.0.3', 'dns=c.jitsu.test,ip=fd00:1::5']);
    expect(c.allowForward).toEqual(['127.0.0.0/8', '::1/128', '10.0.0.1/24', 'fd00:1::1/64']);
    expect(c).toMatchObject({ rrlRate: 200, rrlSlip: 2, maxBooting: 16, summonRate: 20 });
  });

  it('the --host-cidr subnet replaces the per-service ones in the default', () => {
    expect(validate(['--host-cidr', '10.9.0.1/16', 'dns=a.jitsu.test,ip=10.9.3.2']).allowForward).toEqual(['127.0.0.0/8', '::1/128', '10.9.0.1/16']);
  });

  it('--allow-forward replaces the default; repeatable and comma-separated; a bare address is one host', () => {
    const c = validate(['--allow-forward', '192.0.2.0/24,2001:db8::/56', '--allow-forward', '198.51.100.7', 'dns=a.jitsu.test,ip=10.0.0.2']);
    expect(c.allowForward).toEqual(['192.0.2.0/24', '2001:db8::/56', '198.51.100.7/32']);
  });

  it('turns RRL and the per-client summon rate off with 0', () => {
    expect(validate(['--rrl-rate', '0', '--summon-rate', '0', 'dns=a.jitsu.test,ip=10.0.0.2'])).toMatchObject({ rrlRate: 0, summonRate: 0 });
  });

  it.each([
    [['--allow-forward', '10.0.0.0/40'], /^--allow-forward: "10.0.0.0\/40" is not ADDRESS\/PREFIX/],
    [['--allow-forward', 'lan'], /^--allow-forward: "lan" is not an IPv4 or IPv6 address/],
    [['--allow-forward', ','], /^--allow-forward: no prefix given/],
    [['--rrl-rate', '-1'], /^--rrl-rate: -1 is out of range/],
    [['--rrl-slip', 'x'], /^--rrl-slip: "x" is not a number/],
    [['--max-booting', '0'], /^--max-booting: 0 is out of range \(expected 1\.\./],
    [['--summon-rate', '1.5'], /^--summon-rate: 1.5 is not a whole number/],
  ])('%j -> exit-2 message', (argv, message) => {
    expect(() => validate([...argv, 'dns=a.jitsu.test,ip=10.0.0.2'])).toThrow(message);
  });
});
