/**
 * Small shared helpers of the bench/keys programs: CPU time of another process, medians,
 * and a TLS 1.3 CertificateVerify input (the only kind of message keyd signs).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { certificateVerifyContent } from '../src/tls/wire/handshake.js';

/** Clock ticks per second of /proc/PID/stat times (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

/** utime + stime of process `pid` in µs (10 ms resolution), from /proc; 0 when it is gone. */
export function procCpuMicros(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return 0;
  }
  // Fields after the command name, which is in parentheses and may contain spaces.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return ((utime + stime) * 1e6) / USER_HZ;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Field-wise medians of several runs. */
export function medianOf<T extends object>(runs: T[]): T {
  const out = {} as Record<string, number>;
  for (const k of Object.keys(runs[0])) out[k] = median(runs.map((r) => (r as Record<string, number>)[k]));
  return out as T;
}

/** Percentile of sorted numbers. */
export function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
}

/** 64 spaces, the server context string, 0x00, a fresh 32-byte "transcript hash". */
export function certificateVerifyInput(): Buffer {
  return certificateVerifyContent(randomBytes(32));
}
