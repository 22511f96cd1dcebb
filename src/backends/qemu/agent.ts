/**
 * The host half of clone safety (guest/agent.c is the guest half): a virtio-serial port named
 * `jitsu.agent` backed by a QEMU pipe chardev (`<runDir>/agent.in` to the guest, `agent.out` from
 * it). After every restore the host sends fresh entropy and the time; the copy counts as ready only
 * once the agent has reseeded its RNG with them and said so. Lines carry a nonce, so a reply left
 * in the pipe by an earlier request is never taken for this one's.
 */
import { randomBytes } from 'node:crypto';
import { chownSync, closeSync, constants, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { JitsuError } from '../../errors.js';


export const AGENT_PORT_NAME = 'jitsu.agent';

export function agentPipeBase(runDir: string): string {
  return join(runDir, 'agent');
}

/** The FIFOs QEMU's pipe chardev opens (it does not create them); owned by the user QEMU runs as. */
export function createAgentPipes(runDir: string, owner?: { uid: number; gid: number }): void {
  const base = agentPipeBase(runDir);
  for (const end of ['in', 'out']) {
    rmSync(`${base}.${end}`, { force: true });
    execFileSync('mkfifo', ['-m', '0600', `${base}.${end}`]); // Node has no mkfifo
    if (owner) chownSync(`${base}.${end}`, owner.uid, owner.gid);
  }
}

/**
 * One request, one reply line (without the nonce). Rejects with AGENT_FAILED when the guest answers
 * `error ...`, and when `signal` ends the wait (no agent, or a guest that does not run).
 */
export async function agentRequest(runDir: string, request: string, signal: AbortSignal, service: string): Promise<string> {
  const base = agentPipeBase(runDir);
  const nonce = randomBytes(6).toString('hex');
  // QEMU holds both FIFOs open read-write, so neither open blocks and neither end sees EOF.
  const reader = openSync(`${base}.out`, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const writer = openSync(`${base}.in`, constants.O_WRONLY | constants.O_NONBLOCK);
    try {
      writeSync(writer, `${nonce} ${request}\n`);
    } finally {
      closeSync(writer);
    }
    const buf = Buffer.alloc(512);
    let pending = '';
    for (;;) {
      let n = 0;
      try {
        n = readSync(reader, buf, 0, buf.length, null);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      }
      if (n > 0) {
        pending += buf.toString('latin1', 0, n);
        let nl;
        while ((nl = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          if (!line.startsWith(`${nonce} `)) continue; // an earlier request's reply
          const reply = line.slice(nonce.length + 1);
          if (reply.startsWith('error')) throw new JitsuError('AGENT_FAILED', `service ${service}: the guest agent refused "${request.split(' ')[0]}": ${reply}`, { service, reply });
          return reply;
        }
        continue;
      }
      if (signal.aborted) {
        throw new JitsuError('AGENT_FAILED', `service ${service}: no reply from the guest agent (${AGENT_PORT_NAME}) to "${request.split(' ')[0]}"`, { service });
      }
      await new Promise((r) => setTimeout(r, 1));
    }
  } finally {
    closeSync(reader);
  }
}

/** Fresh entropy and the host's time for a restored copy; resolves with the guest's first random bytes after the reseed. */
export async function reseedGuest(runDir: string, signal: AbortSignal, service: string): Promise<string> {
  const nowNs = BigInt(Date.now()) * 1_000_000n;
  const reply = await agentRequest(runDir, `restore ${nowNs} ${randomBytes(64).toString('hex')}`, signal, service);
  if (!reply.startsWith('ok ')) throw new JitsuError('AGENT_FAILED', `service ${service}: unexpected agent reply "${reply}"`, { service, reply });
  return reply.slice(3);
}
