/**
 * Piscina worker: runs one backend call per task. The call is bounded by its own
 * AbortSignal.timeout, never by piscina's abort (that kills the thread mid-call and leaves
 * half-started services behind). Children spawned here are detached and unref'd: they outlive
 * this thread.
 */
import { MessageChannel, parentPort, threadId, type MessagePort } from 'node:worker_threads';
import { bootBackend, resumeBackend, vanishedReport, type BackendHandle } from '../backends/backend.js';
import { getBackend } from '../backends/registry.js';
import type { BootAnswer, BootCall, BootStarted, PoolRequest, PoolResponse, WorkerLoaded } from './protocol.js';
import { epochNow, toWireError } from './protocol.js';

export async function runRequest(req: PoolRequest): Promise<PoolResponse> {
  try {
    const backend = getBackend(req.spec.backend);
    switch (req.op) {
      case 'start': {
        const calledAt = epochNow();
        return { ok: true, value: await backend.start(req.spec, AbortSignal.timeout(req.timeoutMs)), calledAt };
      }
      case 'boot': {
        const calledAt = epochNow();
        const seen: { started?: BackendHandle } = {};
        try {
          const tell = (handle: BackendHandle): void => {
            seen.started = handle;
            parentPort?.postMessage({ bootStarted: req.bootId, handle } satisfies BootStarted);
          };
          const value = await bootBackend(backend, req.spec, AbortSignal.timeout(req.timeoutMs), tell, req.suspended);
          return { ok: true, value, calledAt, settledAt: epochNow() };
        } catch (err) {
          return { ok: false, error: toWireError(err, req.op), ...(seen.started ? { started: seen.started } : {}) };
        }
      }
      case 'prepare':
        return { ok: true, value: backend.prepare ? ((await backend.prepare(req.spec, AbortSignal.timeout(req.timeoutMs))) ?? null) : null };
      case 'ready':
        await backend.ready(req.handle, req.spec, AbortSignal.timeout(req.timeoutMs));
        return { ok: true, value: null, settledAt: epochNow() };
      case 'stop':
        await backend.stop(req.handle, req.spec, req.mode, AbortSignal.timeout(req.timeoutMs));
        return { ok: true, value: null };
      case 'resume':
        return { ok: true, value: (await resumeBackend(backend, req.handle, req.spec, AbortSignal.timeout(req.timeoutMs))) ?? null };
      case 'state':
        return { ok: true, value: await backend.state(req.handle, req.spec) };
      case 'exitReport':
        return { ok: true, value: backend.exitReport ? await backend.exitReport(req.handle, req.spec) : vanishedReport(backend.name) };
    }
  } catch (err) {
    return { ok: false, error: toWireError(err, req.op) };
  }
}

export default runRequest;

/** This thread's boot line (protocol.ts BootCall). Unref'd: the thread's life stays piscina's. */
function openBootLine(): MessagePort {
  const line = new MessageChannel();
  line.port1.on('message', (call: BootCall) => {
    void runRequest(call.req).then((res) => {
      try {
        line.port1.postMessage({ callId: call.callId, res } satisfies BootAnswer);
      } catch (err) {
        line.port1.postMessage({ callId: call.callId, res: { ok: false, error: toWireError(err, 'boot') } } satisfies BootAnswer);
      }
    });
  });
  line.port1.unref();
  return line.port2;
}

// Posted from the next turn of the event loop: piscina loads this module with a synchronous
// require() of ESM, which is still running when this line is evaluated; only after it returns can
// the thread be ended safely.
setImmediate(() => {
  const boots = openBootLine();
  parentPort?.postMessage({ workerLoaded: threadId, boots } satisfies WorkerLoaded, [boots]);
});
