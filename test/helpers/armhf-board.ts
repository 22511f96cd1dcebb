/**
 * Reads what test/armhf/driver.sh left in the board's results share: facts.txt (key value lines),
 * groups.txt (`NAME rc=N seconds=S` per command), e2e.txt (test/armhf/e2e.sh's `RESULT NAME
 * pass|fail DETAIL` and `FIGURE NAME VALUE UNIT` lines) and vitest's JSON report (board.json).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface BoardTestResult {
  /** The test file, relative to the checkout. */
  file: string;
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

export interface BoardCheck {
  passed: boolean;
  detail: string;
}

export interface BoardReport {
  /** The driver reached its end (wrote `done`). */
  done: boolean;
  facts: Record<string, string>;
  groups: BoardGroup[];
  /** e2e.sh's checks by name. */
  checks: Map<string, BoardCheck>;
  /** e2e.sh's figures: name -> "VALUE UNIT". */
  figures: Map<string, string>;
  /** The group's test results, or undefined when its JSON report is missing or unreadable. */
  results(group: string): BoardTestResult[] | undefined;
  /** The group's tests in `files` (path prefixes) that did not pass, skipped ones included. */
  failed(group: string, files: string[]): string[];
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

export function parseChecks(text: string): { checks: Map<string, BoardCheck>; figures: Map<string, string> } {
  const checks = new Map<string, BoardCheck>();
  const figures = new Map<string, string>();
  for (const line of text.split('\n')) {
    const r = /^RESULT (\S+) (pass|fail) ?(.*)$/.exec(line);
    if (r) checks.set(r[1]!, { passed: r[2] === 'pass', detail: r[3]! });
    const f = /^FIGURE (\S+) (.+)$/.exec(line);
    if (f) figures.set(f[1]!, f[2]!);
  }
  return { checks, figures };
}

export function parseVitestJson(text: string, root = '/srv/jitsu/'): BoardTestResult[] {
  const json = JSON.parse(text) as VitestJson;
  return (json.testResults ?? []).flatMap((file) =>
    (file.assertionResults ?? []).map((r) => ({
      file: file.name.startsWith(root) ? file.name.slice(root.length) : file.name,
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
  const { checks, figures } = parseChecks(read('e2e.txt'));
  return {
    checks,
    figures,
    done: read('done').trim() === 'done',
    facts: parseFacts(read('facts.txt')),
    groups: parseGroups(read('groups.txt')),
    results,
    failed: (group, files) =>
      (results(group) ?? []).filter((r) => files.some((f) => r.file.startsWith(f)) && r.status !== 'passed').map((r) => `${r.file}: ${r.fullName} (${r.status})`),
  };
}
