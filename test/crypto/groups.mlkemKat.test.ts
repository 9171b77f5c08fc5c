/**
 * ML-KEM-768 known answers: the accumulated vector of C2SP CCTV (10,000 deterministic
 * KeyGen/Encaps/Decaps runs, inputs drawn from SHAKE-128 of the empty string, every output
 * hashed into a running SHAKE-128), with the final-FIPS-203 result that BoringSSL and
 * LibreSSL check. One 32-byte hash stands for ~35 MB of vectors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import { ML_KEM_768, mlKem768Encapsulate, mlKem768KeyPair, nativeMlKem768 } from '../../src/tls/crypto/mlkem.js';

const ITERATIONS = 10_000;
const EXPECTED = 'f959d18d3d1180121433bf0e05f11e7908cf9d03edc150b2b07cb90bef5bc1c1';

test(`ML-KEM-768 accumulated vector (${ITERATIONS} runs): keyward's encapsulation${nativeMlKem768 ? ', node:crypto keys and decapsulation' : ' and @noble/post-quantum'}`, () => {
  const { seedLength, randomnessLength, ciphertextLength } = ML_KEM_768;
  const perRun = seedLength + randomnessLength + ciphertextLength;
  // node:crypto's SHAKE-128 cannot be squeezed bit by bit: draw the whole input stream at once (~12 MB).
  const rng = createHash('shake128', { outputLength: perRun * ITERATIONS }).digest();
  assert.equal(rng.subarray(0, 16).toString('hex'), '7f9c2ba4e88f827d616045507605853e');
  const acc = createHash('shake128', { outputLength: 32 });
  for (let i = 0, o = 0; i < ITERATIONS; i++) {
    const seed = rng.subarray(o, (o += seedLength));
    const m = rng.subarray(o, (o += randomnessLength));
    const badCiphertext = rng.subarray(o, (o += ciphertextLength));
    // The expanded decapsulation key, which the vector hashes and node:crypto does not export,
    // comes from @noble/post-quantum; where node:crypto has ML-KEM, the encapsulation key and
    // decapsulations come from keyward's node:crypto key pair (one JS keygen a run, not two, on Node 20).
    const js = ml_kem768.keygen(seed);
    const kp = nativeMlKem768 ? mlKem768KeyPair(seed, 'node:crypto') : undefined;
    const ek = kp?.encapsulationKey ?? js.publicKey;
    const decapsulate = (ct: Uint8Array): Uint8Array => kp?.decapsulate(ct) ?? ml_kem768.decapsulate(ct, js.secretKey);
    acc.update(ek);
    acc.update(js.secretKey);
    // keyward's encapsulation: the FIPS 203 7.2 checks on 10,000 valid keys, then ML-KEM.Encaps with m
    const { ciphertext, sharedSecret } = mlKem768Encapsulate(ek, m);
    acc.update(ciphertext);
    acc.update(sharedSecret);
    if (i % 500 === 0) assert.deepEqual(Buffer.from(decapsulate(ciphertext)), sharedSecret, `run ${i}: decapsulation recovers the secret`);
    acc.update(decapsulate(badCiphertext)); // implicit rejection
  }
  assert.equal(acc.digest('hex'), EXPECTED);
});
