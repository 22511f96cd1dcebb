/**
 * Waits `ms`, or rejects as soon as `signal` aborts: with the signal's reason, or with the error
 * `abortError` makes (so a backend can turn its deadline into BOOT_TIMEOUT/READY_TIMEOUT).
 */
export function abortableSleep(ms: number, signal: AbortSignal, abortError: () => unknown = () => signal.reason): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(abortError());
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortError());
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
