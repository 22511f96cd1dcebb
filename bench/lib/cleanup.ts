/**
 * Last-resort cleanup: every benchmark registers what it created (processes, netns, links) and
 * removes it in its own finally; on SIGINT/SIGTERM the orchestrator runs whatever is still pending.
 */
type Step = () => Promise<void> | void;

const pending = new Set<Step>();

/** Registers `step`; the returned function runs it once and unregisters it. */
export function deferCleanup(step: Step): () => Promise<void> {
  let done = false;
  const once: Step = async () => {
    if (done) return;
    done = true;
    pending.delete(once);
    await step();
  };
  pending.add(once);
  return async () => {
    await once();
  };
}

export async function runPendingCleanups(): Promise<void> {
  for (const step of [...pending].reverse()) {
    try {
      await step();
    } catch {
      /* best effort: keep going */
    }
  }
}
