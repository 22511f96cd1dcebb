/**
 * Reads what test/armhf/driver.sh left in the board's results share: facts.txt (key value lines),
 * groups.txt (`NAME rc=N seconds=S` per vitest run) and one vitest JSON report per group.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface BoardTestResult {
  fullName: string;
  status: string;
  failureMessages: string[];
  durationMs: number;
}

export interface BoardGroup {
  name: string;
  rc: number;
  seconds: number;
}

export interface BoardReport {
  /** The driver reached its end (wrote `done`). */
  done: boolean;
  facts: Record<string, string>;
  groups: BoardGroup[];
  /** The group's test results, or undefined when its JSON report is missing or unreadable. */
  results(group: string): BoardTestResult[] | undefined;
  /** Full names of the group's tests that did not pass or were skipped ("pending"/"skipped" included). */
  failed(group: string): string[];
}

interface VitestJson {
  testResults?: { name: string; assertionResults?: { fullName: string; status: string; failureMessages?: string[]; duration?: number | null }[] }[];
}

export function parseFacts(text: string): Record<string, string> {
  const facts: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^(\S+) (.*)$/.exec(line.trim());
    if (m) facts[m[1]!] = m[2]!;
  }
  return facts;
}

export function parseGroups(text: string): BoardGroup[] {
  const groups: BoardGroup[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\S+) rc=(\d+)(?: seconds=([\d.]+))?/.exec(line.trim());
    if (m) groups.push({ name: m[1]!, rc: Number(m[2]), seconds: Number(m[3] ?? 0) });
  }
  return groups;
}

export function parseVitestJson(text: string): BoardTestResult[] {
  const json = JSON.parse(text) as VitestJson;
  return (json.testResults ?? []).flatMap((file) =>
    (file.assertionResults ?? []).map((r) => ({
      fullName: r.fullName,
      status: r.status,
      failureMessages: r.failureMessages ?? [],
      durationMs: r.duration ?? 0,
    })),
  );
}

export function readBoardReport(dir: string): BoardReport {
  const read = (f: string): string => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8') : '');
  const cache = new Map<string, BoardTestResult[] | undefined>();
  const results = (group: string): BoardTestResult[] | undefined => {
    if (!cache.has(group)) {
      let parsed: BoardTestResult[] | undefined;
      try {
        parsed = parseVitestJson(read(`${group}.json`));
      } catch {
        parsed = undefined;
      }
      cache.set(group, parsed);
    }
    return cache.get(group);
  };
  return {
    done: read('done').trim() === 'done',
    facts: parseFacts(read('facts.txt')),
    groups: parseGroups(read('groups.txt')),
    results,
    failed: (group) => (results(group) ?? []).filter((r) => r.status !== 'passed').map((r) => r.fullName),
  };
}
