import { illegalParameter } from '../wire/errors.js';
import { ecKeyPair, type EcCurve } from './ecdhe.js';
import { ML_KEM_768, mlKem768Encapsulate, mlKem768KeyPair, type MlKemBackend } from './mlkem.js';

/**
 * X25519MLKEM768 (draft-ietf-tls-ecdhe-mlkem, code point 0x11EC): the ML-KEM part comes
 * first everywhere, unlike the NIST-curve hybrids. Client share = ML-KEM-768 encapsulation
 * key || X25519 public; server share = ML-KEM-768 ciphertext || X25519 public; shared
 * secret = ML-KEM secret || X25519 secret, used as the (EC)DHE input of RFC 8446 7.1.
 */
export const X25519_MLKEM768 = {
  clientShareLength: ML_KEM_768.encapsulationKeyLength + 32,
  serverShareLength: ML_KEM_768.ciphertextLength + 32,
  sharedSecretLength: ML_KEM_768.sharedSecretLength + 32,
} as const;

const X25519: EcCurve = { name: 'x25519', kind: 'okp', curve: 'x25519', size: 32 };

/** Deterministic inputs of the hybrid (tests): the X25519 scalar and the ML-KEM seed (client) or randomness (server). */
export interface HybridFixedInputs {
  readonly x25519Private?: Uint8Array;
  readonly mlkemSeed?: Uint8Array;
  readonly mlkemRandomness?: Uint8Array;
}

function concatAndWipe(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.concat([a, b]);
  a.fill(0);
  b.fill(0);
  return out;
}

/** Client side: a fresh key share, and the shared secret once the server's share arrives. */
export function offerX25519MlKem768(
  fixed?: HybridFixedInputs,
  backend?: MlKemBackend,
): { publicKey: Buffer; complete(serverShare: Uint8Array): Buffer } {
  const kem = mlKem768KeyPair(fixed?.mlkemSeed, backend);
  const ecdh = ecKeyPair(X25519, fixed?.x25519Private);
  return {
    publicKey: Buffer.concat([kem.encapsulationKey, ecdh.publicKey]),
    complete(serverShare: Uint8Array): Buffer {
      if (serverShare.length !== X25519_MLKEM768.serverShareLength) {
        throw illegalParameter(`X25519MLKEM768 server share must be ${X25519_MLKEM768.serverShareLength} bytes, got ${serverShare.length}`);
      }
      const x = ecdh.agree(serverShare.subarray(ML_KEM_768.ciphertextLength));
      return concatAndWipe(kem.decapsulate(serverShare.subarray(0, ML_KEM_768.ciphertextLength)), x);
    },
  };
}

/**
 * Server side: checks the client's share (length, the FIPS 203 7.2 encapsulation key checks,
 * the X25519 point) and answers it. Every fault throws illegal_parameter.
 */
export function acceptX25519MlKem768(
  clientShare: Uint8Array,
  fixed?: HybridFixedInputs,
  backend?: MlKemBackend,
): { publicKey: Buffer; sharedSecret: Buffer } {
  if (clientShare.length !== X25519_MLKEM768.clientShareLength) {
    throw illegalParameter(`X25519MLKEM768 client share must be ${X25519_MLKEM768.clientShareLength} bytes, got ${clientShare.length}`);
  }
  const { ciphertext, sharedSecret } = mlKem768Encapsulate(clientShare.subarray(0, ML_KEM_768.encapsulationKeyLength), fixed?.mlkemRandomness, backend);
  const ecdh = ecKeyPair(X25519, fixed?.x25519Private);
  let x: Buffer;
  try {
    x = ecdh.agree(clientShare.subarray(ML_KEM_768.encapsulationKeyLength));
  } catch (e) {
    sharedSecret.fill(0);
    throw e;
  }
  return { publicKey: Buffer.concat([ciphertext, ecdh.publicKey]), sharedSecret: concatAndWipe(sharedSecret, x) };
}
