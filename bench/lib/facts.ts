/** Facts about the machine and the peer tools, recorded with every run so figures can be compared. */
import { cpus, totalmem, release } from 'node:os';
import { readFileSync } from 'node:fs';
import { run } from './proc.js';

export interface MachineFacts {
  date: string;
  cpuModel: string;
  cores: number;
  memoryBytes: number;
  kernel: string;
  node: string;
  loadAverage: number[];
  tools: Record<string, string>;
}

async function firstLine(cmd: string, args: string[], re?: RegExp): Promise<string> {
  const r = await run(cmd, args, 10_000);
  const text = `${r.stdout}\n${r.stderr}`;
  if (r.code === 127) return 'missing';
  if (re) {
    const m = text.match(re);
    if (m) return m[1] ?? m[0];
  }
  return text.trim().split('\n')[0] ?? 'unknown';
}

export async function machineFacts(): Promise<MachineFacts> {
  const load = readFileSync('/proc/loadavg', 'latin1').split(' ').slice(0, 3).map(Number);
  const [dnsmasq, unbound, knot, nsd, dnsperf, qemu, crun, dig] = await Promise.all([
    firstLine('dnsmasq', ['--version'], /Dnsmasq version (\S+)/),
    firstLine('unbound', ['-V'], /Version (\S+)/),
    firstLine('knotd', ['-V'], /version (\S+)/),
    firstLine('nsd', ['-v'], /NSD version (\S+)/),
    firstLine('dnsperf', ['-h'], /Version (\S+)/),
    firstLine('qemu-system-x86_64', ['--version'], /version (\S+)/),
    firstLine('crun', ['--version'], /crun version (\S+)/),
    firstLine('dig', ['-v'], /DiG (\S+)/),
  ]);
  return {
    date: new Date().toISOString(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryBytes: totalmem(),
    kernel: release(),
    node: process.version,
    loadAverage: load,
    tools: { dnsmasq, unbound, knot, nsd, dnsperf, qemu, crun, dig },
  };
}
