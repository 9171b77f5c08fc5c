/**
 * Signing load for bench/compare.ts's keyd row, one JSON line on stdout:
 *
 *   node dist/bench/signLoad.js keyd unix:/path/keyd.sock KEY_ID SECONDS INFLIGHT
 *       P-256 TLS 1.3 CertificateVerify signatures through keyd, INFLIGHT at once on one
 *       connection (keyd's own CPU is read from /proc by the caller)
 *   node dist/bench/signLoad.js bare KEY.pem SECONDS
 *       a bare synchronous crypto.sign loop over the same inputs, in this process
 *
 * Both print {"signs","seconds","cpuUs"} (cpuUs: this process's CPU over the loop).
 */
import { createPrivateKey, sign as cryptoSign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { OperationContext } from '../src/keys/keyOperations.js';
import { connectRemoteKey } from '../src/keys/remoteKey.js';
import { SignatureScheme } from '../src/tls/crypto/signatureSchemes.js';
import { certificateVerifyInput } from './keysProc.js';

const [mode, a, b, c, d] = process.argv.slice(2);
const CTX: OperationContext = { tlsVersion: 'TLSv1.3', purpose: 'tls13-server-certificate-verify', serverName: 'localhost' };

function report(signs: number, t0: number, c0: NodeJS.CpuUsage): void {
  const cpu = process.cpuUsage(c0);
  process.stdout.write(JSON.stringify({ signs, seconds: (performance.now() - t0) / 1000, cpuUs: cpu.user + cpu.system }) + '\n');
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
  const until = performance.now() + Number(c) * 1000;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let n = 0;
  const worker = async (): Promise<void> => {
    while (performance.now() < until) {
      await key.sign(SignatureScheme.ecdsa_secp256r1_sha256, certificateVerifyInput(), CTX, new AbortController().signal);
      n++;
    }
  };
  await Promise.all(Array.from({ length: Number(d) }, worker));
  report(n, t0, c0);
  await key.close();
} else {
  process.stderr.write('usage: signLoad.js keyd ADDRESS KEY_ID SECONDS INFLIGHT | bare KEY.pem SECONDS\n');
  process.exit(2);
}
