/**
 * Socket activation for programs that bind their own port: can jitsu-preload.so (native/preload.c)
 * be loaded into a program, and has the program taken its pre-bound sockets over yet? Shared by the
 * process and container backends.
 */
import { closeSync, lstatSync, openSync, readFileSync, readSync, readlinkSync, watch } from 'node:fs';
import { basename, dirname, isAbsolute, join } from 'node:path';

/**
 * How a program is linked, as far as LD_PRELOAD cares:
 * - `glibc`: dynamic with glibc's loader (ld-linux*): the preload library works.
 * - `static`: an ELF without an interpreter (busybox-static, Go): LD_PRELOAD is never read.
 * - `foreign`: dynamic with another loader (musl's ld-musl-*): a glibc library cannot be loaded.
 * - `unknown`: unreadable, or a script whose interpreter is not an absolute path: assumed glibc.
 */
export type Linkage = 'glibc' | 'static' | 'foreign' | 'unknown';

const PT_INTERP = 3;

/**
 * The ELF interpreter named by `head` (the first bytes of a file): a path, `null` for an ELF without
 * one (static), `undefined` when `head` is no ELF or too short to tell.
 */
export function elfInterpreter(head: Buffer): string | null | undefined {
  if (head.length < 52 || head.readUInt32BE(0) !== 0x7f454c46) return undefined;
  const wide = head[4] === 2;
  const le = head[5] !== 2;
  const u16 = (o: number): number => (le ? head.readUInt16LE(o) : head.readUInt16BE(o));
  const word = (o: number): number => (wide ? Number(le ? head.readBigUInt64LE(o) : head.readBigUInt64BE(o)) : le ? head.readUInt32LE(o) : head.readUInt32BE(o));
  const phoff = word(wide ? 0x20 : 0x1c);
  const phentsize = u16(wide ? 0x36 : 0x2a);
  const phnum = u16(wide ? 0x38 : 0x2c);
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (ph + (wide ? 0x28 : 0x20) > head.length) return undefined;
    if ((le ? head.readUInt32LE(ph) : head.readUInt32BE(ph)) !== PT_INTERP) continue;
    const offset = word(ph + (wide ? 0x08 : 0x04));
    const size = word(ph + (wide ? 0x20 : 0x10));
    if (offset + size > head.length) return undefined;
    return head.subarray(offset, offset + size).toString('latin1').replace(/\0.*$/s, '');
  }
  return null;
}

/** What a `#!` line names as interpreter (absolute paths only), else undefined. */
export function shebangInterpreter(head: Buffer): string | undefined {
  if (head[0] !== 0x23 || head[1] !== 0x21) return undefined;
  const line = head.subarray(2, Math.max(2, head.indexOf(0x0a))).toString('latin1').trim();
  const interpreter = line.split(/\s+/)[0];
  return interpreter && isAbsolute(interpreter) ? interpreter : undefined;
}

export function linkageOfInterpreter(interpreter: string | null): Linkage {
  if (interpreter === null) return 'static';
  return /\/ld-linux[^/]*\.so|\/ld64\.so|\/ld\.so\.1$/.test(interpreter) ? 'glibc' : 'foreign';
}

/**
 * `path` (absolute inside `root`) as a host path, following symlinks inside `root`: an absolute link
 * target (busybox rootfs: /bin/httpd -> busybox, Debian: /bin -> usr/bin) is relative to `root`.
 */
export function pathInRoot(root: string, path: string): string {
  if (root === '/') return path;
  let inside = path;
  for (let hops = 0; hops < 16; hops++) {
    const host = join(root, inside);
    let target: string;
    try {
      if (!lstatSync(host).isSymbolicLink()) return host;
      target = readlinkSync(host);
    } catch {
      return host;
    }
    inside = isAbsolute(target) ? target : join(dirname(inside), target);
  }
  return join(root, inside);
}

function head(path: string, bytes = 16384): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const buf = Buffer.alloc(bytes);
    return buf.subarray(0, readSync(fd, buf, 0, bytes, 0));
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** How the program at `path` (absolute inside `root`) is linked; a script is judged by its interpreter. */
export function programLinkage(path: string, root = '/'): Linkage {
  let current = path;
  for (let depth = 0; depth < 4; depth++) {
    const bytes = head(pathInRoot(root, current));
    if (!bytes) return 'unknown';
    const interpreter = elfInterpreter(bytes);
    if (interpreter !== undefined) return linkageOfInterpreter(interpreter);
    const script = shebangInterpreter(bytes);
    if (!script) return 'unknown';
    current = script;
  }
  return 'unknown';
}

/** Can jitsu-preload.so take effect in a program of this linkage? */
export function preloadWorks(linkage: Linkage): boolean {
  return linkage === 'glibc' || linkage === 'unknown';
}

/** Find `command` like execvp would, inside `root`, with the PATH `searchPath`. */
export function findInRoot(command: string, searchPath: string, root = '/'): string | undefined {
  const executable = (inside: string): boolean => {
    try {
      return lstatSync(pathInRoot(root, inside)).isFile();
    } catch {
      return false;
    }
  };
  if (command.includes('/')) return isAbsolute(command) ? command : undefined;
  for (const dir of searchPath.split(':')) if (dir && executable(join(dir, command))) return join(dir, command);
  return undefined;
}

/** The ports named in a claims report ("tcp-PORT PID" lines, appended by jitsu-preload.so). */
export function parseClaims(text: string): Set<number> {
  const ports = new Set<number>();
  for (const m of text.matchAll(/^tcp-(\d+) \d+$/gm)) ports.add(Number(m[1]));
  return ports;
}

/** Has every one of `ports` been claimed (per the report file at `path`)? */
export function claimedAll(path: string, ports: readonly number[]): boolean {
  let text: string;
  try {
    text = readFileSync(path, 'latin1');
  } catch {
    return false;
  }
  const claimed = parseClaims(text);
  return ports.every((p) => claimed.has(p));
}

/**
 * Call `onClaim` as soon as the claims report at `path` is written (inotify on its directory), so a
 * poll loop need not poll fast to notice a claim at once. Returns the function that stops watching;
 * if the directory cannot be watched, nothing is called and the caller's polling still works.
 */
export function watchClaims(path: string, onClaim: () => void): () => void {
  const name = basename(path);
  try {
    const watcher = watch(dirname(path), { persistent: false }, (_event, file) => {
      if (file === null || file === name) onClaim();
    });
    watcher.on('error', () => watcher.close());
    return () => watcher.close();
  } catch {
    return () => undefined;
  }
}

/**
 * What ready() waits for: the program has claimed (taken over, through jitsu-preload.so) each of
 * `claim`, and its netns accepts on each of `listen` ('any': on some port, or has a UDP socket).
 */
export interface ServingProbe {
  claim: readonly number[];
  listen: readonly number[] | 'any';
}

/** The probe for the `wanted` ports (ready=tcp:PORT, else port=), given which of them were pre-bound. */
export function servingProbe(wanted: readonly number[], preBound: readonly number[]): ServingProbe {
  if (wanted.length === 0) return { claim: [], listen: 'any' };
  return { claim: wanted.filter((p) => preBound.includes(p)), listen: wanted.filter((p) => !preBound.includes(p)) };
}

/** The one line the service log gets when its ports cannot be pre-bound for it. */
export function notPreBoundNote(program: string, linkage: Linkage, ports: readonly number[]): string {
  const why = linkage === 'static' ? 'is statically linked' : 'uses a C library other than glibc';
  return (
    `jitsu: ${program} ${why}, so jitsu-preload.so cannot hand it pre-bound sockets: port ${ports.join(',')} not pre-bound ` +
    '(no socket activation for this service); it binds the port itself and is ready once it listens\n'
  );
}
