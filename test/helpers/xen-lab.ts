/**
 * The Xen labs' test rig (test/integration/xl-xen.test.ts on x86, xl-xen-arm.test.ts on armhf): what a
 * lab's driver recorded per scenario, read back and asserted (the lab itself runs through
 * test/helpers/emulator.ts).
 */
import { expect } from 'vitest';

export interface Dig {
  status: string;
  answer: string | null;
  ms?: number;
}
export interface Curl {
  ok: boolean;
  body: string;
  err: string;
}
export type Result = Record<string, unknown> & { scenario: string; error?: string };

/** Adds each `{json}` line (one scenario's record) to `results`; a line that does not parse is an error record. */
export function collectResults(lines: Iterable<string>, results: Map<string, Result>): void {
  for (const line of lines) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line) as Result;
      results.set(r.scenario, r);
    } catch {
      results.set('unparsable', { scenario: 'unparsable', error: `unparsable result line: ${line.slice(0, 200)}` });
    }
  }
}

/** Seconds with one decimal, or `?`. */
export const seconds = (ms: number | undefined | null): string => (ms === undefined || ms === null ? '?' : `${(ms / 1000).toFixed(1)} s`);

/** The scenario's record, asserted present and without an error; `context` explains a failure. */
export function scenarioResult(results: Map<string, Result>, scenario: string, context: string): Result {
  const r = results.get(scenario);
  expect(r, context).toBeDefined();
  expect(r!.error, context).toBeUndefined();
  return r!;
}
