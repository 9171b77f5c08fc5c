/**
 * The front's delegated credentials (RFC 9345): it makes a short-lived key pair in memory
 * (never on disk: this module has no file API), asks the certificate key's holder to sign
 * a credential for it, and hands the engine the current credential and a signer with its
 * key. It renews before expiry with jitter; while a renewal fails it keeps serving the old
 * credential until shortly before that one expires, then reports none, so handshakes fall
 * back to the holder's signature. A credential is never handed out past its expiry.
 *
 * Deterministic under an injected clock, timers and random source (tests).
 */
import { createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { schemeInfo, schemeName, schemesForKey, type SignatureScheme } from '../tls/crypto/signatureSchemes.js';
import { MAX_DELEGATED_CREDENTIAL_VALIDITY_MS, credentialExpiry, delegatedCredentialExt, type DelegatedCredential } from '../tls/wire/delegatedCredential.js';
import { verifyDelegatedCredential, type DelegatedCredentialIssuer, type DelegatedCredentialRequest, type DelegationSide } from './delegatedCredentialIssuer.js';
import { checkDelegationCertificate } from './delegationCertificate.js';
import { keyIdOf } from './keyId.js';
import { KeyOperationError, type KeyOperations } from './keyOperations.js';
import { LocalKey } from './localKey.js';

const generateKeyPairAsync = promisify(generateKeyPair);

/** Credential key types the front can make: ECDSA P-256 (Firefox and NSS accept it) or Ed25519. */
export type DelegatedCredentialKeyType = 'ec-p256' | 'ec-p384' | 'ed25519';

const DC_SCHEMES: Record<DelegatedCredentialKeyType, SignatureScheme> = {
  'ec-p256': 0x0403,
  'ec-p384': 0x0503,
  ed25519: 0x0807,
};

/** Timers the manager uses; injected for tests. */
export interface ManagerTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** What happened, for logs and metrics. */
export type DelegatedCredentialEvent =
  | { type: 'issued'; expiresAt: number; renewAt: number; dcKeyId: string; scheme: SignatureScheme }
  | { type: 'renewal-failed'; code: string; message: string; retryAt: number; /** A credential is still served. */ serving: boolean }
  | { type: 'expired'; at: number };

/** Options of {@link DelegatedCredentialManager}. */
export interface DelegatedCredentialManagerOptions {
  issuer: DelegatedCredentialIssuer;
  /** DER end-entity certificate of the issuer's key, with DelegationUsage. */
  certificate: Uint8Array;
  /** Default 'server'. */
  side?: DelegationSide;
  /** Default 'ec-p256'. */
  keyType?: DelegatedCredentialKeyType;
  /** Validity of each credential, ms (default 1 h; at most 7 days, and never past the certificate). */
  validityMs?: number;
  /** Renew this long before expiry, ms (default half the validity). */
  renewBeforeMs?: number;
  /** Renew up to this much earlier still, at random, ms (default a tenth of the validity): fronts do not all ask at once. */
  jitterMs?: number;
  /** Stop handing out a credential this long before it expires, ms (default 60 s: handshake time and clock skew). */
  expiryMarginMs?: number;
  /** Retry after a failed issue: first delay and cap, ms (default 5 s doubling to 5 min), jittered. */
  retry?: { initialMs?: number; maxMs?: number };
  /** Deadline of one issue request, ms (default 10 s). */
  requestTimeoutMs?: number;
  /** Scheme the holder signs the credential with (default: the first TLS 1.3 scheme of its key). */
  algorithm?: SignatureScheme;
  /** Reported to the holder for audit. */
  serverName?: string;
  now?: () => number;
  /** Uniform in [0, 1). */
  random?: () => number;
  timers?: ManagerTimers;
  onEvent?: (e: DelegatedCredentialEvent) => void;
}

/**
 * The credential a handshake may use now. The engine puts `dcBytes` as the
 * delegated_credential extension of the end-entity CertificateEntry, selects `scheme` for
 * CertificateVerify and signs it with `sign` (or `key`).
 */
export interface CurrentDelegatedCredential {
  /** The encoded DelegatedCredential: the extension body (RFC 9345 4). */
  readonly dcBytes: Uint8Array;
  readonly credential: DelegatedCredential;
  /** dc_cert_verify_algorithm: the scheme CertificateVerify is signed with. */
  readonly scheme: SignatureScheme;
  /** DelegatedCredential.algorithm: the client must accept it in signature_algorithms. */
  readonly algorithm: SignatureScheme;
  /** ms since the epoch. */
  readonly expiresAt: number;
  /** Hex SHA-256 of the credential key's SPKI. */
  readonly dcKeyId: string;
  /** The credential key as KeyOperations (in-process, EC/EdDSA: signs synchronously too). */
  readonly key: KeyOperations;
  /** Signs `message` (the CertificateVerify content) with the credential key and `scheme`. */
  sign(message: Uint8Array): Uint8Array;
  /**
   * Whether a client can take it: its delegated_credential extension lists `scheme` and
   * (when given) its signature_algorithms list `algorithm`.
   */
  usableFor(offeredDcSchemes: readonly number[] | undefined, signatureAlgorithms?: readonly number[]): boolean;
}

/** Counters for metrics. */
export interface DelegatedCredentialStats {
  issued: number;
  failures: number;
  /** Times the front was left without a credential (expired before a renewal succeeded). */
  expirations: number;
  lastError?: string;
  /** Expiry of the credential served now, or undefined. */
  expiresAt?: number;
}

const defaultTimers: ManagerTimers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, Math.max(0, Math.min(ms, 0x7fffffff)));
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

function ms(t: number): string {
  return new Date(t).toISOString();
}

/** Keeps a front supplied with a valid delegated credential; see the module comment. */
export class DelegatedCredentialManager {
  readonly #o: Required<Pick<DelegatedCredentialManagerOptions, 'side' | 'keyType' | 'validityMs' | 'renewBeforeMs' | 'jitterMs' | 'expiryMarginMs' | 'requestTimeoutMs'>> & DelegatedCredentialManagerOptions;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #timers: ManagerTimers;
  readonly #notBefore: number;
  readonly #notAfter: number;
  readonly #algorithm: SignatureScheme;
  #current: CurrentDelegatedCredential | undefined;
  #renewTimer: unknown;
  #expiryTimer: unknown;
  #inFlight: Promise<void> | undefined;
  #abort = new AbortController();
  #failuresInRow = 0;
  #stopped = false;
  readonly #stats: DelegatedCredentialStats = { issued: 0, failures: 0, expirations: 0 };

  /** Throws when the certificate cannot delegate or is not the issuer's key's (the message says why). */
  constructor(opts: DelegatedCredentialManagerOptions) {
    const validityMs = opts.validityMs ?? 3600_000;
    if (!(validityMs >= 60_000 && validityMs <= MAX_DELEGATED_CREDENTIAL_VALIDITY_MS)) throw new Error('delegated credential validity must be between 1 minute and 7 days');
    this.#o = {
      ...opts,
      side: opts.side ?? 'server',
      keyType: opts.keyType ?? 'ec-p256',
      validityMs,
      renewBeforeMs: opts.renewBeforeMs ?? validityMs / 2,
      jitterMs: opts.jitterMs ?? validityMs / 10,
      expiryMarginMs: opts.expiryMarginMs ?? 60_000,
      requestTimeoutMs: opts.requestTimeoutMs ?? 10_000,
    };
    if (!(this.#o.keyType in DC_SCHEMES)) throw new Error(`unknown delegated credential key type ${String(this.#o.keyType)}`);
    if (this.#o.renewBeforeMs + this.#o.jitterMs + this.#o.expiryMarginMs >= validityMs) throw new Error('renewBeforeMs + jitterMs + expiryMarginMs must be shorter than the validity');
    this.#now = opts.now ?? Date.now;
    this.#random = opts.random ?? Math.random;
    this.#timers = opts.timers ?? defaultTimers;
    const check = checkCertificateCanDelegate(opts.certificate, opts.issuer.publicKey, this.#now());
    if (!check.ok) throw new Error(`delegated credentials: ${check.reason}`);
    this.#notBefore = check.notBefore;
    this.#notAfter = check.notAfter;
    const algorithm = opts.algorithm ?? schemesForKey(opts.issuer.publicKey).find((s) => schemeInfo(s)?.tls13);
    if (algorithm === undefined || !schemeInfo(algorithm)?.tls13) throw new Error(`delegated credentials: no TLS 1.3 scheme to sign credentials with this key`);
    this.#algorithm = algorithm;
  }

  /** Counters since start. */
  get stats(): DelegatedCredentialStats {
    return { ...this.#stats, ...(this.#current ? { expiresAt: this.#current.expiresAt } : {}) };
  }

  /**
   * Asks for the first credential and resolves when that attempt is over: true when a
   * credential is ready. A failure is not thrown: it is retried in the background (and
   * reported through onEvent), and handshakes fall back meanwhile.
   */
  async start(): Promise<boolean> {
    await this.#renew();
    return this.current() !== undefined;
  }

  /** The credential to use now, or undefined (none yet, or it expired): then fall back to the holder. */
  current(now = this.#now()): CurrentDelegatedCredential | undefined {
    const c = this.#current;
    return c && now < c.expiresAt - this.#o.expiryMarginMs ? c : undefined;
  }

  /** Resolves when no issue request is in flight. */
  async idle(): Promise<void> {
    while (this.#inFlight) await this.#inFlight;
  }

  /** Stops renewing and drops the credential and its key. */
  stop(): void {
    this.#stopped = true;
    this.#abort.abort(new KeyOperationError('aborted', 'delegated credential manager stopped'));
    this.#timers.clearTimeout(this.#renewTimer);
    this.#timers.clearTimeout(this.#expiryTimer);
    this.#current = undefined;
  }

  #emit(e: DelegatedCredentialEvent): void {
    try {
      this.#o.onEvent?.(e);
    } catch {
      // A listener's failure must not stop renewals.
    }
  }

  #renew(): Promise<void> {
    if (this.#inFlight) return this.#inFlight;
    const p = this.#issueOnce().finally(() => {
      if (this.#inFlight === p) this.#inFlight = undefined;
    });
    this.#inFlight = p;
    return p;
  }

  async #issueOnce(): Promise<void> {
    if (this.#stopped) return;
    try {
      const dc = await this.#issue();
      if (this.#stopped) return;
      this.#current = dc;
      this.#failuresInRow = 0;
      this.#stats.issued++;
      // A credential cut short by the certificate's notAfter cannot be renewed into a longer one: it just ends.
      const renewAt = dc.expiresAt >= this.#notAfter - 1000 ? Infinity : Math.max(this.#now() + 1000, dc.expiresAt - this.#o.renewBeforeMs - this.#random() * this.#o.jitterMs);
      if (renewAt !== Infinity) this.#schedule(renewAt);
      this.#timers.clearTimeout(this.#expiryTimer);
      this.#expiryTimer = this.#timers.setTimeout(() => this.#expired(dc), dc.expiresAt - this.#o.expiryMarginMs - this.#now());
      this.#emit({ type: 'issued', expiresAt: dc.expiresAt, renewAt, dcKeyId: dc.dcKeyId, scheme: dc.scheme });
    } catch (e) {
      if (this.#stopped) return;
      this.#failuresInRow++;
      this.#stats.failures++;
      const code = e instanceof KeyOperationError ? e.code : 'internal';
      const message = e instanceof Error ? e.message : String(e);
      this.#stats.lastError = message;
      const first = this.#o.retry?.initialMs ?? 5_000;
      const cap = this.#o.retry?.maxMs ?? 300_000;
      const delay = Math.min(cap, first * 2 ** Math.min(this.#failuresInRow - 1, 20)) * (0.5 + this.#random() / 2);
      const retryAt = this.#now() + delay;
      this.#schedule(retryAt);
      this.#emit({ type: 'renewal-failed', code, message, retryAt, serving: this.current() !== undefined });
    }
  }

  #schedule(at: number): void {
    this.#timers.clearTimeout(this.#renewTimer);
    this.#renewTimer = this.#timers.setTimeout(() => void this.#renew(), at - this.#now());
  }

  #expired(dc: CurrentDelegatedCredential): void {
    if (this.#current !== dc) return;
    this.#current = undefined;
    this.#stats.expirations++;
    this.#emit({ type: 'expired', at: this.#now() });
  }

  async #issue(): Promise<CurrentDelegatedCredential> {
    const now = this.#now();
    const expiresAt = Math.min(now + this.#o.validityMs, this.#notAfter);
    const validTime = Math.floor((expiresAt - this.#notBefore) / 1000);
    const expiry = credentialExpiry(this.#notBefore, validTime);
    if (expiry - this.#o.expiryMarginMs <= now) throw new KeyOperationError('refused', `the certificate expires at ${ms(this.#notAfter)}: no room for a delegated credential`);
    const { privateKey, publicKey } = await this.#generate();
    const scheme = DC_SCHEMES[this.#o.keyType];
    const spki = publicKey.export({ type: 'spki', format: 'der' });
    const request: DelegatedCredentialRequest = { certificate: this.#o.certificate, credential: { validTime, certVerifyAlgorithm: scheme, spki }, algorithm: this.#algorithm, side: this.#o.side };
    const signal = AbortSignal.any([this.#abort.signal, AbortSignal.timeout(this.#o.requestTimeoutMs)]);
    const signature = await this.#o.issuer.issueDelegatedCredential(request, { tlsVersion: 'TLSv1.3', ...(this.#o.serverName ? { serverName: this.#o.serverName } : {}) }, signal);
    // Checked here whatever the issuer is: a bad credential would fail every DC handshake for hours.
    if (!verifyDelegatedCredential(this.#o.issuer.publicKey, request, signature)) {
      throw new KeyOperationError('internal', `the key holder's ${schemeName(this.#algorithm)} signature on the credential does not verify`);
    }
    const credential: DelegatedCredential = { cred: request.credential, algorithm: this.#algorithm, signature };
    const key = new LocalKey(privateKey);
    return {
      dcBytes: delegatedCredentialExt.encode(credential).data,
      credential,
      scheme,
      algorithm: this.#algorithm,
      expiresAt: expiry,
      dcKeyId: keyIdOf(publicKey),
      key,
      sign: (message) => key.signBlocking(scheme, message),
      usableFor: (offered, sigAlgs) => offered !== undefined && offered.includes(scheme) && (sigAlgs === undefined || sigAlgs.includes(this.#algorithm)),
    };
  }

  #generate(): Promise<{ privateKey: KeyObject; publicKey: KeyObject }> {
    switch (this.#o.keyType) {
      case 'ed25519':
        return generateKeyPairAsync('ed25519');
      case 'ec-p384':
        return generateKeyPairAsync('ec', { namedCurve: 'P-384' });
      default:
        return generateKeyPairAsync('ec', { namedCurve: 'P-256' });
    }
  }
}

/** The answer of {@link checkCertificateCanDelegate}. */
export type CanDelegate = { ok: true; notBefore: number; notAfter: number } | { ok: false; reason: string };

/**
 * Whether `certificate` (DER end-entity) can delegate, for `serve`/`proxy` to say plainly
 * at start why not: DelegationUsage and digitalSignature (RFC 9345 4.2), the key holder's
 * key (when `holderPublicKey` is given), not expired.
 */
export function checkCertificateCanDelegate(certificate: Uint8Array, holderPublicKey?: KeyObject, now = Date.now()): CanDelegate {
  const c = checkDelegationCertificate(certificate);
  if (!c.ok) return c;
  if (holderPublicKey) {
    const pub = holderPublicKey.type === 'public' ? holderPublicKey : createPublicKey(holderPublicKey);
    if (!pub.export({ type: 'spki', format: 'der' }).equals(c.spki)) return { ok: false, reason: "the certificate's public key is not the key holder's key" };
  }
  if (now > c.notAfter) return { ok: false, reason: `the certificate expired at ${ms(c.notAfter)}` };
  return { ok: true, notBefore: c.notBefore, notAfter: c.notAfter };
}
