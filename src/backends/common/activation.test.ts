import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { elfInterpreter, findInRoot, linkageOfInterpreter, parseClaims, pathInRoot, preloadWorks, programLinkage, servingProbe, shebangInterpreter } from './activation.js';

/** A minimal 64-bit little-endian ELF header with one program header (PT_INTERP when `interp`). */
function elf64(interp?: string): Buffer {
  const buf = Buffer.alloc(0x100);
  buf.writeUInt32BE(0x7f454c46, 0);
  buf[4] = 2; // ELFCLASS64
  buf[5] = 1; // little-endian
  buf.writeBigUInt64LE(0x40n, 0x20); // e_phoff
  buf.writeUInt16LE(0x38, 0x36); // e_phentsize
  buf.writeUInt16LE(1, 0x38); // e_phnum
  buf.writeUInt32LE(interp ? 3 : 1, 0x40); // p_type: PT_INTERP or PT_LOAD
  if (interp) {
    buf.writeBigUInt64LE(0xa0n, 0x48); // p_offset
    buf.writeBigUInt64LE(BigInt(interp.length + 1), 0x60); // p_filesz
    buf.write(`${interp}\0`, 0xa0, 'latin1');
  }
  return buf;
}

/** The same for a 32-bit little-endian ELF (armhf, i386): 4-byte words, other offsets. */
function elf32(interp?: string): Buffer {
  const buf = Buffer.alloc(0x100);
  buf.writeUInt32BE(0x7f454c46, 0);
  buf[4] = 1; // ELFCLASS32
  buf[5] = 1;
  buf.writeUInt32LE(0x34, 0x1c); // e_phoff
  buf.writeUInt16LE(0x20, 0x2a); // e_phentsize
  buf.writeUInt16LE(1, 0x2c); // e_phnum
  buf.writeUInt32LE(interp ? 3 : 1, 0x34);
  if (interp) {
    buf.writeUInt32LE(0x80, 0x38); // p_offset
    buf.writeUInt32LE(interp.length + 1, 0x44); // p_filesz
    buf.write(`${interp}\0`, 0x80, 'latin1');
  }
  return buf;
}

describe('ELF linkage', () => {
  // On an armhf host every program is ELF32 with /lib/ld-linux-armhf.so.3: read as ELF64 it would
  // be "static" and the daemon would refuse activation for programs that bind their own port.
  it('reads 32-bit ELF too (armhf), and the node running this test is glibc-linked on every architecture', () => {
    expect(elfInterpreter(elf32('/lib/ld-linux-armhf.so.3'))).toBe('/lib/ld-linux-armhf.so.3');
    expect(elfInterpreter(elf32())).toBeNull();
    expect(linkageOfInterpreter('/lib/ld-linux-armhf.so.3')).toBe('glibc');
    expect(linkageOfInterpreter('/lib/ld-linux.so.2')).toBe('glibc');
    expect(programLinkage(process.execPath)).toBe('glibc');
  });

  it('reads the interpreter, null for a static ELF, undefined for anything else', () => {
    expect(elfInterpreter(elf64('/lib64/ld-linux-x86-64.so.2'))).toBe('/lib64/ld-linux-x86-64.so.2');
    expect(elfInterpreter(elf64())).toBeNull();
    expect(elfInterpreter(Buffer.from('#!/bin/sh\necho hi\n'))).toBeUndefined();
    expect(elfInterpreter(elf64('/lib64/ld-linux-x86-64.so.2').subarray(0, 0x60))).toBeUndefined(); // truncated
  });

  it('classifies loaders: glibc works with the preload, static and musl do not', () => {
    expect(linkageOfInterpreter('/lib64/ld-linux-x86-64.so.2')).toBe('glibc');
    expect(linkageOfInterpreter('/lib/ld-linux-aarch64.so.1')).toBe('glibc');
    expect(linkageOfInterpreter(null)).toBe('static');
    expect(linkageOfInterpreter('/lib/ld-musl-x86_64.so.1')).toBe('foreign');
    expect(['glibc', 'unknown'].map((l) => preloadWorks(l as never))).toEqual([true, true]);
    expect(['static', 'foreign'].map((l) => preloadWorks(l as never))).toEqual([false, false]);
  });

  it('reads absolute #! interpreters only', () => {
    expect(shebangInterpreter(Buffer.from('#!/usr/bin/python3 -u\n'))).toBe('/usr/bin/python3');
    expect(shebangInterpreter(Buffer.from('#! /bin/sh\n'))).toBe('/bin/sh');
    expect(shebangInterpreter(Buffer.from('#!python\n'))).toBeUndefined();
    expect(shebangInterpreter(Buffer.from('echo\n'))).toBeUndefined();
  });

  it.skipIf(!existsSync('/bin/busybox') || !existsSync('/bin/dash'))('judges real programs and scripts by their interpreter', () => {
    expect(programLinkage('/bin/busybox')).toBe('static');
    expect(programLinkage('/bin/dash')).toBe('glibc');
    expect(programLinkage('/nonexistent/program')).toBe('unknown');
  });
});

describe('programs inside a root filesystem', () => {
  const root = mkdtempSync(join(tmpdir(), 'jitsu-act-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'bin'));
  mkdirSync(join(root, 'usr/bin'), { recursive: true });
  writeFileSync(join(root, 'bin/static'), elf64());
  writeFileSync(join(root, 'usr/bin/dyn'), elf64('/lib64/ld-linux-x86-64.so.2'));
  symlinkSync('/usr/bin/dyn', join(root, 'bin/abs-link')); // absolute: relative to the root, not the host
  symlinkSync('static', join(root, 'bin/rel-link'));
  writeFileSync(join(root, 'bin/script'), '#!/bin/static\n');

  it('follows symlinks inside the root and #! chains', () => {
    expect(pathInRoot(root, '/bin/abs-link')).toBe(join(root, 'usr/bin/dyn'));
    expect(programLinkage('/bin/abs-link', root)).toBe('glibc');
    expect(programLinkage('/bin/rel-link', root)).toBe('static');
    expect(programLinkage('/bin/script', root)).toBe('static');
  });

  it('finds commands on PATH inside the root', () => {
    expect(findInRoot('dyn', '/bin:/usr/bin', root)).toBe('/usr/bin/dyn');
    expect(findInRoot('/bin/static', '/nowhere', root)).toBe('/bin/static');
    expect(findInRoot('missing', '/bin:/usr/bin', root)).toBeUndefined();
    expect(findInRoot('./relative', '/bin', root)).toBeUndefined();
  });
});

describe('claims and the ready probe', () => {
  it('parses the preload report', () => {
    expect([...parseClaims('tcp-80 12\ntcp-443 12\ngarbage\ntcp-x 1\n')]).toEqual([80, 443]);
    expect(parseClaims('').size).toBe(0);
  });

  it('waits for claims on pre-bound ports and listens on the others', () => {
    expect(servingProbe([80], [80])).toEqual({ claim: [80], listen: [] });
    expect(servingProbe([80, 8080], [80])).toEqual({ claim: [80], listen: [8080] });
    expect(servingProbe([80], [])).toEqual({ claim: [], listen: [80] });
    expect(servingProbe([], [80])).toEqual({ claim: [], listen: 'any' });
  });
});
