/** Runs the real `dig` binary and parses the parts of its output the tests assert on. */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';

export const haveDig = existsSync('/usr/bin/dig');

export interface DigResult {
  status: string;
  flags: string[];
  counts: { query: number; answer: number; authority: number; additional: number };
  question: string[];
  answer: string[];
  authority: string[];
  edns: string | undefined;
  transport: string | undefined;
  output: string;
}

function section(out: string, title: string): string[] {
  const m = new RegExp(`;; ${title} SECTION:\\n([\\s\\S]*?)(?:\\n\\n|$)`).exec(out);
  return m ? m[1]!.split('\n').filter((l) => l.trim() !== '') : [];
}

/** `dig @server -p port ...args`, bounded by a 10 s timeout. */
export function dig(server: string, port: number, args: string[]): Promise<DigResult> {
  return new Promise((resolve, reject) => {
    execFile('dig', [`@${server}`, '-p', String(port), '+tries=1', '+timeout=3', ...args], { timeout: 10_000 }, (err, stdout, stderr) => {
      const out = stdout + stderr;
      const header = /status: (\w+)/.exec(out);
      if (!header) {
        reject(new Error(`dig ${args.join(' ')} gave no answer: ${err?.message ?? ''}\n${out}`));
        return;
      }
      const flags = /;; flags:([^;]*);/.exec(out)?.[1]!.trim().split(/\s+/) ?? [];
      const counts = /QUERY: (\d+), ANSWER: (\d+), AUTHORITY: (\d+), ADDITIONAL: (\d+)/.exec(out);
      resolve({
        status: header[1]!,
        flags,
        counts: {
          query: Number(counts?.[1]),
          answer: Number(counts?.[2]),
          authority: Number(counts?.[3]),
          additional: Number(counts?.[4]),
        },
        question: section(out, 'QUESTION'),
        answer: section(out, 'ANSWER'),
        authority: section(out, 'AUTHORITY'),
        edns: /; EDNS: (.*)/.exec(out)?.[1],
        transport: /;; SERVER: .*\((\w+)\)/.exec(out)?.[1],
        output: out,
      });
    });
  });
}
