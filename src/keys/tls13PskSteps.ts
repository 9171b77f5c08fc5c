/**
 * The TLS 1.3 external-PSK operations every holder answers the same way (this process,
 * the key process, keyd): requests checked for shape, the PSK looked up by identity (exact
 * bytes), its hash checked, the schedule step run (tls13PskSchedule.ts), binders compared
 * in constant time. An unknown identity does the same work on a random PSK, so neither the
 * answer nor its cost tells which identities exist.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { hashLength } from '../tls/crypto/hash.js';
import {
  KeyOperationError,
  UnknownPskIdentityError,
  type Tls13PskRequest,
  type Tls13PskScheduleRequest,
} from './keyOperations.js';
import { tls13PskApplicationSecrets, tls13PskBinder, tls13PskHandshakeSecrets, tls13PskResumptionMasterSecret, type Tls13PskHash } from './tls13PskSchedule.js';

/** A PSK as a holder keeps it: the bytes and the hash it is used with (RFC 8446 4.2.11). */
export interface Tls13PskEntry {
  readonly secret: Uint8Array;
  readonly hash: Tls13PskHash;
}

/** Largest (EC)DHE shared secret a request may carry (ffdhe8192: 1024 bytes; X25519MLKEM768: 64). */
export const MAX_DHE_SECRET = 1024;
/** Largest PSK identity (RFC 8446: opaque identity<1..2^16-1>). */
export const MAX_PSK_IDENTITY = 0xffff;
/** Length of the random PSK an unknown identity is answered from (a common PSK length). */
const DECOY_PSK_LENGTH = 32;

/** The TLS 1.3 PSK operations, by name (key process frames, keyd frames and audit lines use them). */
export type Tls13PskStep = 'binder' | 'verify-binder' | 'handshake-secrets' | 'application-secrets' | 'resumption-master-secret';

/** How a verifyBinder went, for the holder's audit (the caller only ever sees `accepted`). */
export type BinderOutcome = 'ok' | 'bad-binder' | 'unknown-psk-identity' | 'wrong-hash';

/**
 * Runs `run` on `psk`, or on a random decoy PSK when there is none. The decoy is drawn
 * either way (a few microseconds), so that whether an identity exists does not show in
 * the time an answer takes.
 */
export function withDecoy<T>(psk: Uint8Array | undefined, run: (psk: Uint8Array) => T): T {
  const decoy = randomBytes(DECOY_PSK_LENGTH);
  try {
    return run(psk ?? decoy);
  } finally {
    decoy.fill(0);
  }
}

function bad(message: string): KeyOperationError {
  return new KeyOperationError('bad-request', message);
}

/** Checks the parts every TLS 1.3 PSK request has; throws KeyOperationError('bad-request'). */
export function checkTls13PskRequest(req: Tls13PskRequest & { transcriptHash: Uint8Array; dheSecret?: Uint8Array | null }): void {
  if (req.hash !== 'sha256' && req.hash !== 'sha384') throw bad('TLS 1.3 PSK hash must be sha256 or sha384');
  if (!(req.identity instanceof Uint8Array) || req.identity.length === 0 || req.identity.length > MAX_PSK_IDENTITY) throw bad('PSK identity must be 1..65535 bytes');
  if (!(req.transcriptHash instanceof Uint8Array) || req.transcriptHash.length !== hashLength(req.hash)) throw bad(`the transcript hash must be ${hashLength(req.hash)} bytes for ${req.hash}`);
  const dhe = req.dheSecret;
  if (dhe !== undefined && dhe !== null && (!(dhe instanceof Uint8Array) || dhe.length === 0 || dhe.length > MAX_DHE_SECRET)) throw bad(`the (EC)DHE secret must be 1..${MAX_DHE_SECRET} bytes, or null for psk_ke`);
}

/**
 * The five operations over a lookup of the holder's PSKs. Synchronous: each is a handful of
 * HMACs (tens of microseconds). `unknownIdentity` says what a step other than verifyBinder
 * does for an identity the holder does not have: 'random' answers from a random PSK (the
 * handshake then fails at Finished, as with a wrong PSK), 'reject' throws
 * UnknownPskIdentityError. verifyBinder always answers false for it, after the same work.
 */
export class Tls13PskSteps {
  constructor(
    private readonly lookup: (identity: Uint8Array) => Tls13PskEntry | undefined,
    private readonly unknownIdentity: 'random' | 'reject' = 'random',
  ) {}

  /**
   * The PSK for a step, or a random decoy of the request's hash when the identity is
   * unknown and 'random' is the mode. A PSK provisioned for another hash is a misuse by the
   * front (it chose the suite for this identity): bad-request.
   */
  #psk<T>(req: Tls13PskRequest, run: (psk: Uint8Array) => T): T {
    const entry = this.lookup(req.identity);
    if (!entry) {
      if (this.unknownIdentity === 'reject') throw new UnknownPskIdentityError();
      return withDecoy(undefined, run);
    }
    if (entry.hash !== req.hash) throw bad(`this PSK is for ${entry.hash}, not ${req.hash} (RFC 8446 4.2.11: a PSK is used with its own hash only)`);
    return withDecoy(entry.secret, run);
  }

  /** Client: the binder over Hash(ClientHello truncated before the binders). */
  binder(req: Tls13PskRequest & { transcriptHash: Uint8Array }): Buffer {
    checkTls13PskRequest(req);
    return this.#psk(req, (psk) => tls13PskBinder(req.hash, psk, req.transcriptHash));
  }

  /**
   * Server: whether `binder` is right, compared in constant time. An unknown identity, a
   * PSK of another hash and a binder of the wrong length all answer false after the same
   * work as a real comparison; `outcome` says which, for the holder's own audit only.
   */
  verifyBinder(req: Tls13PskRequest & { transcriptHash: Uint8Array; binder: Uint8Array }): { accepted: boolean; outcome: BinderOutcome } {
    checkTls13PskRequest(req);
    if (!(req.binder instanceof Uint8Array)) throw bad('the binder must be bytes');
    const entry = this.lookup(req.identity);
    const usable = entry !== undefined && entry.hash === req.hash;
    const compute = (psk: Uint8Array): boolean => {
      const expected = tls13PskBinder(req.hash, psk, req.transcriptHash);
      try {
        const sameLength = req.binder.length === expected.length;
        // Compared whatever the length, so a short binder costs what a full one does.
        const equal = timingSafeEqual(expected, sameLength ? req.binder : expected);
        return equal && sameLength && usable;
      } finally {
        expected.fill(0);
      }
    };
    const accepted = withDecoy(usable ? entry.secret : undefined, compute);
    const outcome: BinderOutcome = accepted ? 'ok' : entry === undefined ? 'unknown-psk-identity' : usable ? 'bad-binder' : 'wrong-hash';
    return { accepted, outcome };
  }

  handshakeSecrets(req: Tls13PskScheduleRequest): { client: Buffer; server: Buffer } {
    checkTls13PskRequest(req);
    return this.#psk(req, (psk) => tls13PskHandshakeSecrets(req.hash, psk, req.dheSecret, req.transcriptHash));
  }

  applicationSecrets(req: Tls13PskScheduleRequest): { client: Buffer; server: Buffer; exporter: Buffer } {
    checkTls13PskRequest(req);
    return this.#psk(req, (psk) => tls13PskApplicationSecrets(req.hash, psk, req.dheSecret, req.transcriptHash));
  }

  resumptionMasterSecret(req: Tls13PskScheduleRequest): Buffer {
    checkTls13PskRequest(req);
    return this.#psk(req, (psk) => tls13PskResumptionMasterSecret(req.hash, psk, req.dheSecret, req.transcriptHash));
  }
}
