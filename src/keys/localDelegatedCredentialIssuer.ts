import { createPublicKey, type KeyObject } from 'node:crypto';
import { schemesForKey } from '../tls/crypto/signatureSchemes.js';
import {
  DEFAULT_DC_MAX_VALIDITY_MS,
  checkDcMaxValidity,
  issueWithPrivateKey,
  type DelegatedCredentialIssuer,
  type DelegatedCredentialRequest,
  type DelegationHolder,
} from './delegatedCredentialIssuer.js';
import { keyIdOf } from './keyId.js';
import { KeyOperationError, type OperationContext } from './keyOperations.js';

/** Options of {@link LocalDelegatedCredentialIssuer}. */
export interface LocalDelegatedCredentialIssuerOptions {
  /** Longest validity it signs, ms (default 6 h, at most 7 days). */
  maxValidityMs?: number;
  /** Clock, ms since the epoch (tests). */
  now?: () => number;
}

/**
 * Delegated credentials signed by a certificate key held in this process: for tests,
 * and for deployments that keep the key local but want handshakes signed by a key that
 * dies within hours. Runs the same structural checks as keyd and the key process.
 */
export class LocalDelegatedCredentialIssuer implements DelegatedCredentialIssuer {
  readonly publicKey: KeyObject;
  readonly keyId: string;
  readonly #privateKey: KeyObject;
  readonly #holder: DelegationHolder;
  readonly #maxValidityMs: number;
  readonly #now: () => number;

  constructor(privateKey: KeyObject, opts: LocalDelegatedCredentialIssuerOptions = {}) {
    if (privateKey.type !== 'private') throw new Error('LocalDelegatedCredentialIssuer needs a private key');
    this.#privateKey = privateKey;
    this.publicKey = createPublicKey(privateKey);
    this.keyId = keyIdOf(this.publicKey);
    this.#holder = { spki: this.publicKey.export({ type: 'spki', format: 'der' }), schemes: schemesForKey(this.publicKey) };
    this.#maxValidityMs = opts.maxValidityMs ?? DEFAULT_DC_MAX_VALIDITY_MS;
    const bad = checkDcMaxValidity(this.#maxValidityMs);
    if (bad) throw new Error(bad);
    this.#now = opts.now ?? Date.now;
  }

  issueDelegatedCredential(request: DelegatedCredentialRequest, _ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array> {
    if (signal.aborted) return Promise.reject(new KeyOperationError('aborted', 'operation aborted'));
    try {
      return Promise.resolve(issueWithPrivateKey(this.#privateKey, this.#holder, request, this.#maxValidityMs, this.#now()).signature);
    } catch (e) {
      return Promise.reject(e);
    }
  }
}
