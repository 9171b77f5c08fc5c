import { randomBytes } from 'node:crypto';
import { pskMasterSecret } from '../tls/crypto/prf12.js';
import {
  KeyOperationError,
  UnknownPskIdentityError,
  type OperationContext,
  type PskMasterSecretRequest,
  type PskOperations,
  type Tls13PskOperations,
  type Tls13PskRequest,
  type Tls13PskScheduleRequest,
} from './keyOperations.js';
import { Tls13PskSteps, type Tls13PskEntry } from './tls13PskSteps.js';
import type { Tls13PskHash } from './tls13PskSchedule.js';

/** Options of {@link localPsk}. */
export interface LocalPskOptions {
  /**
   * An identity not in the map: 'random' (default) answers a random master secret, so the
   * handshake fails at Finished like a wrong PSK and the peer cannot tell which identities
   * exist; 'reject' rejects with UnknownPskIdentityError (the peer gets unknown_psk_identity).
   * TLS 1.3 verifyBinder answers false for it either way, after the same work.
   */
  unknownIdentity?: 'random' | 'reject';
}

/** A PSK as given to {@link LocalPsk}: its bytes (TLS 1.3 hash SHA-256), or the bytes with their TLS 1.3 hash. */
export type LocalPskValue = Uint8Array | { secret: Uint8Array; hash: Tls13PskHash };

/** Map key of an identity: its exact bytes (no normalisation), as hex. */
function identityKey(identity: Uint8Array): string {
  return Buffer.from(identity.buffer, identity.byteOffset, identity.byteLength).toString('hex');
}

function aborted(signal: AbortSignal): Promise<never> | undefined {
  return signal.aborted ? Promise.reject(new KeyOperationError('aborted', 'operation aborted')) : undefined;
}

/** Runs a synchronous step as a key operation: a rejected promise for its error. */
function settle<T>(signal: AbortSignal, step: () => T): Promise<T> {
  const a = aborted(signal);
  if (a) return a;
  try {
    return Promise.resolve(step());
  } catch (e) {
    return Promise.reject(e instanceof KeyOperationError ? e : new KeyOperationError('bad-request', 'invalid TLS 1.3 PSK request'));
  }
}

/**
 * In-process PSK holder: the baseline and the comparison for keyd and the key process.
 * The PSKs live in this process's memory (copied at construction); only master secrets
 * (TLS 1.2) and transcript-bound secrets and binders (TLS 1.3) leave it.
 */
export class LocalPsk implements PskOperations, Tls13PskOperations {
  readonly #psks = new Map<string, Tls13PskEntry & { secret: Buffer }>();
  readonly #unknown: 'random' | 'reject';
  /** The TLS 1.3 steps over these PSKs, synchronous (the key process answers with them at once). */
  readonly tls13Steps: Tls13PskSteps;

  constructor(psks: ReadonlyMap<string, LocalPskValue>, opts: LocalPskOptions = {}) {
    for (const [identity, value] of psks) {
      const { secret, hash } = value instanceof Uint8Array ? { secret: value, hash: 'sha256' as const } : value;
      if (secret.length === 0 || secret.length > 0xffff) throw new Error('a PSK must be 1 to 65535 bytes');
      if (hash !== 'sha256' && hash !== 'sha384') throw new Error('a PSK hash must be sha256 or sha384');
      this.#psks.set(Buffer.from(identity, 'utf8').toString('hex'), { secret: Buffer.from(secret), hash });
    }
    this.#unknown = opts.unknownIdentity ?? 'random';
    this.tls13Steps = new Tls13PskSteps((id) => this.#psks.get(identityKey(id)), this.#unknown);
  }

  tls12MasterSecret(req: PskMasterSecretRequest, _ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array> {
    if (signal.aborted) return Promise.reject(new KeyOperationError('aborted', 'operation aborted'));
    if (req.hash !== 'sha256' && req.hash !== 'sha384') return Promise.reject(new KeyOperationError('bad-request', 'PSK master secret hash must be sha256 or sha384'));
    // Identities are compared as the bytes the client sent (RFC 4279 5.1: UTF-8 text).
    const psk = this.#psks.get(identityKey(req.identity));
    if (!psk) {
      if (this.#unknown === 'reject') return Promise.reject(new UnknownPskIdentityError());
      return Promise.resolve(randomBytes(48));
    }
    if (!req.extended && req.seed.length !== 64) return Promise.reject(new KeyOperationError('bad-request', 'the master secret seed must be the two 32-byte randoms'));
    try {
      return Promise.resolve(pskMasterSecret(psk.secret, req));
    } catch {
      return Promise.reject(new KeyOperationError('bad-request', 'invalid PSK master secret request'));
    }
  }

  tls13Binder(req: Tls13PskRequest & { transcriptHash: Uint8Array }, _ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array> {
    return settle(signal, () => this.tls13Steps.binder(req));
  }

  tls13VerifyBinder(req: Tls13PskRequest & { transcriptHash: Uint8Array; binder: Uint8Array }, _ctx: OperationContext, signal: AbortSignal): Promise<boolean> {
    return settle(signal, () => this.tls13Steps.verifyBinder(req).accepted);
  }

  tls13HandshakeSecrets(req: Tls13PskScheduleRequest, _ctx: OperationContext, signal: AbortSignal): Promise<{ client: Uint8Array; server: Uint8Array }> {
    return settle(signal, () => this.tls13Steps.handshakeSecrets(req));
  }

  tls13ApplicationSecrets(req: Tls13PskScheduleRequest, _ctx: OperationContext, signal: AbortSignal): Promise<{ client: Uint8Array; server: Uint8Array; exporter: Uint8Array }> {
    return settle(signal, () => this.tls13Steps.applicationSecrets(req));
  }

  tls13ResumptionMasterSecret(req: Tls13PskScheduleRequest, _ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array> {
    return settle(signal, () => this.tls13Steps.resumptionMasterSecret(req));
  }

  /** Zeroes the PSKs this holder copied. It answers nothing after. */
  async close(): Promise<void> {
    for (const p of this.#psks.values()) p.secret.fill(0);
    this.#psks.clear();
  }
}

/** An in-process PSK holder over `psks` (identity → PSK bytes, or bytes with their TLS 1.3 hash). */
export function localPsk(psks: ReadonlyMap<string, LocalPskValue>, opts?: LocalPskOptions): LocalPsk {
  return new LocalPsk(psks, opts);
}
