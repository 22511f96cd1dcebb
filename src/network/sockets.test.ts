import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeAvailable } from '../native/index.js';
import { NetlinkError, netlinkMessage } from './netlink.js';
import { ALL_STATES, TCP_STATE, diagSockets, hasUdpSocket, isConnectionState, listeningTcpPorts, netnsSockets, openTcpConnections, parseDiagReply, parseProcNet, procNetSockets, tcpListeningAt } from './sockets.js';

const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1235 1 0000000000000000 100 0 0 10 0
   2: 0200C90A:1F90 0100C90A:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 1236 1 0000000000000000 20 4 30 10 -1
`;
const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0000000000000000 100 0 0 10 0
`;

/** One inet_diag_msg reply message for local port `port` in `state`. */
function diagMessage(port: number, state: number): Buffer {
  const body = Buffer.alloc(72);
  body[0] = 2;
  body[1] = state;
  body.writeUInt16BE(port, 4);
  return netlinkMessage(20, 2, 1, body);
}

describe('socket tables', () => {
  it('reads local ports and states from /proc/net/tcp and tcp6', () => {
    expect(parseProcNet(TCP)).toEqual([
      { port: 8080, state: TCP_STATE.LISTEN },
      { port: 53, state: TCP_STATE.LISTEN },
      { port: 8080, state: TCP_STATE.ESTABLISHED },
    ]);
    expect(parseProcNet(TCP6)).toEqual([{ port: 443, state: TCP_STATE.LISTEN }]);
    expect(parseProcNet('header only\n')).toEqual([]);
  });

  it('reads sock_diag replies up to NLMSG_DONE, and throws the errno of an NLMSG_ERROR', () => {
    const done = netlinkMessage(3, 2, 1, Buffer.alloc(4));
    const after = diagMessage(9, TCP_STATE.LISTEN);
    expect(parseDiagReply(Buffer.concat([diagMessage(80, TCP_STATE.LISTEN), diagMessage(80, TCP_STATE.ESTABLISHED), done, after]), 'dump')).toEqual([
      { port: 80, state: TCP_STATE.LISTEN },
      { port: 80, state: TCP_STATE.ESTABLISHED },
    ]);
    const error = Buffer.alloc(20);
    error.writeInt32LE(-97, 0); // EAFNOSUPPORT
    const thrown = (() => {
      try {
        parseDiagReply(netlinkMessage(2, 0, 1, error), 'dump');
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(thrown).toBeInstanceOf(NetlinkError);
    expect((thrown as NetlinkError).errno).toBe(97);
    // A truncated message ends the walk instead of reading past the buffer.
    expect(parseDiagReply(diagMessage(80, TCP_STATE.LISTEN).subarray(0, 40), 'dump')).toEqual([]);
  });

  it('counts a client connection in every state but LISTEN, CLOSE and TIME_WAIT', () => {
    expect([1, 2, 3, 4, 5, 8, 9, 11, 12].every(isConnectionState)).toBe(true);
    expect([TCP_STATE.LISTEN, TCP_STATE.CLOSE, TCP_STATE.TIME_WAIT].some(isConnectionState)).toBe(false);
  });

  it('knows nothing of a process that is gone', () => {
    const gone = spawnSync('true').pid!;
    expect(netnsSockets(gone, 'tcp', ALL_STATES)).toBeUndefined();
    expect(listeningTcpPorts(gone).size).toBe(0);
    expect(openTcpConnections(gone)).toBeUndefined();
  });
});

// A namespace of its own holding exactly: a TCP listener, one connection to it (two sockets), one
// UDP socket. The same answers must come from sock_diag (through the addon) and from /proc.
const CHILD = `
const net = require('node:net'), dgram = require('node:dgram');
const server = net.createServer((s) => s.on('error', () => {})).listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const client = net.connect(port, '127.0.0.1', () => {
    const udp = dgram.createSocket('udp4');
    udp.bind(0, '127.0.0.1', () => console.log(JSON.stringify({ tcp: port, udp: udp.address().port })));
  });
  client.on('error', () => {});
});
setTimeout(() => process.exit(0), 60000);
`;

const canUnshare = process.getuid?.() === 0 && spawnSync('unshare', ['--net', 'true']).status === 0;

/** Runs `script` in a new network namespace (lo up, then `setup`); resolves with its first stdout line. */
async function namespaceChild(script: string, setup = 'true'): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn('unshare', ['--net', 'sh', '-c', `ip link set lo up && ${setup} && exec "${process.execPath}" -e "$0"`, script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`namespace child exited (${code})`)));
  });
  return { child, line };
}

describe.skipIf(!canUnshare || !nativeAvailable())('the sockets of a real namespace (needs root, unshare and the addon)', () => {
  let child: ChildProcess;
  let ports: { tcp: number; udp: number };

  beforeAll(async () => {
    const started = await namespaceChild(CHILD);
    child = started.child;
    ports = JSON.parse(started.line) as { tcp: number; udp: number };
  });

  afterAll(() => {
    child?.kill('SIGKILL');
  });

  it('lists exactly its listener, its connection and its UDP socket', () => {
    const pid = child.pid!;
    expect([...listeningTcpPorts(pid)]).toEqual([ports.tcp]);
    expect(openTcpConnections(pid)).toBe(2);
    expect(hasUdpSocket(pid)).toBe(true);
  });

  it('gets the same answers from sock_diag (no fallback) as from /proc', () => {
    const pid = child.pid!;
    const sorted = (e: { port: number; state: number }[] | undefined): string[] => (e ?? []).map((s) => `${s.port}/${s.state}`).sort();
    for (const protocol of ['tcp', 'udp'] as const) {
      expect(sorted(diagSockets(pid, protocol, ALL_STATES))).toEqual(sorted(procNetSockets(pid, protocol, ALL_STATES)));
    }
    expect(sorted(diagSockets(pid, 'tcp', ALL_STATES)).length).toBe(3);
  });
});

// Listeners the exact lookup must tell apart by address: one on 127.0.0.1 only, one dual-stack on [::],
// and one on the namespace's other address 10.77.0.1 only.
const LISTENERS = `
const net = require('node:net');
const listen = (host) => new Promise((r) => { const s = net.createServer().listen(0, host, () => r(s.address().port)); });
Promise.all([listen('127.0.0.1'), listen('::'), listen('10.77.0.1')]).then(([loopback, wide, other]) => console.log(JSON.stringify({ loopback, wide, other })));
setTimeout(() => process.exit(0), 60000);
`;

describe.skipIf(!canUnshare || !nativeAvailable())('which listener a connection to an address would reach (needs root, unshare and the addon)', () => {
  let child: ChildProcess;
  let ports: { loopback: number; wide: number; other: number };
  const at = (ip: string) => ({ family: (ip.includes(':') ? 6 : 4) as 4 | 6, ip });

  beforeAll(async () => {
    const started = await namespaceChild(LISTENERS, 'ip addr add 10.77.0.1/32 dev lo');
    child = started.child;
    ports = JSON.parse(started.line) as typeof ports;
  });

  afterAll(() => {
    child?.kill('SIGKILL');
  });

  it('counts a listener only at an address it takes connections for', () => {
    const pid = child.pid!;
    expect(tcpListeningAt(pid, at('127.0.0.1'), [ports.loopback])).toBe(true);
    // A LISTEN dump sees the port, but a client of 10.77.0.1 would be reset.
    expect(listeningTcpPorts(pid).has(ports.loopback)).toBe(true);
    expect(tcpListeningAt(pid, at('10.77.0.1'), [ports.loopback])).toBe(false);
    expect(tcpListeningAt(pid, at('10.77.0.1'), [ports.other])).toBe(true);
    expect(tcpListeningAt(pid, at('127.0.0.1'), [ports.other])).toBe(false);
  });

  it('counts a dual-stack listener for IPv4 and IPv6 clients', () => {
    const pid = child.pid!;
    expect(tcpListeningAt(pid, at('10.77.0.1'), [ports.wide])).toBe(true);
    expect(tcpListeningAt(pid, at('::1'), [ports.wide])).toBe(true);
    expect(tcpListeningAt(pid, at('::1'), [ports.loopback])).toBe(false);
  });

  it('needs every port asked for', () => {
    const pid = child.pid!;
    expect(tcpListeningAt(pid, at('10.77.0.1'), [ports.wide, ports.other])).toBe(true);
    expect(tcpListeningAt(pid, at('10.77.0.1'), [ports.wide, ports.loopback])).toBe(false);
  });
});
