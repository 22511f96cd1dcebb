/**
 * `exec=` command lines. Plain commands are split into argv here and exec'd directly (no shell
 * process, no quoting surprises): words split on whitespace, `'single'` and `"double"` quotes group,
 * backslash escapes the next character (outside single quotes). A command that uses shell syntax
 * outside quotes (pipes, redirections, `;`, `&`, `$`, backquotes, globs, `(`, `)`, `{`, `}`, `~`,
 * `#`, `!`, or `$` inside double quotes) runs as `/bin/sh -c COMMAND` instead, unchanged.
 */
export interface ParsedCommand {
  argv: string[];
  /** True when the command runs through `/bin/sh -c`. */
  shell: boolean;
}

const SHELL_CHARS = new Set(['|', '&', ';', '<', '>', '(', ')', '$', '`', '*', '?', '[', ']', '{', '}', '~', '#', '!', '\n']);

export class CommandSyntaxError extends Error {}

export function parseCommand(command: string): ParsedCommand {
  const argv: string[] = [];
  let word = '';
  let inWord = false;
  let quote: "'" | '"' | null = null;
  for (let i = 0; i < command.length; i++) {
    const c = command[i]!;
    if (quote === "'") {
      if (c === "'") quote = null;
      else word += c;
      continue;
    }
    if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === '$' || c === '`') return { argv: ['/bin/sh', '-c', command], shell: true };
      else if (c === '\\' && i + 1 < command.length && '"\\$`'.includes(command[i + 1]!)) word += command[++i];
      else word += c;
      continue;
    }
    if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === '\\') {
      if (i + 1 >= command.length) throw new CommandSyntaxError('ends with a lone backslash');
      word += command[++i];
      inWord = true;
    } else if (c === ' ' || c === '\t') {
      if (inWord) argv.push(word);
      word = '';
      inWord = false;
    } else if (SHELL_CHARS.has(c)) {
      return { argv: ['/bin/sh', '-c', command], shell: true };
    } else {
      word += c;
      inWord = true;
    }
  }
  if (quote) throw new CommandSyntaxError(`has an unclosed ${quote} quote`);
  if (inWord) argv.push(word);
  if (argv.length === 0) throw new CommandSyntaxError('is empty');
  return { argv, shell: false };
}
