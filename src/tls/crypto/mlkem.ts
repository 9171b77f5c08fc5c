import * as nodeCrypto from 'node:crypto';
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import { illegalParameter } from '../wire/errors.js';
import { secureRandom } from './random.js';

/** ML-KEM-768 sizes in bytes (FIPS 203 table 3). */
export const ML_KEM_768 = {
  encapsulationKeyLength: 1184,
  ciphertextLength: 1088,
  sharedSecretLength: 32,
  /** d || z, the key generation seed (FIPS 203 algorithm 16). */
  seedLength: 64,
  /** m, the encapsulation randomness (FIPS 203 algorithm 17). */
  randomnessLength: 32,
} as const;

/**
 * Where ML-KEM runs: node:crypto (OpenSSL 3.5, Node 24.7 and later) or @noble/post-quantum,
 * the audited-by-its-author, ACVP-tested pure-JS implementation from the noble family (whose
 * SHA-3, noble-hashes, is independently audited). Chosen over the `mlkem` package for its
 * wider use, pinned audited dependencies, provenance-signed releases, Wycheproof/ACVP test
 * suite and synchronous API; speed on Node 20 is the same within 20%.
 */
export type MlKemBackend = 'node:crypto' | '@noble/post-quantum';

const q = 3329;
const T_HAT_BYTES = 1152; // ByteEncode12 of k = 3 polynomials of 256 coefficients; rho follows

// The node:crypto functions exist only on Node 24.7+; a namespace import keeps Node 20 loading this file.
const native = nodeCrypto as Partial<Pick<typeof nodeCrypto, 'encapsulate' | 'decapsulate'>>;

/** Whether this Node's crypto does ML-KEM-768 with the raw formats keyward uses: probed once, by a round trip. */
export const nativeMlKem768: boolean = (() => {
  try {
    if (typeof native.encapsulate !== 'function' || typeof native.decapsulate !== 'function') return false;
    const privateKey = createPrivateKey({ key: Buffer.alloc(64, 1), format: 'raw-seed', asymmetricKeyType: 'ml-kem-768' });
    const ek = createPublicKey(privateKey).export({ format: 'raw-public' });
    const { ciphertext, sharedKey } = native.encapsulate({ key: ek, format: 'raw-public', asymmetricKeyType: 'ml-kem-768' });
    return native.decapsulate(privateKey, ciphertext).equals(sharedKey);
  } catch {
    return false;
  }
})();

/** The backend used when none is named: node:crypto where it has ML-KEM. */
export const defaultMlKemBackend: MlKemBackend = nativeMlKem768 ? 'node:crypto' : '@noble/post-quantum';

/**
 * FIPS 203 7.2 input checks of an encapsulation key, done here before either backend sees
 * it: the type check (1184 bytes) and the modulus check (ByteEncode12(ByteDecode12(ek)) = ek,
 * that is every 12-bit coefficient of t-hat below q = 3329). Throws illegal_parameter.
 */
export function checkEncapsulationKey768(ek: Uint8Array): void {
  if (ek.length !== ML_KEM_768.encapsulationKeyLength) {
    throw illegalParameter(`ML-KEM-768 encapsulation key must be ${ML_KEM_768.encapsulationKeyLength} bytes, got ${ek.length}`);
  }
  for (let i = 0; i < T_HAT_BYTES; i += 3) {
    const c0 = ek[i] | ((ek[i + 1] & 0x0f) << 8);
    const c1 = (ek[i + 1] >> 4) | (ek[i + 2] << 4);
    if (c0 >= q || c1 >= q) {
      const index = (i / 3) * 2 + (c0 >= q ? 0 : 1);
      throw illegalParameter(`ML-KEM-768 encapsulation key fails the modulus check: coefficient ${index} is >= ${q}`);
    }
  }
}

function checkCiphertext(ct: Uint8Array): void {
  // FIPS 203 7.3 ciphertext type check.
  if (ct.length !== ML_KEM_768.ciphertextLength) {
    throw illegalParameter(`ML-KEM-768 ciphertext must be ${ML_KEM_768.ciphertextLength} bytes, got ${ct.length}`);
  }
}

function backendOrThrow(backend: MlKemBackend): MlKemBackend {
  if (backend === 'node:crypto' && !nativeMlKem768) throw new RangeError('node:crypto has no ML-KEM-768 on this Node (24.7 or later has)');
  return backend;
}

/** An ML-KEM-768 decapsulation key and its encapsulation key. */
export interface MlKem768KeyPair {
  readonly encapsulationKey: Buffer;
  /**
   * The shared secret for `ciphertext` (a wrong but well-formed ciphertext gives an
   * unrelated secret: implicit rejection). Throws illegal_parameter for a wrong length.
   */
  decapsulate(ciphertext: Uint8Array): Buffer;
}

class NativeKeyPair implements MlKem768KeyPair {
  readonly encapsulationKey: Buffer;
  constructor(private readonly privateKey: KeyObject) {
    this.encapsulationKey = createPublicKey(privateKey).export({ format: 'raw-public' });
  }
  decapsulate(ciphertext: Uint8Array): Buffer {
    checkCiphertext(ciphertext);
    try {
      return native.decapsulate!(this.privateKey, ciphertext);
    } catch {
      throw illegalParameter('ML-KEM-768 ciphertext could not be decapsulated');
    }
  }
}

class JsKeyPair implements MlKem768KeyPair {
  readonly encapsulationKey: Buffer;
  private readonly decapsulationKey: Uint8Array;
  constructor(seed: Uint8Array) {
    const { publicKey, secretKey } = ml_kem768.keygen(seed);
    this.encapsulationKey = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength);
    this.decapsulationKey = secretKey;
  }
  decapsulate(ciphertext: Uint8Array): Buffer {
    checkCiphertext(ciphertext);
    const k = ml_kem768.decapsulate(ciphertext, this.decapsulationKey);
    return Buffer.from(k.buffer, k.byteOffset, k.byteLength);
  }
}

/**
 * A fresh ML-KEM-768 key pair (ML-KEM.KeyGen). `seed` (tests): d || z, 64 bytes, for a
 * deterministic key, which both backends take.
 */
export function mlKem768KeyPair(seed?: Uint8Array, backend: MlKemBackend = defaultMlKemBackend): MlKem768KeyPair {
  if (seed !== undefined && seed.length !== ML_KEM_768.seedLength) throw new RangeError(`ML-KEM-768 seed must be ${ML_KEM_768.seedLength} bytes`);
  if (backendOrThrow(backend) === 'node:crypto') {
    // From a seed even when it is random: an imported key has no generation job, whose
    // finalization can deadlock a later export of the public half (see okpKeyPair in ecdhe.ts).
    const d = seed === undefined ? secureRandom(ML_KEM_768.seedLength) : Buffer.from(seed);
    try {
      return new NativeKeyPair(createPrivateKey({ key: d, format: 'raw-seed', asymmetricKeyType: 'ml-kem-768' }));
    } finally {
      d.fill(0);
    }
  }
  if (seed !== undefined) return new JsKeyPair(seed);
  const fresh = secureRandom(ML_KEM_768.seedLength);
  try {
    return new JsKeyPair(fresh);
  } finally {
    fresh.fill(0);
  }
}

/**
 * ML-KEM.Encaps against a peer's encapsulation key, after the FIPS 203 7.2 checks (a bad key
 * throws illegal_parameter). `randomness` (tests): m, 32 bytes; node:crypto takes none, so a
 * fixed m always runs on @noble/post-quantum.
 */
export function mlKem768Encapsulate(
  encapsulationKey: Uint8Array,
  randomness?: Uint8Array,
  backend: MlKemBackend = defaultMlKemBackend,
): { ciphertext: Buffer; sharedSecret: Buffer } {
  checkEncapsulationKey768(encapsulationKey);
  if (randomness !== undefined && randomness.length !== ML_KEM_768.randomnessLength) {
    throw new RangeError(`ML-KEM-768 encapsulation randomness must be ${ML_KEM_768.randomnessLength} bytes`);
  }
  if (randomness === undefined && backendOrThrow(backend) === 'node:crypto') {
    try {
      const { ciphertext, sharedKey } = native.encapsulate!({ key: Buffer.from(encapsulationKey), format: 'raw-public', asymmetricKeyType: 'ml-kem-768' });
      return { ciphertext, sharedSecret: sharedKey };
    } catch {
      throw illegalParameter('ML-KEM-768 encapsulation key refused');
    }
  }
  const { cipherText, sharedSecret } = ml_kem768.encapsulate(encapsulationKey, randomness);
  return { ciphertext: Buffer.from(cipherText.buffer, cipherText.byteOffset, cipherText.byteLength), sharedSecret: Buffer.from(sharedSecret.buffer, sharedSecret.byteOffset, sharedSecret.byteLength) };
}
