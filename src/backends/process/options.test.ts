import { describe, expect, it } from 'vitest';
import { errorCode } from '../../errors.js';
import { parseProcessOptions, processOptions } from './options.js';

function fails(options: Record<string, string[]>): { code: string | undefined; message: string } {
  try {
    parseProcessOptions('web', options);
  } catch (err) {
    return { code: errorCode(err), message: (err as Error).message };
  }
  throw new Error('expected CONFIG_INVALID');
}

describe('process backend options', () => {
  it('parses every key', () => {
    const cfg = parseProcessOptions('web', { exec: ['node s.js'], port: ['80', '443', '80'], env: ['A=1', 'B=x=y'], cwd: ['/srv'] });
    expect(cfg).toEqual({
      command: { argv: ['node', 's.js'], shell: false },
      ports: [80, 443],
      env: { A: '1', B: 'x=y' },
      cwd: '/srv',
      confinement: { user: 'jitsu-svc', privateTmp: true, readOnly: false, limits: {} },
      precreate: 'off',
    });
  });
  it('parses the confinement keys', () => {
    const cfg = parseProcessOptions('web', {
      exec: ['true'], user: ['www'], group: ['1001'], private_tmp: ['false'], read_only: ['true'], memory: ['256M'], cpu: ['0.5'], tasks: ['32'],
    });
    expect(cfg.confinement).toEqual({ user: 'www', group: '1001', privateTmp: false, readOnly: true, limits: { memoryBytes: 256 * 1024 * 1024, cpus: 0.5, tasks: 32 } });
  });
  it('needs exec', () => {
    expect(fails({ port: ['80'] })).toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringContaining('exec=') });
  });
  it.each([['port', '0'], ['port', '65536'], ['port', 'http'], ['env', 'NOEQUALS'], ['env', '1A=b'], ['cwd', 'rel/dir'], ['exec', 'echo "open'], ['user', 'a b'], ['group', 'x:y'], ['read_only', 'yes'], ['private_tmp', '1'], ['memory', '12X'], ['memory', '0'], ['cpu', '0'], ['cpu', 'half'], ['tasks', '0'], ['precreate', 'yes']])(
    'rejects %s=%s naming the key',
    (key, value) => {
      const opts: Record<string, string[]> = { exec: ['true'] };
      opts[key] = [value];
      const f = fails(opts);
      expect(f.code).toBe('CONFIG_INVALID');
      expect(f.message).toContain(key);
    },
  );
  it('rejects unknown keys and repeated single keys', () => {
    expect(fails({ exec: ['true'], kernel: ['x'] }).message).toContain('unknown process backend key "kernel"');
    expect(fails({ exec: ['true', 'false'] }).message).toContain('given 2 times');
  });
  it('validators agree with the parser', () => {
    const port = processOptions.find((o) => o.key === 'port')!;
    expect(port.validate!('8080')).toBeUndefined();
    expect(port.validate!('99999')).toMatch(/1-65535/);
  });
});
