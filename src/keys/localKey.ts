import { createPrivateKey, createPublicKey, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { SignatureScheme, cryptoParams, describeUnusableKey, isRsaKey, schemeFitsVersion, schemeInfo, schemesForKey } from '../tls/crypto/signatureSchemes.js';
import { KeyOperationError, vouchForSignatures, type KeyOperations, type OperationContext } from './keyOperations.js';
import { keyIdOf } from './keyId.js';
import { decryptPremasterImplicit } from './rsaPremaster.js';

/**
 * In-process key: the baseline backend and the comparison for the isolated ones.
 * The private key lives in this process's memory; use it for tests and for
 * deployments that accept that.
 */
export class LocalKey implements KeyOperations {
  readonly publicKey: KeyObject;
  readonly schemes: readonly SignatureScheme[];
  readonly keyId: string;
  /**
   * TLS 1.2 RSA key exchange, RSA keys only: the raw RSA decryption and the RFC 5246
   * 7.4.7.1 check with implicit rejection (rsaPremaster.ts), always 48 bytes. It runs
   * synchronously on the event loop (about 1 ms for RSA-2048, 3 ms for RSA-3072): the
   * thread pool has no raw-RSA call, and the in-process key is the baseline, not the
   * deployment for heavy RSA key-exchange traffic (use the key process or keyd).
   */
  readonly decryptPremaster?: (ciphertext: Uint8Array, clientVersion: number, ctx: OperationContext, signal: AbortSignal) => Promise<Uint8Array>;
  readonly #privateKey: KeyObject;

  constructor(privateKey: KeyObject | string | Buffer) {
    const key = privateKey instanceof Object && 'asymmetricKeyType' in privateKey ? (privateKey as KeyObject) : createPrivateKey(privateKey as string | Buffer);
    if (key.type !== 'private') throw new Error('localKey needs a private key');
    this.#privateKey = key;
    this.publicKey = createPublicKey(key);
    this.schemes = schemesForKey(this.publicKey);
    if (this.schemes.length === 0) throw new Error(`localKey: ${describeUnusableKey(key)}`);
    this.keyId = keyIdOf(this.publicKey);
    if (new.target === LocalKey) vouchForSignatures(this);
    if (!isRsaKey(key)) {
      this.signNow = (scheme, message, ctx) => this.signBlocking(scheme, message, ctx);
    } else if (key.asymmetricKeyType === 'rsa') {
      // Not for an RSASSA-PSS key: RFC 4055 keeps it to signatures.
      this.decryptPremaster = (ciphertext, clientVersion, _ctx, signal) => {
        if (signal.aborted) return Promise.reject(new KeyOperationError('aborted', 'operation aborted'));
        if (!(ciphertext instanceof Uint8Array) || !Number.isInteger(clientVersion) || clientVersion < 0 || clientVersion > 0xffff) {
          return Promise.reject(new KeyOperationError('bad-request', 'decryptPremaster needs a byte array and a 16-bit client version'));
        }
        return Promise.resolve(decryptPremasterImplicit(this.#privateKey, ciphertext, clientVersion));
      };
    }
  }

  /** EC and EdDSA keys only (see {@link KeyOperations.signNow}). */
  readonly signNow?: (scheme: SignatureScheme, message: Uint8Array, ctx: OperationContext) => Uint8Array;

  sign(scheme: SignatureScheme, message: Uint8Array, ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array> {
    if (signal.aborted) return Promise.reject(new KeyOperationError('aborted', 'operation aborted'));
    if (this.signNow) {
      // EC and EdDSA signatures take tens of microseconds: handing them to the thread
      // pool costs more than it saves, so they run inline.
      try {
        return Promise.resolve(this.signNow(scheme, message, ctx));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    let p: ReturnType<typeof cryptoParams>;
    try {
      p = this.#params(scheme, ctx);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve, reject) => {
      // RSA takes a millisecond or more: the callback form runs on libuv's thread pool,
      // so it does not stall the event loop.
      cryptoSign(p.algorithm, message, p.key, (err, sig) => {
        if (err) reject(new KeyOperationError('internal', 'signing failed'));
        else if (signal.aborted) reject(new KeyOperationError('aborted', 'operation aborted'));
        else resolve(new Uint8Array(sig.buffer, sig.byteOffset, sig.length));
      });
    });
  }

  #params(scheme: SignatureScheme, ctx?: OperationContext): ReturnType<typeof cryptoParams> {
    const info = schemeInfo(scheme);
    // Without a context the scheme must fit as TLS 1.3 has it (curve-bound).
    if (!info || !schemeFitsVersion(this.schemes, scheme, ctx?.tlsVersion ?? 'TLSv1.3')) throw new KeyOperationError('unsupported', `scheme ${scheme} does not fit this key`);
    return cryptoParams(info, this.#privateKey);
  }

  /** Signs on the calling thread (see {@link KeyOperations.signBlocking}). */
  signBlocking(scheme: SignatureScheme, message: Uint8Array, ctx?: OperationContext): Uint8Array {
    const p = this.#params(scheme, ctx);
    let sig: Buffer;
    try {
      sig = cryptoSign(p.algorithm, message, p.key);
    } catch {
      throw new KeyOperationError('internal', 'signing failed');
    }
    return new Uint8Array(sig.buffer, sig.byteOffset, sig.length);
  }
}

/** Creates a LocalKey from a PEM/DER private key or KeyObject. */
export function localKey(privateKey: KeyObject | string | Buffer): LocalKey {
  return new LocalKey(privateKey);
}
