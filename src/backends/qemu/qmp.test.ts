import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { QMP_MAX_LINE, QmpClient, QmpLineParser, encodeQmpCommand, qmpOnce } from './qmp.js';

describe('QMP framing', () => {
  it('encodes a command with an id and optional arguments, CRLF-terminated', () => {
    expect(encodeQmpCommand('query-status', undefined, 7)).toBe('{"execute":"query-status","id":7}\r\n');
    expect(JSON.parse(encodeQmpCommand('set_link', { name: 'net0', up: false }, 1))).toEqual({ execute: 'set_link', id: 1, arguments: { name: 'net0', up: false } });
  });
  it('splits a stream into messages across arbitrary chunk boundaries', () => {
    const p = new QmpLineParser();
    expect(p.push('{"return": {}, "id"')).toEqual([]);
    expect(p.push(': 1}\r\n{"event": "STOP"}\r\n{"ret')).toEqual([{ return: {}, id: 1 }, { event: 'STOP' }]);
    expect(p.push('urn": 3}\n')).toEqual([{ return: 3 }]);
  });
  it('rejects non-JSON, non-object and oversized messages', () => {
    expect(() => new QmpLineParser().push('garbage\n')).toThrow(/not JSON/);
    expect(() => new QmpLineParser().push('[1,2]\n')).toThrow(/non-object/);
    expect(() => new QmpLineParser().push('x'.repeat(QMP_MAX_LINE + 1))).toThrow(/longer than/);
  });
});

/** A fake QMP server speaking the real protocol shape (greeting, capabilities, replies by id). */
function fakeQmp(path: string, onCommand: (cmd: { execute: string; id: number }, sock: Socket) => void, greet = true): Promise<Server> {
  const srv = createServer((sock) => {
    if (greet) sock.write('{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": []}}\r\n');
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const cmd = JSON.parse(buf.slice(0, nl)) as { execute: string; id: number };
        buf = buf.slice(nl + 1);
        if (cmd.execute === 'qmp_capabilities') sock.write(`{"return": {}, "id": ${cmd.id}}\r\n`);
        else onCommand(cmd, sock);
      }
    });
  });
  return new Promise((r) => srv.listen(path, () => r(srv)));
}

describe('QmpClient against a socket', () => {
  let dir: string;
  let srv: Server | undefined;
  afterEach(() => {
    srv?.close();
    srv = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('handshakes, matches replies by id past interleaved events, reports QMP errors', async () => {
    dir = mkdtempSync(join(tmpdir(), 'jt4-qmp-'));
    const path = join(dir, 'qmp.sock');
    srv = await fakeQmp(path, (cmd, sock) => {
      if (cmd.execute === 'query-status') {
        sock.write('{"event": "RESUME", "timestamp": {"seconds": 1, "microseconds": 2}}\r\n');
        sock.write(`{"return": {"status": "running", "running": true}, "id": ${cmd.id}}\r\n`);
      } else {
        sock.write(`{"error": {"class": "CommandNotFound", "desc": "The command ${cmd.execute} has not been found"}, "id": ${cmd.id}}\r\n`);
      }
    });
    const c = await QmpClient.connect(path, 1000);
    expect(await c.execute('query-status')).toEqual({ status: 'running', running: true });
    expect(c.events).toEqual(['RESUME']);
    await expect(c.execute('nope')).rejects.toThrow(/CommandNotFound/);
    c.close();
    expect(await qmpOnce(path, 'query-status')).toMatchObject({ running: true });
  });

  it('fails with BOOT_FAILED when nothing listens or the server never greets', async () => {
    dir = mkdtempSync(join(tmpdir(), 'jt4-qmp-'));
    await expect(QmpClient.connect(join(dir, 'none.sock'), 500)).rejects.toMatchObject({ code: 'BOOT_FAILED' });
    const path = join(dir, 'mute.sock');
    srv = await fakeQmp(path, () => undefined, false);
    const t0 = Date.now();
    await expect(QmpClient.connect(path, 200)).rejects.toMatchObject({ code: 'BOOT_FAILED' });
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('pending commands fail when the connection drops', async () => {
    dir = mkdtempSync(join(tmpdir(), 'jt4-qmp-'));
    const path = join(dir, 'drop.sock');
    srv = await fakeQmp(path, (_cmd, sock) => sock.destroy());
    const c = await QmpClient.connect(path, 1000);
    await expect(c.execute('quit')).rejects.toThrow(/closed/);
  });
});
