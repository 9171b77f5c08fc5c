/**
 * A sealed-store key as keyd uses it: LocalKey's signing (EC and EdDSA inline; RSA on
 * libuv's thread pool, or inline as InlineSignBudget allows), plus, for RSA keys, TLS 1.2
 * premaster decryption with implicit rejection inside keyd.
 */
import type { KeyObject } from 'node:crypto';
import type { KeyOperations, OperationContext } from '../keys/keyOperations.js';
import { inlineSignable } from '../keys/inlineSignBudget.js';
import { LocalKey } from '../keys/localKey.js';
import type { SignatureScheme } from '../tls/crypto/signatureSchemes.js';
import type { KeyRegistry, RegisteredKey } from './registry.js';
import type { StoredKey } from './store.js';

/** KeyOperations over a private KeyObject held by keyd. */
export class StoreKey implements KeyOperations {
  readonly publicKey: KeyObject;
  readonly schemes: readonly SignatureScheme[];
  readonly keyId: string;
  readonly decryptPremaster?: (ciphertext: Uint8Array, clientVersion: number, ctx: OperationContext, signal: AbortSignal) => Promise<Uint8Array>;
  readonly signNow?: (scheme: SignatureScheme, message: Uint8Array, ctx: OperationContext) => Uint8Array;
  readonly signBlocking?: (scheme: SignatureScheme, message: Uint8Array, ctx: OperationContext) => Uint8Array;
  readonly #local: LocalKey;

  constructor(privateKey: KeyObject) {
    this.#local = new LocalKey(privateKey);
    this.publicKey = this.#local.publicKey;
    this.schemes = this.#local.schemes;
    this.keyId = this.#local.keyId;
    this.signNow = this.#local.signNow;
    if (inlineSignable(privateKey.asymmetricKeyDetails?.modulusLength)) this.signBlocking = (scheme, message, ctx) => this.#local.signBlocking(scheme, message, ctx);
    // One raw RSA private operation (about 1 ms for 2048 bits), on keyd's loop: node:crypto has no asynchronous form of it.
    this.decryptPremaster = this.#local.decryptPremaster;
  }

  sign(scheme: SignatureScheme, message: Uint8Array, ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array> {
    return this.#local.sign(scheme, message, ctx, signal);
  }
}

/** Serves a key of the sealed store from `registry`. */
export function registerStoredKey(registry: KeyRegistry, stored: StoredKey): RegisteredKey {
  return registry.add({ ops: new StoreKey(stored.privateKey), serverNames: stored.serverNames, source: 'store', origin: stored.origin, createdAt: stored.createdAt });
}
