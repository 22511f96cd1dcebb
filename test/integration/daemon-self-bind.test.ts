/**
 * "Ready means serving", end to end through the real CLI: socket-activated (port=) services whose
 * unmodified servers bind their own port — python's http.server (the README example, and its default
 * dual-stack bind), node's listen(80) — answer the first curl after dig, from a client netns with no
 * SYN retransmitted; commands that die during their boot give SERVFAIL and a log line with their
 * exit status or signal; a static server (busybox httpd) binds the port itself and serves.
 * Bridge jt8<pid>b, services 10.218.N.0/24, client netns on the same bridge.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClientNetns, type ClientNetns } from '../helpers/client-netns.js';
import { CLI, cleanupNetwork, dig, haveCommand, isRoot, startDaemon, type DaemonProcess } from '../helpers/daemon.js';

const canRun = isRoot() && ['dig', 'curl', 'nstat', 'python3', 'busybox'].every(haveCommand) && existsSync(CLI);
const why = canRun ? '' : 'needs root, dig, curl, nstat, busybox and a build (npm run build:ts)';
const PREFIX = `jt8${process.pid.toString(36).slice(-3)}`;
const NET = `10.218.${(process.pid % 200) + 1}`;

describe.skipIf(!canRun)(`daemon: port= services whose servers bind their own port ${why}`, () => {
  let d: DaemonProcess | undefined;
  let client: ClientNetns | undefined;
  let dir = '';
  const svc = (name: string, host: number, exec: string, extra = ''): string => `name=${PREFIX}${name},dns=${name}.jt8.test,ip=${NET}.${host},port=80,exec=${exec}${extra}`;

  beforeAll(async () => {
    // Outside /tmp and world-readable: the services run as jitsu-svc with a private /tmp.
    dir = mkdtempSync('/var/tmp/jt8-');
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, 'index.html'), 'hello from python\n');
    writeFileSync(join(dir, 'server.cjs'), "require('node:http').createServer((q, s) => s.end('hello from node\\n')).listen(80);\n");
    d = await startDaemon({
      bridge: `${PREFIX}b`,
      args: ['-f', '0.0.0.0'],
      metrics: true,
      services: [
        // The README's example, verbatim but for the name, address and directory.
        svc('py4', 10, 'python3 -m http.server --bind 0.0.0.0 80', `,cwd=${dir}`),
        svc('py6', 11, 'python3 -m http.server 80', `,cwd=${dir}`),
        svc('node', 12, `${process.execPath} ${join(dir, 'server.cjs')}`),
        svc('static', 13, `/bin/busybox httpd -f -p 80 -h ${dir}`),
        svc('exit3', 20, 'sh -c "exit 3"'),
        svc('late', 21, 'sh -c "sleep 0.2; exit 4"'),
        svc('signal', 22, "sh -c 'kill -TERM $$'"),
      ],
    });
    client = await createClientNetns(`${PREFIX}c`, `${PREFIX}b`, `${NET}.250/24`, `${NET}.1`);
  });
  afterAll(async () => {
    await client?.remove();
    await d?.stop();
    await cleanupNetwork(PREFIX);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** dig, then one curl from the client netns (no retries): body, time, SYN retransmissions. */
  async function digThenCurl(name: string, host: number): Promise<{ body: string; totalS: number; synRetrans: number }> {
    const answer = await dig(d!.port, `${name}.jt8.test`);
    expect(answer.status, answer.raw).toBe('NOERROR');
    expect(answer.answers[0]).toMatch(new RegExp(`\\s${NET.replace(/\./g, '\\.')}\\.${host}$`));
    const before = await client!.tcpCounters();
    const r = await client!.exec('curl', ['-sS', '--retry', '0', '--max-time', '5', '-w', '\n%{time_total}', `http://${NET}.${host}/`]);
    const after = await client!.tcpCounters();
    expect(r.code, r.stderr).toBe(0);
    const cut = r.stdout.lastIndexOf('\n');
    return { body: r.stdout.slice(0, cut), totalS: Number(r.stdout.slice(cut + 1)), synRetrans: after.synRetrans - before.synRetrans };
  }

  async function state(name: string): Promise<string | undefined> {
    const doc = (await (await fetch(`http://127.0.0.1:${d!.metricsPort}/status`)).json()) as { services: { service: string; state: string }[] };
    return doc.services.find((s) => s.service === `${PREFIX}${name}`)?.state;
  }

  it.each([
    ['py4', 10, 'hello from python'],
    ['py6', 11, 'hello from python'],
    ['node', 12, 'hello from node'],
  ])('%s: dig answers once the server took its socket over; the first curl is served at once, no SYN retransmitted', async (name, host, body) => {
    const r = await digThenCurl(name, host);
    expect(r.body).toBe(`${body}\n`);
    expect(r.synRetrans).toBe(0);
    expect(r.totalS).toBeLessThan(0.5);
    expect(await state(name)).toBe('ready');
    await d!.waitForLog(new RegExp(`msg="?ready"? service=${PREFIX}${name} `));
  });

  it('static: busybox httpd (no PT_INTERP, LD_PRELOAD cannot reach it) is not pre-bound, binds port 80 itself and serves', async () => {
    const r = await digThenCurl('static', 13);
    expect(r.body).toBe('hello from python\n');
    expect(r.synRetrans).toBe(0);
    expect(readServiceLog('static')).toMatch(/\/bin\/busybox is statically linked.*port 80 not pre-bound/);
  });

  function readServiceLog(name: string): string {
    const service = `${PREFIX}${name}`;
    return readFileSync(join(d!.stateDir, 'run', service, `${service}.log`), 'utf8');
  }

  it.each([
    ['exit3', 'exited with status 3'],
    ['late', 'exited with status 4'],
    ['signal', 'was killed by signal 15'],
  ])('%s: a command that dies during its boot gives SERVFAIL and a log line with its status', async (name, how) => {
    const answer = await dig(d!.port, `${name}.jt8.test`);
    expect(answer.status).toBe('SERVFAIL');
    // One log line: the failure, the service, the code and how the command ended (in any field order).
    await d!.waitForLog(new RegExp(`^(?=.*boot failed)(?=.*service=${PREFIX}${name}\\b)(?=.*code=BOOT_FAILED)(?=.*${how}).*$`, 'm'));
    expect(await state(name)).toBe('stopped');
  });
});
