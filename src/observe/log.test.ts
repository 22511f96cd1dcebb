import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, openLogFile, streamLogOutput } from './log.js';

/** A destination that accepts writes but completes none until `release()`: a consumer that stopped reading. */
function stalledStream(): { stream: Writable; written: string[]; release: () => void } {
  const written: string[] = [];
  const held: (() => void)[] = [];
  const stream = new Writable({
    highWaterMark: 16,
    write(chunk: Buffer, _enc, done) {
      written.push(chunk.toString());
      held.push(done);
    },
  });
  /** Complete every write, including those queued behind the held ones. */
  const release = async (): Promise<void> => {
    while (held.length > 0 || stream.writableLength > 0) {
      held.splice(0).forEach((d) => d());
      await new Promise((r) => setImmediate(r));
    }
  };
  return { stream, written, release };
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('log output', () => {
  it('survives a destination that fails (EPIPE): no throw, later lines dropped and counted', async () => {
    const stream = new Writable({ write: (_c, _e, done) => done(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' })) });
    const lost: string[] = [];
    const output = streamLogOutput(stream, { onLost: (err) => lost.push(err.message) });
    let counted = 0;
    output.onDrop = (n) => (counted += n);
    const logger = createLogger('info', (line) => output.write(line));
    logger.info('first');
    await new Promise((r) => setImmediate(r));
    expect(lost).toEqual(['write EPIPE']);
    for (let i = 0; i < 5; i++) logger.info('after the consumer left');
    expect(output.dropped).toBe(5);
    expect(counted).toBe(5);
  });

  it('bounds what a stalled destination queues, then says how many lines it dropped', async () => {
    const { stream, written, release } = stalledStream();
    const output = streamLogOutput(stream, { maxPendingBytes: 1000 });
    const line = 'x'.repeat(99);
    for (let i = 0; i < 100; i++) output.write(line);
    expect(stream.writableLength).toBeLessThanOrEqual(1000 + 100);
    expect(output.dropped).toBe(100 - 11);
    await release();
    written.length = 0;
    output.write('after the stall');
    await release();
    expect(written[0]).toMatch(/level=warn msg="log lines dropped" lines=89 /);
    expect(written[1]).toBe('after the stall\n');
  });

  it('appends to a file and reopens it at its path after a rotation', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jitsu-log-'));
    dirs.push(dir);
    const path = join(dir, 'jitsu.log');
    const output = openLogFile(path);
    output.write('before rotation');
    await new Promise((r) => setTimeout(r, 50));
    renameSync(path, `${path}.1`);
    output.reopen();
    output.write('after rotation');
    await output.close();
    expect(readFileSync(`${path}.1`, 'utf8')).toBe('before rotation\n');
    expect(readFileSync(path, 'utf8')).toBe('after rotation\n');
  });

  it('throws the open error for a path it cannot append to, and keeps the old file on a failed reopen', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jitsu-log-'));
    dirs.push(dir);
    expect(() => openLogFile(dir)).toThrow(expect.objectContaining({ code: 'EISDIR' }));
    expect(() => openLogFile(join(dir, 'missing', 'x.log'))).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    const sub = join(dir, 'sub');
    const path = join(sub, 'jitsu.log');
    mkdirSync(sub);
    const output = openLogFile(path);
    renameSync(sub, join(dir, 'moved'));
    expect(() => output.reopen()).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    output.write('still written');
    await output.close();
    expect(readFileSync(join(dir, 'moved', 'jitsu.log'), 'utf8')).toBe('still written\n');
    expect(existsSync(path)).toBe(false);
  });
});
