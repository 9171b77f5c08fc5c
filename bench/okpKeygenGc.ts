/**
 * X25519 key generation under constant garbage collection, for the Node 20 deadlock that
 * src/tls/crypto/ecdhe.ts avoids: exporting the public half from a generated KeyObject
 * (`export-after`) hangs now and then when a collection during the export finalizes the
 * generation job; the public half encoded by the job itself (`job-jwk`, what keyward does)
 * has not. Prints progress; a run that stops printing is the deadlock (end it yourself).
 *
 *   node --gc-interval=97 dist/bench/okpKeygenGc.js job-jwk|export-after [KEYS]
 *
 * On Node 20.20 (2026-12-06), 100,000 keys per run, a run stuck for 90 s counted as hung:
 * export-after hung in 5 of 10 runs, job-jwk in none of 19.
 */
import { createPublicKey, diffieHellman, generateKeyPairSync } from 'node:crypto';

const [mode = 'job-jwk', count = '100000'] = process.argv.slice(2);
if (mode !== 'job-jwk' && mode !== 'export-after') throw new Error('mode: job-jwk or export-after');
// u = 9, the X25519 base point (RFC 7748 4.1): any valid peer share does.
const peer = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.concat([Buffer.of(9), Buffer.alloc(31)]).toString('base64url') }, format: 'jwk' });
const jwkEncoded = generateKeyPairSync as unknown as (type: 'x25519', o: { publicKeyEncoding: { format: 'jwk' } }) => ReturnType<typeof generateKeyPairSync>;
let garbage: unknown[] = [];
for (let i = 0; i < Number(count); i++) {
  let x: unknown;
  let privateKey;
  if (mode === 'export-after') {
    privateKey = generateKeyPairSync('x25519').privateKey;
    x = createPublicKey(privateKey).export({ format: 'jwk' }).x;
  } else {
    const kp = jwkEncoded('x25519', { publicKeyEncoding: { format: 'jwk' } });
    privateKey = kp.privateKey;
    x = (kp.publicKey as unknown as { x: string }).x;
  }
  diffieHellman({ privateKey, publicKey: peer });
  garbage.push({ x, filler: new Array(20).fill(i) });
  if (garbage.length > 1000) garbage = [];
  if (i % 10_000 === 0) console.log(`${mode}: ${i} keys`);
}
console.log(`${mode}: done, ${count} keys`);
