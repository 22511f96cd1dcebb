import { describe, expect, it } from 'vitest';
import { CommandSyntaxError, parseCommand } from './command-line.js';

describe('parseCommand', () => {
  it('splits plain words and exec()s them directly', () => {
    expect(parseCommand('node  server.js --port 80')).toEqual({ argv: ['node', 'server.js', '--port', '80'], shell: false });
  });
  it('groups quoted words and honours backslash escapes', () => {
    expect(parseCommand(`echo 'a b' "c d" e\\ f "x\\"y" ''`)).toEqual({ argv: ['echo', 'a b', 'c d', 'e f', 'x"y', ''], shell: false });
  });
  it('keeps shell characters inside single quotes literal', () => {
    expect(parseCommand(`printf '%s|$HOME;*'`).argv).toEqual(['printf', '%s|$HOME;*']);
  });
  it.each(['a | b', 'a; b', 'a && b', 'echo $HOME', 'echo "$HOME"', 'ls *.js', 'a > f', 'echo `id`', '(a)'])('runs %s through /bin/sh -c', (cmd) => {
    expect(parseCommand(cmd)).toEqual({ argv: ['/bin/sh', '-c', cmd], shell: true });
  });
  it.each([['', 'is empty'], ['   ', 'is empty'], ['echo "abc', 'unclosed'], ["echo 'abc", 'unclosed'], ['echo \\', 'backslash']])('rejects %j', (cmd, why) => {
    expect(() => parseCommand(cmd)).toThrow(CommandSyntaxError);
    expect(() => parseCommand(cmd)).toThrow(why);
  });
});
