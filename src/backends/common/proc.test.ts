import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { decodeWaitStatus, isAlive, listeningTcpPorts, liveness, parseProcNet, parseProcStat, readProcStat } from './proc.js';

const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1235 1 0000000000000000 100 0 0 10 0
   2: 0200C90A:1F90 0100C90A:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 1236 1 0000000000000000 20 4 30 10 -1
`;
const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0000000000000000 100 0 0 10 0
`;

describe('/proc parsing', () => {
  it('reads local ports and states from /proc/net/tcp and tcp6', () => {
    expect(parseProcNet(TCP)).toEqual([
      { port: 8080, state: '0A' },
      { port: 53, state: '0A' },
      { port: 8080, state: '01' },
    ]);
    expect(parseProcNet(TCP6)).toEqual([{ port: 443, state: '0A' }]);
    expect(parseProcNet('header only\n')).toEqual([]);
  });

  it('parses /proc/PID/stat even when the command name holds ") ("', () => {
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
    fields[0] = 'Z';
    fields[22 - 3] = '987654';
    fields[52 - 3] = '768';
    const stat = parseProcStat(`42 (a) (b c) ${fields.join(' ')}\n`);
    expect(stat).toEqual({ state: 'Z', startTime: 987654, exitStatus: 768 });
    expect(decodeWaitStatus(768)).toEqual({ code: 3, signal: null });
    expect(decodeWaitStatus(9)).toEqual({ code: null, signal: 9 });
    expect(parseProcStat('garbage')).toBeUndefined();
  });

  it('tells our own live process from a reused pid', () => {
    const me = readProcStat(process.pid)!;
    expect(me.startTime).toBeGreaterThan(0);
    expect(liveness(process.pid, me.startTime).state).toBe('alive');
    expect(liveness(process.pid, me.startTime + 1).state).toBe('gone');
    const child = spawnSync('true');
    expect(liveness(child.pid!, 0).state).toBe('gone');
  });

  it('lists listening TCP ports of a real namespace', async () => {
    const { createServer } = await import('node:net');
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    try {
      expect(listeningTcpPorts(process.pid).has(port)).toBe(true);
    } finally {
      server.close();
    }
  });
});

describe('process identity', () => {
  it('knows this process, rejects a wrong start time and absent pids', () => {
    const st = readProcStat(process.pid)!;
    expect(st.startTime).toBeGreaterThan(0);
    expect(isAlive(process.pid, st.startTime)).toBe(true);
    expect(isAlive(process.pid, st.startTime + 1)).toBe(false);
    expect(isAlive(undefined, undefined)).toBe(false);
    expect(isAlive(2 ** 22 + 7, undefined)).toBe(false);
  });
});
