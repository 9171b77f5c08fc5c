import { randomBytes } from 'node:crypto';
import { pskMasterSecret } from '../tls/crypto/prf12.js';
import { KeyOperationError, UnknownPskIdentityError, type OperationContext, type PskMasterSecretRequest, type PskOperations } from './keyOperations.js';

/** Options of {@link localPsk}. */
export interface LocalPskOptions {
  /**
   * An identity not in the map: 'random' (default) answers a random master secret, so the
   * handshake fails at Finished like a wrong PSK and the peer cannot tell which identities
   * exist; 'reject' rejects with UnknownPskIdentityError (the peer gets unknown_psk_identity).
   */
  unknownIdentity?: 'random' | 'reject';
}

/**
 * In-process PSK holder: the baseline and the comparison for keyd and the key process.
 * The PSKs live in this process's memory (copied at construction); only master secrets
 * leave `tls12MasterSecret`.
 */
export class LocalPsk implements PskOperations {
  readonly #psks: Map<string, Buffer>;
  readonly #unknown: 'random' | 'reject';

  constructor(psks: ReadonlyMap<string, Uint8Array>, opts: LocalPskOptions = {}) {
    this.#psks = new Map();
    for (const [identity, psk] of psks) {
      if (psk.length === 0 || psk.length > 0xffff) throw new Error('a PSK must be 1 to 65535 bytes');
      this.#psks.set(identity, Buffer.from(psk));
    }
    this.#unknown = opts.unknownIdentity ?? 'random';
  }

  tls12MasterSecret(req: PskMasterSecretRequest, _ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array> {
    if (signal.aborted) return Promise.reject(new KeyOperationError('aborted', 'operation aborted'));
    if (req.hash !== 'sha256' && req.hash !== 'sha384') return Promise.reject(new KeyOperationError('bad-request', 'PSK master secret hash must be sha256 or sha384'));
    // Identities are compared as the bytes the client sent, read as UTF-8 (RFC 4279 5.1).
    const psk = this.#psks.get(Buffer.from(req.identity).toString('utf8'));
    if (!psk) {
      if (this.#unknown === 'reject') return Promise.reject(new UnknownPskIdentityError());
      return Promise.resolve(randomBytes(48));
    }
    if (!req.extended && req.seed.length !== 64) return Promise.reject(new KeyOperationError('bad-request', 'the master secret seed must be the two 32-byte randoms'));
    try {
      return Promise.resolve(pskMasterSecret(psk, req));
    } catch {
      return Promise.reject(new KeyOperationError('bad-request', 'invalid PSK master secret request'));
    }
  }
}

/** An in-process PSK holder over `psks` (identity → PSK bytes). */
export function localPsk(psks: ReadonlyMap<string, Uint8Array>, opts?: LocalPskOptions): LocalPsk {
  return new LocalPsk(psks, opts);
}
