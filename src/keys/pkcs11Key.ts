/**
 * PKCS#11 backend: the private key stays in a token (an HSM, a smart card, SoftHSM2),
 * selected by an RFC 7512 `pkcs11:` URI. Token calls run in a small pool of worker
 * threads (see pkcs11Pool.ts), so the event loop never waits on the token.
 *
 * The token receives the whole message wherever it offers a hash-and-sign mechanism
 * (CKM_SHA256_RSA_PKCS_PSS, CKM_ECDSA_SHA256, ...); otherwise the message is hashed here
 * and the token signs the digest (CKM_ECDSA, CKM_RSA_PKCS_PSS, CKM_RSA_PKCS over a
 * DigestInfo). SoftHSM2 2.6 has the RSA hash-and-sign mechanisms but only raw CKM_ECDSA.
 */
import { X509Certificate, createHash, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pkcs11js from 'pkcs11js';
import { SignatureScheme, describeUnusableKey, schemeFitsVersion, schemeInfo, schemesForKey, schemesForVersion, keyKindOf } from '../tls/crypto/signatureSchemes.js';
import { KeyOperationError, type KeyOperations, type OperationContext } from './keyOperations.js';
import { keyIdOf } from './keyId.js';
import { acquirePkcs11Module, ckrName, resolvePkcs11ModulePath, type Pkcs11Module } from './pkcs11Module.js';
import { Pkcs11WorkerPool, type MechanismSpec, type Pkcs11PoolStats } from './pkcs11Pool.js';
import { PREMASTER_LENGTH } from './pkcs11Premaster.js';
import { digestInfo, ecPublicKeyFromAttributes, ecdsaRawToDer, rsaPublicKeyFromAttributes, sameRsaPublicKey } from './pkcs11PublicKey.js';
import { formatPkcs11Id, parsePkcs11Uri, type Pkcs11Uri } from './pkcs11Uri.js';

/** Options of {@link openPkcs11Key}. */
export interface OpenPkcs11KeyOptions {
  /** RFC 7512 URI of the private key (its token, and `object` and/or `id`). May carry the PIN. */
  uri: string;
  /** Path of the PKCS#11 module (.so); else `module-path`/`module-name` from the URI. */
  module?: string;
  /** User PIN; overrides the URI's. */
  pin?: string;
  /** File holding the user PIN (one trailing newline is ignored); overrides the URI's. */
  pinFile?: string;
  /** Worker threads, each with its own session: operations in the token at once. Default 2, at most 32. */
  sessions?: number;
  /**
   * Let the token hash the message when it has a hash-and-sign mechanism (default true).
   * false: always hash here and use the raw mechanisms (for tokens whose combined
   * mechanisms are missing, slow or broken).
   */
  hashOnToken?: boolean;
  /**
   * The public key, e.g. from the certificate being served. Used when the token holds no
   * public half of the key; when it does, the two must match. An RSASSA-PSS public key
   * (rsa-pss) takes the place of the token's RSA one when their modulus and exponent
   * match: the key then signs only with rsa_pss_pss_* within its PSS parameters, and
   * never decrypts.
   */
  publicKey?: KeyObject;
}

/** What was opened, for logs and audit. Nothing in it is secret. */
export interface Pkcs11KeyInfo {
  modulePath: string;
  tokenLabel: string;
  tokenSerial: string;
  slotId: number;
  /** CKA_LABEL of the private key. */
  objectLabel: string;
  /** CKA_ID of the private key, `%XX` form as in a URI. */
  id: string;
  keyType: 'rsa' | 'ec' | 'eddsa';
  /** CKA_SENSITIVE: the token refuses to reveal the key's secret attributes. */
  sensitive: boolean;
  /** CKA_EXTRACTABLE: the token would let the key be wrapped out. */
  extractable: boolean;
  /** CKA_ALWAYS_SENSITIVE / CKA_NEVER_EXTRACTABLE: true when the key was generated in the token and never exposed. */
  alwaysSensitive: boolean;
  neverExtractable: boolean;
}

// PKCS#11 3.0 values that pkcs11js 2.1.7 does not name.
const CKK_EC_EDWARDS = 0x40;
const CKM_EDDSA = 0x1057;
const CKF_USER_PIN_LOCKED = 0x40000;

const MAX_MESSAGE = 1 << 20;
const MAX_PIN_FILE = 4096;

type Hash = 'sha256' | 'sha384' | 'sha512';

/** How one signature scheme is produced by the token. */
interface SignPlan {
  mechanism: MechanismSpec;
  /** Hash the message here first (null: the token gets the whole message). */
  prehash: Hash | null;
  /** Wrap the digest in a DigestInfo (raw CKM_RSA_PKCS). */
  digestInfo: boolean;
  /** ECDSA coordinate size: the token's r||s becomes DER. null for RSA and EdDSA. */
  ecdsaCoord: number | null;
  outLength: number;
}

const hashMech: Record<Hash, { ckm: number; mgf: number; len: number; pss: number; pkcs1: number; ecdsa: number }> = {
  sha256: { ckm: pkcs11js.CKM_SHA256, mgf: pkcs11js.CKG_MGF1_SHA256, len: 32, pss: pkcs11js.CKM_SHA256_RSA_PKCS_PSS, pkcs1: pkcs11js.CKM_SHA256_RSA_PKCS, ecdsa: pkcs11js.CKM_ECDSA_SHA256 },
  sha384: { ckm: pkcs11js.CKM_SHA384, mgf: pkcs11js.CKG_MGF1_SHA384, len: 48, pss: pkcs11js.CKM_SHA384_RSA_PKCS_PSS, pkcs1: pkcs11js.CKM_SHA384_RSA_PKCS, ecdsa: pkcs11js.CKM_ECDSA_SHA384 },
  sha512: { ckm: pkcs11js.CKM_SHA512, mgf: pkcs11js.CKG_MGF1_SHA512, len: 64, pss: pkcs11js.CKM_SHA512_RSA_PKCS_PSS, pkcs1: pkcs11js.CKM_SHA512_RSA_PKCS, ecdsa: pkcs11js.CKM_ECDSA_SHA512 },
};

const trimField = (s: string): string => s.replace(/[\s\0]+$/, '');

/** CK_ULONG / CK_BBOOL attribute bytes (native byte order: little-endian on the platforms Node supports). */
function ulong(b: Buffer): number {
  let v = 0;
  for (let i = Math.min(b.length, 6) - 1; i >= 0; i--) v = v * 256 + b[i]!;
  return v;
}

function errText(err: unknown): string {
  return ckrName(err) ?? (err instanceof Error ? err.message : String(err));
}

/** The PIN from the options or the URI, by precedence: opts.pin, opts.pinFile, pin-value, pin-source. */
export function resolvePin(opts: { pin?: string; pinFile?: string }, uri: Pkcs11Uri): string | undefined {
  if (opts.pin !== undefined && opts.pinFile !== undefined) throw new Error('give either pin or pinFile, not both');
  if (opts.pin !== undefined) return opts.pin;
  if (opts.pinFile !== undefined) return readPinFile(opts.pinFile);
  if (uri.pinValue !== undefined) return uri.pinValue;
  if (uri.pinSource !== undefined) {
    const src = uri.pinSource;
    if (src.startsWith('|')) throw new Error('pin-source commands ("|...") are not supported; use a file');
    return readPinFile(src.startsWith('file:') ? fileURLToPath(src.replace(/^file:(?!\/\/)/, 'file://')) : src);
  }
  return undefined;
}

function readPinFile(path: string): string {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new Error(`cannot read PIN file ${path}: ${code}`, { cause: err });
  }
  if (raw.length > MAX_PIN_FILE) throw new Error(`PIN file ${path} is too large`);
  const pin = raw.toString('utf8').replace(/\r?\n$/, '');
  raw.fill(0);
  if (pin === '') throw new Error(`PIN file ${path} is empty`);
  return pin;
}

/** One slot whose token matches the URI. */
export interface TokenMatch {
  slot: Buffer;
  slotId: number;
  label: string;
  serial: string;
  flags: number;
}

function slotNumber(slot: Buffer): number {
  const v = slot.length >= 8 ? slot.readBigUInt64LE(0) : BigInt(ulong(slot));
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : -1;
}

function describeUriSelection(uri: Pkcs11Uri): string {
  const parts: string[] = [];
  if (uri.token !== undefined) parts.push(`token=${JSON.stringify(uri.token)}`);
  if (uri.serial !== undefined) parts.push(`serial=${JSON.stringify(uri.serial)}`);
  if (uri.slotId !== undefined) parts.push(`slot-id=${uri.slotId}`);
  if (uri.model !== undefined) parts.push(`model=${JSON.stringify(uri.model)}`);
  if (uri.manufacturer !== undefined) parts.push(`manufacturer=${JSON.stringify(uri.manufacturer)}`);
  return parts.length ? parts.join(' ') : '(any token)';
}

/** The one initialized token the URI's token and library attributes select (KeyOperationError otherwise). */
export function findToken(lib: pkcs11js.PKCS11, uri: Pkcs11Uri): TokenMatch {
  const info = lib.C_GetInfo();
  if (
    (uri.libraryManufacturer !== undefined && trimField(info.manufacturerID) !== uri.libraryManufacturer) ||
    (uri.libraryDescription !== undefined && trimField(info.libraryDescription) !== uri.libraryDescription) ||
    (uri.libraryVersion !== undefined && (info.libraryVersion.major !== uri.libraryVersion.major || info.libraryVersion.minor !== uri.libraryVersion.minor))
  ) {
    throw new KeyOperationError('unknown-key', 'the PKCS#11 module does not match the library-* attributes of the URI');
  }
  const present: string[] = [];
  const matches: TokenMatch[] = [];
  for (const slot of lib.C_GetSlotList(true)) {
    let t: pkcs11js.TokenInfo;
    let s: pkcs11js.SlotInfo;
    try {
      t = lib.C_GetTokenInfo(slot);
      s = lib.C_GetSlotInfo(slot);
    } catch {
      continue;
    }
    if (!(t.flags & pkcs11js.CKF_TOKEN_INITIALIZED)) continue;
    const m: TokenMatch = { slot, slotId: slotNumber(slot), label: trimField(t.label), serial: trimField(t.serialNumber), flags: t.flags };
    present.push(JSON.stringify(m.label));
    if (uri.token !== undefined && m.label !== uri.token) continue;
    if (uri.serial !== undefined && m.serial !== uri.serial) continue;
    if (uri.model !== undefined && trimField(t.model) !== uri.model) continue;
    if (uri.manufacturer !== undefined && trimField(t.manufacturerID) !== uri.manufacturer) continue;
    if (uri.slotId !== undefined && m.slotId !== uri.slotId) continue;
    if (uri.slotDescription !== undefined && trimField(s.slotDescription) !== uri.slotDescription) continue;
    if (uri.slotManufacturer !== undefined && trimField(s.manufacturerID) !== uri.slotManufacturer) continue;
    matches.push(m);
  }
  if (matches.length === 0) {
    throw new KeyOperationError('unknown-key', `no PKCS#11 token matches ${describeUriSelection(uri)} (tokens present: ${present.join(', ') || 'none'})`);
  }
  if (matches.length > 1) {
    throw new KeyOperationError('unknown-key', `${matches.length} PKCS#11 tokens match ${describeUriSelection(uri)}: add token= or serial= to the URI`);
  }
  return matches[0]!;
}

/** Reads one attribute, or undefined when the token will not give it (absent, sensitive). */
function attr(lib: pkcs11js.PKCS11, session: Buffer, obj: Buffer, type: number): Buffer | undefined {
  try {
    const [a] = lib.C_GetAttributeValue(session, obj, [{ type }]);
    return a?.value;
  } catch {
    return undefined;
  }
}

/** Up to `max` objects matching `template`; the search is always finalized. */
export function findObjects(lib: pkcs11js.PKCS11, session: Buffer, template: pkcs11js.Template, max: number): Buffer[] {
  lib.C_FindObjectsInit(session, template);
  try {
    return lib.C_FindObjects(session, max);
  } finally {
    lib.C_FindObjectsFinal(session);
  }
}

/** C_Login as the user; an error names the reason (CKR name only), never the PIN. */
export function login(lib: pkcs11js.PKCS11, session: Buffer, token: TokenMatch, pin: string): void {
  if (token.flags & CKF_USER_PIN_LOCKED) throw new KeyOperationError('refused', `PKCS#11 token "${token.label}": the user PIN is locked`);
  try {
    lib.C_Login(session, pkcs11js.CKU_USER, pin);
  } catch (err) {
    const ckr = ckrName(err);
    if (ckr === 'CKR_USER_ALREADY_LOGGED_IN') return;
    if (ckr === 'CKR_PIN_INCORRECT') throw new KeyOperationError('refused', `PKCS#11 login to token "${token.label}" failed: incorrect PIN`);
    if (ckr === 'CKR_PIN_LOCKED') throw new KeyOperationError('refused', `PKCS#11 login to token "${token.label}" failed: the PIN is locked`);
    if (ckr === 'CKR_PIN_LEN_RANGE') throw new KeyOperationError('refused', `PKCS#11 login to token "${token.label}" failed: the PIN has the wrong length`);
    if (ckr === 'CKR_USER_PIN_NOT_INITIALIZED') throw new KeyOperationError('refused', `PKCS#11 token "${token.label}" has no user PIN set`);
    // Only the CKR name: a binding's message could in principle echo arguments.
    throw new KeyOperationError('unavailable', `PKCS#11 login to token "${token.label}" failed: ${ckr ?? 'error'}`);
  }
}

/** The public half: a public-key object with the same id (or label), a certificate, or the RSA private key's public attributes. */
function findPublicKey(lib: pkcs11js.PKCS11, session: Buffer, priv: Buffer, keyType: number, id: Buffer, label: string | undefined): KeyObject | undefined {
  const sel: pkcs11js.Template = id.length > 0 ? [{ type: pkcs11js.CKA_ID, value: id }] : label !== undefined ? [{ type: pkcs11js.CKA_LABEL, value: label }] : [];
  if (sel.length > 0) {
    for (const pub of findObjects(lib, session, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY }, { type: pkcs11js.CKA_KEY_TYPE, value: keyType }, ...sel], 4)) {
      try {
        if (keyType === pkcs11js.CKK_RSA) {
          const n = attr(lib, session, pub, pkcs11js.CKA_MODULUS);
          const e = attr(lib, session, pub, pkcs11js.CKA_PUBLIC_EXPONENT);
          if (n && e) return rsaPublicKeyFromAttributes(n, e);
        } else {
          const params = attr(lib, session, pub, pkcs11js.CKA_EC_PARAMS);
          const point = attr(lib, session, pub, pkcs11js.CKA_EC_POINT);
          if (params && point) return ecPublicKeyFromAttributes(params, point);
        }
      } catch {
        // A public object we cannot read: try the next source.
      }
    }
    if (id.length > 0) {
      for (const cert of findObjects(lib, session, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_CERTIFICATE }, { type: pkcs11js.CKA_ID, value: id }], 4)) {
        const der = attr(lib, session, cert, pkcs11js.CKA_VALUE);
        if (!der) continue;
        try {
          return new X509Certificate(der).publicKey;
        } catch {
          // Not an X.509 certificate we can read.
        }
      }
    }
  }
  if (keyType === pkcs11js.CKK_RSA) {
    // Modulus and public exponent are public attributes even of a sensitive private key.
    const n = attr(lib, session, priv, pkcs11js.CKA_MODULUS);
    const e = attr(lib, session, priv, pkcs11js.CKA_PUBLIC_EXPONENT);
    if (n && e) return rsaPublicKeyFromAttributes(n, e);
  }
  return undefined;
}

/** For each scheme the key offers, the mechanism that makes it on this token (or none). */
function planSchemes(publicKey: KeyObject, mechs: Set<number>, canSign: boolean, hashOnToken: boolean): Map<SignatureScheme, SignPlan> {
  const plans = new Map<SignatureScheme, SignPlan>();
  if (!canSign) return plans;
  const kind = keyKindOf(publicKey);
  const rsaBytes = Math.ceil((publicKey.asymmetricKeyDetails?.modulusLength ?? 0) / 8);
  // An EC key gets a plan for every ECDSA hash: TLS 1.2 lets it sign with any of them.
  for (const scheme of schemesForVersion(schemesForKey(publicKey), 'TLSv1.2')) {
    const info = schemeInfo(scheme)!;
    const h = info.hash ? hashMech[info.hash] : null;
    let plan: SignPlan | undefined;
    if (info.key === 'ed25519') {
      if (mechs.has(CKM_EDDSA)) plan = { mechanism: { mechanism: CKM_EDDSA }, prehash: null, digestInfo: false, ecdsaCoord: null, outLength: 64 };
    } else if (kind?.startsWith('ec-') && h) {
      const coord = kind === 'ec-p256' ? 32 : kind === 'ec-p384' ? 48 : 66;
      if (hashOnToken && mechs.has(h.ecdsa)) plan = { mechanism: { mechanism: h.ecdsa }, prehash: null, digestInfo: false, ecdsaCoord: coord, outLength: 2 * coord };
      else if (mechs.has(pkcs11js.CKM_ECDSA)) plan = { mechanism: { mechanism: pkcs11js.CKM_ECDSA }, prehash: info.hash, digestInfo: false, ecdsaCoord: coord, outLength: 2 * coord };
    } else if (info.padding === 'pss' && h) {
      const parameter = { type: pkcs11js.CK_PARAMS_RSA_PSS, hashAlg: h.ckm, mgf: h.mgf, saltLen: h.len };
      if (hashOnToken && mechs.has(h.pss)) plan = { mechanism: { mechanism: h.pss, parameter }, prehash: null, digestInfo: false, ecdsaCoord: null, outLength: rsaBytes };
      else if (mechs.has(pkcs11js.CKM_RSA_PKCS_PSS)) plan = { mechanism: { mechanism: pkcs11js.CKM_RSA_PKCS_PSS, parameter }, prehash: info.hash, digestInfo: false, ecdsaCoord: null, outLength: rsaBytes };
    } else if (info.padding === 'pkcs1' && h) {
      if (hashOnToken && mechs.has(h.pkcs1)) plan = { mechanism: { mechanism: h.pkcs1 }, prehash: null, digestInfo: false, ecdsaCoord: null, outLength: rsaBytes };
      else if (mechs.has(pkcs11js.CKM_RSA_PKCS)) plan = { mechanism: { mechanism: pkcs11js.CKM_RSA_PKCS }, prehash: info.hash, digestInfo: true, ecdsaCoord: null, outLength: rsaBytes };
    }
    if (plan) plans.set(scheme, plan);
  }
  return plans;
}

/**
 * A private key held in a PKCS#11 token. Create with {@link openPkcs11Key}; call
 * {@link Pkcs11Key.close} when done (it ends the worker threads and the sessions).
 */
export class Pkcs11Key implements KeyOperations {
  readonly publicKey: KeyObject;
  readonly schemes: readonly SignatureScheme[];
  readonly keyId: string;
  readonly info: Pkcs11KeyInfo;
  /**
   * TLS 1.2 RSA key exchange: present only for RSA keys that the token lets decrypt
   * (CKA_DECRYPT and CKM_RSA_PKCS). Always resolves to 48 bytes: the premaster, or a
   * random value when decryption, length or version check failed (RFC 5246 7.4.7.1) —
   * the caller cannot tell which. Rejects only when aborted or the key is closed.
   */
  readonly decryptPremaster?: (ciphertext: Uint8Array, clientVersion: number, ctx: OperationContext, signal: AbortSignal) => Promise<Uint8Array>;

  readonly #plans: Map<SignatureScheme, SignPlan>;
  readonly #pool: Pkcs11WorkerPool;
  readonly #module: Pkcs11Module;
  readonly #session: Buffer;
  #closing: Promise<void> | null = null;

  /** @internal use openPkcs11Key */
  constructor(parts: { publicKey: KeyObject; plans: Map<SignatureScheme, SignPlan>; pool: Pkcs11WorkerPool; module: Pkcs11Module; session: Buffer; info: Pkcs11KeyInfo; decrypt: boolean }) {
    this.publicKey = parts.publicKey;
    this.#plans = parts.plans;
    const own = schemesForKey(parts.publicKey);
    this.schemes = [...parts.plans.keys()].filter((s) => own.includes(s));
    this.keyId = keyIdOf(parts.publicKey);
    this.info = parts.info;
    this.#pool = parts.pool;
    this.#module = parts.module;
    this.#session = parts.session;
    if (parts.decrypt) {
      const outLength = Math.ceil((parts.publicKey.asymmetricKeyDetails?.modulusLength ?? 0) / 8);
      this.decryptPremaster = (ciphertext, clientVersion, _ctx, signal) => {
        if (!(ciphertext instanceof Uint8Array) || !Number.isInteger(clientVersion) || clientVersion < 0 || clientVersion > 0xffff) {
          return Promise.reject(new KeyOperationError('bad-request', 'decryptPremaster needs a byte array and a 16-bit client version'));
        }
        return this.#pool.run({ op: 'premaster', mechanism: { mechanism: pkcs11js.CKM_RSA_PKCS }, ciphertext, clientVersion, outLength }, signal).then((p) => {
          if (p.length !== PREMASTER_LENGTH) throw new KeyOperationError('internal', 'PKCS#11 premaster has the wrong length');
          return p;
        });
      };
    }
  }

  /**
   * Signs the whole `message` with `scheme` in the token. Rejects with
   * KeyOperationError: 'unsupported' (scheme not offered), 'aborted' (at once, even while
   * the token is working), 'unavailable' (key closed, token gone), 'internal'.
   */
  async sign(scheme: SignatureScheme, message: Uint8Array, ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array> {
    const plan = this.#plans.get(scheme);
    if (!plan || !schemeFitsVersion(this.schemes, scheme, ctx.tlsVersion)) throw new KeyOperationError('unsupported', `scheme ${schemeInfo(scheme)?.name ?? scheme} does not fit this key or token`);
    if (!(message instanceof Uint8Array) || message.length > MAX_MESSAGE) throw new KeyOperationError('bad-request', 'message must be a byte array of at most 1 MiB');
    if (signal.aborted) throw new KeyOperationError('aborted', 'operation aborted');
    let data: Uint8Array = message;
    if (plan.prehash) {
      const digest = createHash(plan.prehash).update(message).digest();
      data = plan.digestInfo ? digestInfo(plan.prehash, digest) : digest;
    }
    const raw = await this.#pool.run({ op: 'sign', mechanism: plan.mechanism, data, outLength: plan.outLength }, signal);
    if (plan.ecdsaCoord === null) return raw;
    try {
      return ecdsaRawToDer(raw, plan.ecdsaCoord);
    } catch (err) {
      throw new KeyOperationError('internal', (err as Error).message);
    }
  }

  /** Sessions busy and operations waiting, for metrics. */
  poolStats(): Pkcs11PoolStats {
    return this.#pool.stats();
  }

  /**
   * Fails queued operations, waits for those already in the token, closes the sessions
   * and releases the module (finalized when no other key of this process uses it).
   */
  close(): Promise<void> {
    if (!this.#closing) {
      this.#closing = this.#pool.close().then(() => {
        try {
          this.#module.lib.C_CloseSession(this.#session);
        } catch {
          // Already closed by the token.
        }
        this.#module.release();
      });
    }
    return this.#closing;
  }
}

/**
 * Opens the private key a `pkcs11:` URI names, logs in, finds its public half and starts
 * the worker pool. Setup talks to the token synchronously, once; operations afterwards
 * never block the event loop.
 *
 * @throws Pkcs11UriError for a malformed URI; KeyOperationError 'unknown-key' (no such
 *   token or object), 'refused' (wrong or locked PIN, or a PIN needed and not given),
 *   'unsupported' (key type or usage keyward cannot use); Error for a missing module
 *   or PIN file. No message ever contains the PIN.
 */
export async function openPkcs11Key(opts: OpenPkcs11KeyOptions): Promise<Pkcs11Key> {
  const uri = parsePkcs11Uri(opts.uri);
  const vendor = Object.keys(uri.vendor);
  if (vendor.length > 0) {
    // Ignoring an attribute we do not understand could select a key it was meant to exclude.
    throw new KeyOperationError('bad-request', `the URI has attributes pkcs11Key does not understand: ${vendor.join(', ')}`);
  }
  if (uri.type !== undefined && uri.type !== 'private') {
    throw new KeyOperationError('bad-request', `the URI names type=${uri.type}; pkcs11Key needs the private key (type=private or no type)`);
  }
  const sessions = opts.sessions ?? 2;
  if (!Number.isInteger(sessions) || sessions < 1 || sessions > 32) throw new RangeError('sessions must be an integer from 1 to 32');
  const pin = resolvePin(opts, uri);
  const modulePath = resolvePkcs11ModulePath(opts.module, uri);
  const mod = acquirePkcs11Module(modulePath);
  const lib = mod.lib;
  let session: Buffer | null = null;
  let pool: Pkcs11WorkerPool | null = null;
  try {
    const token = findToken(lib, uri);
    try {
      session = lib.C_OpenSession(token.slot, pkcs11js.CKF_SERIAL_SESSION);
    } catch (err) {
      throw new KeyOperationError('unavailable', `cannot open a session on PKCS#11 token "${token.label}": ${errText(err)}`);
    }
    if (pin !== undefined) login(lib, session, token, pin);

    const template: pkcs11js.Template = [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }];
    if (uri.object !== undefined) template.push({ type: pkcs11js.CKA_LABEL, value: uri.object });
    if (uri.id !== undefined) template.push({ type: pkcs11js.CKA_ID, value: Buffer.from(uri.id) });
    const found = findObjects(lib, session, template, 2);
    const what = [uri.object !== undefined ? `object=${JSON.stringify(uri.object)}` : '', uri.id !== undefined ? `id=${formatPkcs11Id(uri.id)}` : ''].filter(Boolean).join(' ') || '(any)';
    if (found.length === 0) {
      const hint = pin === undefined && token.flags & pkcs11js.CKF_LOGIN_REQUIRED ? ' (no PIN was given, and private keys are visible only after login)' : '';
      throw new KeyOperationError('unknown-key', `no private key matches ${what} on PKCS#11 token "${token.label}"${hint}`);
    }
    if (found.length > 1) throw new KeyOperationError('unknown-key', `several private keys match ${what} on PKCS#11 token "${token.label}": add object= or id= to the URI`);
    const priv = found[0]!;

    const bool = (t: number): boolean => (attr(lib, session!, priv, t)?.[0] ?? 0) !== 0;
    const keyTypeBytes = attr(lib, session, priv, pkcs11js.CKA_KEY_TYPE);
    const keyType = keyTypeBytes ? ulong(keyTypeBytes) : -1;
    if (keyType !== pkcs11js.CKK_RSA && keyType !== pkcs11js.CKK_EC && keyType !== CKK_EC_EDWARDS) {
      throw new KeyOperationError('unsupported', `the private key on token "${token.label}" is of a type keyward cannot use (CKK ${keyType})`);
    }
    if (bool(pkcs11js.CKA_ALWAYS_AUTHENTICATE)) {
      throw new KeyOperationError('unsupported', 'the key needs a PIN for every operation (CKA_ALWAYS_AUTHENTICATE), which pkcs11Key does not support');
    }
    const id = attr(lib, session, priv, pkcs11js.CKA_ID) ?? Buffer.alloc(0);
    const labelBytes = attr(lib, session, priv, pkcs11js.CKA_LABEL);
    const label = labelBytes?.toString('utf8');

    let publicKey = findPublicKey(lib, session, priv, keyType, id, label);
    if (opts.publicKey) {
      // PKCS#11 has no RSASSA-PSS key type: a CKK_RSA key signs CKM_RSA_PKCS_PSS, and an
      // RSASSA-PSS certificate for its modulus makes it an rsa_pss_pss_* key (RFC 8446 4.2.3).
      const pss = opts.publicKey.asymmetricKeyType === 'rsa-pss';
      if (pss && keyType !== pkcs11js.CKK_RSA) throw new KeyOperationError('refused', `the RSASSA-PSS public key given needs an RSA key, not the CKK ${keyType} key on token "${token.label}"`);
      if (publicKey && !(pss ? sameRsaPublicKey(publicKey, opts.publicKey) : keyIdOf(publicKey) === keyIdOf(opts.publicKey))) {
        throw new KeyOperationError('refused', `the public key given does not match the key on token "${token.label}"`);
      }
      publicKey = pss ? opts.publicKey : (publicKey ?? opts.publicKey);
    }
    if (!publicKey) throw new KeyOperationError('unknown-key', `no public key found for ${what} on token "${token.label}" (no public-key object or certificate with its CKA_ID): pass publicKey`);
    if (keyKindOf(publicKey) === 'ed448') throw new KeyOperationError('unsupported', 'Ed448 keys are not supported by pkcs11Key');
    if (schemesForKey(publicKey).length === 0) throw new KeyOperationError('unsupported', `the key on token "${token.label}" is ${describeUnusableKey(publicKey)}`);

    const mechs = new Set<number>(lib.C_GetMechanismList(token.slot));
    const plans = planSchemes(publicKey, mechs, bool(pkcs11js.CKA_SIGN), opts.hashOnToken ?? true);
    // Not under an RSASSA-PSS public key: RFC 4055 keeps such a key to signatures.
    const decrypt = keyKindOf(publicKey) === 'rsa' && bool(pkcs11js.CKA_DECRYPT) && mechs.has(pkcs11js.CKM_RSA_PKCS);
    if (plans.size === 0 && !decrypt) throw new KeyOperationError('unsupported', `the key on token "${token.label}" can neither sign nor decrypt with a mechanism keyward uses`);

    pool = await Pkcs11WorkerPool.start({ modulePath: mod.path, slotId: new Uint8Array(token.slot), keyHandle: new Uint8Array(priv) }, sessions);
    const info: Pkcs11KeyInfo = {
      modulePath: mod.path,
      tokenLabel: token.label,
      tokenSerial: token.serial,
      slotId: token.slotId,
      objectLabel: label ?? '',
      id: formatPkcs11Id(id),
      keyType: keyType === pkcs11js.CKK_RSA ? 'rsa' : keyType === pkcs11js.CKK_EC ? 'ec' : 'eddsa',
      sensitive: bool(pkcs11js.CKA_SENSITIVE),
      extractable: bool(pkcs11js.CKA_EXTRACTABLE),
      alwaysSensitive: bool(pkcs11js.CKA_ALWAYS_SENSITIVE),
      neverExtractable: bool(pkcs11js.CKA_NEVER_EXTRACTABLE),
    };
    return new Pkcs11Key({ publicKey, plans, pool, module: mod, session, info, decrypt });
  } catch (err) {
    if (pool) await pool.close();
    if (session) {
      try {
        lib.C_CloseSession(session);
      } catch {
        // Ignore: we are failing anyway.
      }
    }
    mod.release();
    if (err instanceof KeyOperationError || err instanceof RangeError) throw err;
    // A binding error: keep only its CKR name or message (the binding never sees the PIN text in errors, but be strict).
    throw new KeyOperationError('unavailable', `PKCS#11: ${errText(err)}`);
  }
}
