/**
 * The attacker's side of keyProcessMemory.test.ts: a front (run as a non-root user) that
 * starts a key process, has it sign once, then tries what a compromised front would: read
 * the key out of its child's memory through /proc/PID/maps and /proc/PID/mem (the kernel
 * applies the ptrace access check to both). Prints one JSON line and exits.
 *
 *   node keyProcessMemoryFront.js KEYFILE NEEDLES.json require|prefer|off
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { startKeyProcess } from '../../src/keys/keyProcess.js';
import type { NonDumpablePolicy } from '../../src/keys/keyProcessHardening.js';
import { SignatureScheme } from '../../src/tls/crypto/signatureSchemes.js';
import { certificateVerifyContent } from '../../src/tls/wire/handshake.js';
import { scanProcessMemory, type Needle } from '../support/memscan.js';

const [keyPath, needlesPath, policy] = process.argv.slice(2);
const needles: Needle[] = (JSON.parse(readFileSync(needlesPath, 'utf8')) as Array<{ name: string; hex: string }>).map((n) => ({ name: n.name, bytes: Buffer.from(n.hex, 'hex') }));
const key = await startKeyProcess({ keyPath, nonDumpable: policy as NonDumpablePolicy, startTimeoutMs: 20_000 });
try {
  // The key is loaded and has been used.
  await key.sign(SignatureScheme.ecdsa_secp256r1_sha256, certificateVerifyContent(randomBytes(32)), { tlsVersion: 'TLSv1.3' }, new AbortController().signal);
  const pid = key.pid!;
  let scan: { found: string[]; bytesScanned: number } | { error: string };
  try {
    const r = await scanProcessMemory(pid, needles);
    scan = { found: r.found, bytesScanned: r.bytesScanned };
  } catch (e) {
    scan = { error: (e as NodeJS.ErrnoException).code ?? (e as Error).message };
  }
  process.stdout.write(JSON.stringify({ uid: process.getuid!(), keyPid: pid, protection: key.protection, describe: key.describeProtection(), scan }) + '\n');
} finally {
  await key.close();
}
