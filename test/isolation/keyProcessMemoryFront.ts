/**
 * The attacker's side of keyProcessMemory.test.ts: a front (run as a non-root user) that
 * starts a key process, has it sign once, then tries what a compromised front would: read
 * the key out of its child's memory through /proc/PID/maps and /proc/PID/mem (the kernel
 * applies the ptrace access check to both). Prints one JSON line and exits.
 *
 *   node keyProcessMemoryFront.js KEYFILE NEEDLES.json require|prefer|off [KEYUSER DROPTO]
 *
 * With KEYUSER and DROPTO (run as root): the key process runs as KEYUSER, then this front
 * drops to DROPTO before it tries; it also tries the key file, and waits for the key
 * process to be restarted once it is killed (by the test), to show restarts still work.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dropPrivileges, startKeyProcess } from '../../src/keys/keyProcess.js';
import type { NonDumpablePolicy } from '../../src/keys/keyProcessHardening.js';
import { SignatureScheme } from '../../src/tls/crypto/signatureSchemes.js';
import { certificateVerifyContent } from '../../src/tls/wire/handshake.js';
import { scanProcessMemory, type Needle } from '../support/memscan.js';

const [keyPath, needlesPath, policy, keyUser, dropTo] = process.argv.slice(2);
const needles: Needle[] = (JSON.parse(readFileSync(needlesPath, 'utf8')) as Array<{ name: string; hex: string }>).map((n) => ({ name: n.name, bytes: Buffer.from(n.hex, 'hex') }));
const key = await startKeyProcess({ keyPath, nonDumpable: policy as NonDumpablePolicy, startTimeoutMs: 20_000, ...(keyUser ? { keyUser, restart: { minDelayMs: 50 } } : {}) });
const sign = (): Promise<Uint8Array> => key.sign(SignatureScheme.ecdsa_secp256r1_sha256, certificateVerifyContent(randomBytes(32)), { tlsVersion: 'TLSv1.3' }, new AbortController().signal);
try {
  if (dropTo) dropPrivileges(dropTo);
  // The key is loaded and has been used.
  await sign();
  const pid = key.pid!;
  let keyFile: string;
  try {
    readFileSync(keyPath);
    keyFile = 'read';
  } catch (e) {
    keyFile = (e as NodeJS.ErrnoException).code ?? 'error';
  }
  let scan: { found: string[]; bytesScanned: number } | { error: string };
  try {
    const r = await scanProcessMemory(pid, needles);
    scan = { found: r.found, bytesScanned: r.bytesScanned };
  } catch (e) {
    scan = { error: (e as NodeJS.ErrnoException).code ?? (e as Error).message };
  }
  let restarted: { pid: number | undefined; signed: boolean } | undefined;
  if (dropTo) {
    // The test kills the key process now; the launcher starts another for this unprivileged front.
    const again = new Promise<void>((resolve) => key.once('restart', () => resolve()));
    process.stdout.write(`KILL ${pid}\n`);
    await again;
    restarted = { pid: key.pid, signed: (await sign()).length > 0 };
  }
  process.stdout.write(JSON.stringify({ uid: process.getuid!(), keyPid: pid, protection: key.protection, describe: key.describeProtection(), scan, keyFile, restarted }) + '\n');
} finally {
  await key.close();
}
