import { describe, expect, it } from 'vitest';
import { errorCode } from '../../errors.js';
import { handleCodec } from './handle.js';

interface Data {
  netns: string;
  startTime: number;
  ports: number[];
  claims?: string;
}

const codec = handleCodec<Data>({ backend: 'process', required: { netns: 'string', startTime: 'number', ports: 'number[]' }, pid: true });

describe('handle codec', () => {
  it('reads the declared shape back with its pid', () => {
    const data: Data = { netns: 'jitsu-web', startTime: 42, ports: [80] };
    const handle = { backend: 'process' as const, service: 'web', pid: 7, data: codec.write(data) };
    expect(codec.read(handle)).toEqual({ data, pid: 7 });
  });
  it('is STATE_CORRUPT naming every missing or mistyped field', () => {
    let err: unknown;
    try {
      codec.read({ backend: 'process', service: 'web', data: { netns: 'x', startTime: '42', ports: ['80'] } });
    } catch (e) {
      err = e;
    }
    expect(errorCode(err)).toBe('STATE_CORRUPT');
    expect((err as Error).message).toBe('process handle for web lacks pid/startTime/ports');
    expect((err as { details: unknown }).details).toEqual({ service: 'web', missing: ['pid', 'startTime', 'ports'] });
  });
  it('without a required pid, an absent pid is fine', () => {
    const loose = handleCodec<{ domain?: string }>({ backend: 'xl', required: {} });
    expect(loose.read({ backend: 'xl', service: 'x', data: {} })).toEqual({ data: {}, pid: undefined });
  });
});
