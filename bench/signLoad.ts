/**
 * Signing load for bench/compare.ts's keyd row, one JSON line on stdout:
 *
 *   node dist/bench/signLoad.js keyd unix:/path/keyd.sock KEY_ID SECONDS INFLIGHT
 *       P-256 TLS 1.3 CertificateVerify signatures through keyd, INFLIGHT at once on one
 *       connection (keyd's own CPU is read from /proc by the caller)
 *   node dist/bench/signLoad.js bare KEY.pem SECONDS
 *       a bare synchronous crypto.sign loop over the same inputs, in this process
 *   node dist/bench/signLoad.js keyproc KEY.pem SECONDS INFLIGHT
 *       the same signatures through a key process this process starts (run it pinned:
 *       `taskset -c 0 node ...`, and the key process shares the core, as behind a front)
 *
 * Each prints {"signs","seconds","cpuUs"} (cpuUs: this process's CPU over the loop); keyproc
 * adds "holderCpuUs", the key process's CPU from /proc.
 */
import { createPrivateKey, sign as cryptoSign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { KeyOperations, OperationContext } from '../src/keys/keyOperations.js';
import { startKeyProcess } from '../src/keys/keyProcess.js';
import { connectRemoteKey } from '../src/keys/remoteKey.js';
import { SignatureScheme } from '../src/tls/crypto/signatureSchemes.js';
import { certificateVerifyInput, procCpuMicros } from './keysProc.js';

const [mode, a, b, c, d] = process.argv.slice(2);
const CTX: OperationContext = { tlsVersion: 'TLSv1.3', purpose: 'tls13-server-certificate-verify', serverName: 'localhost' };

function report(signs: number, t0: number, c0: NodeJS.CpuUsage, extra: Record<string, number> = {}): void {
  const cpu = process.cpuUsage(c0);
  process.stdout.write(JSON.stringify({ signs, seconds: (performance.now() - t0) / 1000, cpuUs: cpu.user + cpu.system, ...extra }) + '\n');
}

/** `inflight` loops signing one input after another with `key` until `seconds` have passed. */
async function signLoop(key: KeyOperations, seconds: number, inflight: number): Promise<number> {
  const until = performance.now() + seconds * 1000;
  let n = 0;
  const worker = async (): Promise<void> => {
    while (performance.now() < until) {
      await key.sign(SignatureScheme.ecdsa_secp256r1_sha256, certificateVerifyInput(), CTX, new AbortController().signal);
      n++;
    }
  };
  await Promise.all(Array.from({ length: inflight }, worker));
  return n;
}

if (mode === 'bare') {
  const key = createPrivateKey(readFileSync(a, 'utf8'));
  const until = performance.now() + Number(b) * 1000;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let n = 0;
  // Each input made fresh, as in the keyd loop: a random transcript hash per signature.
  while (performance.now() < until) {
    cryptoSign('sha256', certificateVerifyInput(), key);
    n++;
  }
  report(n, t0, c0);
} else if (mode === 'keyd') {
  const key = await connectRemoteKey({ addresses: [a], keyId: b });
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  report(await signLoop(key, Number(c), Number(d)), t0, c0);
  await key.close();
} else if (mode === 'keyproc') {
  const key = await startKeyProcess({ keyPath: a });
  await signLoop(key, 1, Number(c)); // warm-up: both processes' JIT
  const h0 = procCpuMicros(key.pid!);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const n = await signLoop(key, Number(b), Number(c));
  report(n, t0, c0, { holderCpuUs: procCpuMicros(key.pid!) - h0 });
  await key.close();
} else {
  process.stderr.write('usage: signLoad.js keyd ADDRESS KEY_ID SECONDS INFLIGHT | bare KEY.pem SECONDS | keyproc KEY.pem SECONDS INFLIGHT\n');
  process.exit(2);
}
