/**
 * The sealed key store: a folder of AES-256-GCM envelopes.
 *
 *   <dir>/keystore.json        header: KEK parameters, the wrapped store key, a checksum
 *   <dir>/keys/<keyId>.json    one private key (PKCS#8) sealed under the store key
 *   <dir>/psks/<sha256(identity)>.json   one PSK sealed under the store key
 *   <dir>/audit-key.json       the Ed25519 key that signs audit checkpoints (never a TLS key)
 *   <dir>/ticket-keys/<name>.json   one session ticket key served to fronts, sealed
 *
 * A random 256-bit store key seals every record; the key-encryption key (KEK), derived
 * from a passphrase with scrypt or from a key file with HKDF, only wraps the store key.
 * Every envelope's additional data binds the format version and the record's identity
 * (key id and metadata, or PSK identity), so records cannot be swapped or relabelled.
 *
 * Writes are atomic (temporary file, fsync, rename, fsync of the folder). Opening never
 * writes: a wrong passphrase or a damaged file gives a StoreError and changes nothing.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  hkdf,
  randomBytes,
  scrypt,
  type KeyObject,
} from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, stat, unlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { keyIdOf } from '../keys/keyId.js';
import { keyKindOf, type KeyKind } from '../tls/crypto/signatureSchemes.js';
import { redactPkcs11Uri } from '../keys/pkcs11Uri.js';
import type { Pkcs11KekOptions } from './pkcs11Kek.js';

/** Where the key-encryption key comes from. */
export type KekSource =
  | { type: 'passphrase'; passphrase: string | Uint8Array }
  | { type: 'keyfile'; path: string }
  /** An AES key in a PKCS#11 token wraps the store key (CKM_AES_GCM): the store opens only with that token. */
  | ({ type: 'pkcs11' } & Pkcs11KekOptions);

/** scrypt cost parameters, stored in the header so the store opens with them later. */
export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

/** Defaults for new stores: about 100 ms and 32 MiB on a current machine. */
export const DEFAULT_SCRYPT: ScryptParams = { N: 1 << 15, r: 8, p: 1 };

/** Why a store operation failed. `file` names the file at fault when there is one. */
export type StoreErrorCode = 'wrong-secret' | 'corrupt' | 'not-a-store' | 'not-empty' | 'bad-key' | 'io';

/** A store failure with a message that names the file and never holds secret bytes. */
export class StoreError extends Error {
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    readonly file?: string,
  ) {
    super(message);
    this.name = 'StoreError';
  }
}

/** Where a stored key came from. */
export type KeyOrigin = 'imported' | 'generated';

/** A key held by the store, decrypted in memory. */
export interface StoredKey {
  readonly keyId: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly keyType: KeyKind;
  readonly serverNames: readonly string[];
  readonly origin: KeyOrigin;
  readonly createdAt: string;
}

/** The hash a TLS 1.3 PSK is used with (RFC 8446 4.2.11: SHA-256 unless provisioned otherwise). */
export type PskHash = 'sha256' | 'sha384';

/** A PSK held by the store. */
export interface StoredPsk {
  readonly identity: Buffer;
  readonly secret: Buffer;
  readonly createdAt: string;
  /** Its TLS 1.3 hash (TLS 1.2 PSK suites use the suite's PRF hash whatever this says). */
  readonly hash: PskHash;
}

/**
 * A session ticket key keyd makes, rotates and serves to the fronts of a fleet (never to
 * disk in the clear). `createdAt` is when its sealing period starts (ms since the epoch):
 * keyd makes each key one period ahead, so the next key's is in the future.
 */
export interface StoredTicketKey {
  /** 16 bytes: the name every ticket sealed under the key carries (public). */
  readonly name: Buffer;
  /** 32 bytes of AES-256-GCM key. */
  readonly secret: Buffer;
  readonly createdAt: number;
}

/** The key that signs audit log checkpoints: kept apart from the TLS keys, never served. */
export interface StoredAuditKey {
  readonly keyId: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly createdAt: string;
}

const HEADER_FILE = 'keystore.json';
const AUDIT_KEY_FILE = 'audit-key.json';
const AUDIT_KEY_FORMAT = 'keyward-sealed-audit-key';
const KEYS_DIR = 'keys';
const PSKS_DIR = 'psks';
const TICKET_KEYS_DIR = 'ticket-keys';
const HEADER_FORMAT = 'keyward-sealed-store';
const KEY_FORMAT = 'keyward-sealed-key';
const PSK_FORMAT = 'keyward-sealed-psk';
const TICKET_KEY_FORMAT = 'keyward-sealed-ticket-key';
const VERSION = 1;
const NONCE_BYTES = 12;
const TICKET_NAME_BYTES = 16;
const TICKET_SECRET_BYTES = 32;
const TAG_BYTES = 16;
const KEK_INFO = 'keyward sealed store kek v1';

type KekParams =
  | { type: 'scrypt'; salt: string; N: number; r: number; p: number }
  | { type: 'keyfile'; salt: string }
  /** `uri` (without PIN) records which token key sealed the store, for messages. */
  | { type: 'pkcs11'; uri: string };

interface Envelope {
  nonce: string;
  ciphertext: string;
  tag: string;
}

interface HeaderFile {
  format: string;
  version: number;
  kek: KekParams;
  wrappedStoreKey: Envelope;
  checksum: string;
}

interface KeyFile extends Envelope {
  format: string;
  version: number;
  keyId: string;
  keyType: string;
  serverNames: string[];
  origin: KeyOrigin;
  createdAt: string;
}

interface AuditKeyFile extends Envelope {
  format: string;
  version: number;
  keyId: string;
  createdAt: string;
}

interface PskFile extends Envelope {
  format: string;
  version: number;
  identity: string;
  createdAt: string;
  /** TLS 1.3 hash of the PSK (RFC 8446 4.2.11); absent in records made before it was kept: sha256. */
  hash?: PskHash;
}

interface TicketKeyFile extends Envelope {
  format: string;
  version: number;
  /** hex of the 16-byte key name; also the file name. */
  name: string;
  /** ms since the epoch: start of the key's sealing period. */
  createdAt: number;
}

/** JSON with object keys sorted, so a checksum does not depend on key order. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

function headerChecksum(h: Omit<HeaderFile, 'checksum'>): string {
  return createHash('sha256').update(canonicalJson({ format: h.format, version: h.version, kek: h.kek, wrappedStoreKey: h.wrappedStoreKey })).digest('hex');
}

function seal(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Envelope {
  const nonce = randomBytes(NONCE_BYTES);
  const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  c.setAAD(aad);
  const ciphertext = Buffer.concat([c.update(plaintext), c.final()]);
  return { nonce: nonce.toString('base64'), ciphertext: ciphertext.toString('base64'), tag: c.getAuthTag().toString('base64') };
}

/** Opens an envelope; null when authentication fails (wrong key or edited bytes). */
function unseal(key: Uint8Array, env: Envelope, aad: Uint8Array): Buffer | null {
  const nonce = Buffer.from(env.nonce, 'base64');
  const tag = Buffer.from(env.tag, 'base64');
  if (nonce.length !== NONCE_BYTES || tag.length !== TAG_BYTES) return null;
  try {
    const d = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
    d.setAAD(aad);
    d.setAuthTag(tag);
    return Buffer.concat([d.update(Buffer.from(env.ciphertext, 'base64')), d.final()]);
  } catch {
    return null;
  }
}

function isEnvelope(v: unknown): v is Envelope {
  const e = v as Envelope;
  return typeof e === 'object' && e !== null && isB64(e.nonce) && isB64(e.ciphertext) && isB64(e.tag);
}

function isB64(v: unknown): v is string {
  return typeof v === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(v);
}

function headerAad(kek: KekParams): Buffer {
  return Buffer.from(`${HEADER_FORMAT} v${VERSION}\0${canonicalJson(kek)}`, 'utf8');
}

function keyAad(f: Pick<KeyFile, 'keyId' | 'keyType' | 'serverNames' | 'origin' | 'createdAt'>): Buffer {
  return Buffer.from(`${KEY_FORMAT} v${VERSION}\0${canonicalJson([f.keyId, f.keyType, f.serverNames, f.origin, f.createdAt])}`, 'utf8');
}

function pskAad(identityB64: string, createdAt: string, hash: PskHash | undefined): Buffer {
  // Records from before the hash was kept have none, and their additional data lacks it.
  const bound = hash === undefined ? [identityB64, createdAt] : [identityB64, createdAt, hash];
  return Buffer.from(`${PSK_FORMAT} v${VERSION}\0${canonicalJson(bound)}`, 'utf8');
}

function ticketKeyAad(nameHex: string, createdAt: number): Buffer {
  return Buffer.from(`${TICKET_KEY_FORMAT} v${VERSION}\0${canonicalJson([nameHex, createdAt])}`, 'utf8');
}

function auditKeyAad(keyId: string, createdAt: string): Buffer {
  return Buffer.from(`${AUDIT_KEY_FORMAT} v${VERSION}\0${canonicalJson([keyId, createdAt])}`, 'utf8');
}

function pskFileName(identity: Uint8Array): string {
  return `${createHash('sha256').update(identity).digest('hex')}.json`;
}

function checkScrypt(p: ScryptParams): string | undefined {
  if (!Number.isInteger(p.N) || p.N < 1024 || p.N > 1 << 22 || (p.N & (p.N - 1)) !== 0) return 'scrypt N must be a power of two from 1024 to 4194304';
  if (!Number.isInteger(p.r) || p.r < 1 || p.r > 32) return 'scrypt r must be 1..32';
  if (!Number.isInteger(p.p) || p.p < 1 || p.p > 16) return 'scrypt p must be 1..16';
  return undefined;
}

function scryptAsync(passphrase: Uint8Array, salt: Uint8Array, p: ScryptParams): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(passphrase, salt, 32, { N: p.N, r: p.r, p: p.p, maxmem: 256 * p.N * p.r + (1 << 20) }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function hkdfAsync(ikm: Uint8Array, salt: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    hkdf('sha256', ikm, salt, KEK_INFO, 32, (err, key) => (err ? reject(err) : resolve(Buffer.from(key))));
  });
}

/** Reads a key file: 64+ hex characters of text, or 32+ raw bytes. */
async function readKeyFile(path: string): Promise<Buffer> {
  let raw: Buffer;
  try {
    raw = await readFile(path);
  } catch (e) {
    throw new StoreError('io', `cannot read key file ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`, path);
  }
  const text = raw.toString('latin1').trim();
  // A copy either way: `raw` is wiped next, and a binary key must not be wiped with it.
  const bytes = /^[0-9a-fA-F]+$/.test(text) && text.length % 2 === 0 ? Buffer.from(text, 'hex') : Buffer.from(raw);
  raw.fill(0);
  if (bytes.length < 32) throw new StoreError('bad-key', `key file ${path} holds ${bytes.length} bytes; it needs at least 32 (random)`, path);
  return bytes;
}

/** Wraps and unwraps the store key: in software under a derived KEK, or in a token. */
interface KekHandle {
  /** 'passphrase', 'key file' or 'token key': for messages. */
  readonly what: string;
  seal(plaintext: Uint8Array, aad: Uint8Array): Envelope;
  unseal(env: Envelope, aad: Uint8Array): Buffer | null;
  close(): void;
}

function softwareKek(key: Buffer, what: string): KekHandle {
  return {
    what,
    seal: (pt, aad) => seal(key, pt, aad),
    unseal: (env, aad) => unseal(key, env, aad),
    close: () => key.fill(0),
  };
}

const KEK_NAMES: Record<KekParams['type'], string> = { scrypt: 'a passphrase', keyfile: 'a key file', pkcs11: 'a PKCS#11 token key' };
const SOURCE_PARAMS: Record<KekSource['type'], KekParams['type']> = { passphrase: 'scrypt', keyfile: 'keyfile', pkcs11: 'pkcs11' };

async function openKek(source: KekSource, params: KekParams): Promise<KekHandle> {
  if (SOURCE_PARAMS[source.type] !== params.type) {
    throw new StoreError('wrong-secret', `this store is sealed with ${KEK_NAMES[params.type]}, but ${KEK_NAMES[SOURCE_PARAMS[source.type]]} was given`);
  }
  if (params.type === 'pkcs11') {
    const s = source as Extract<KekSource, { type: 'pkcs11' }>;
    // Loaded only for token stores, so others never load the native PKCS#11 binding.
    const { openTokenKek } = await import('./pkcs11Kek.js');
    let t;
    try {
      t = openTokenKek({ module: s.module, uri: s.uri, ...(s.pinFile ? { pinFile: s.pinFile } : {}) });
    } catch (e) {
      throw new StoreError('io', (e as Error).message);
    }
    return {
      what: 'token key',
      seal: (pt, aad) => {
        const e = t.wrap(pt, aad);
        return { nonce: e.nonce.toString('base64'), ciphertext: e.ciphertext.toString('base64'), tag: e.tag.toString('base64') };
      },
      unseal: (env, aad) => {
        const nonce = Buffer.from(env.nonce, 'base64');
        const tag = Buffer.from(env.tag, 'base64');
        if (nonce.length !== NONCE_BYTES || tag.length !== TAG_BYTES) return null;
        return t.unwrap({ nonce, ciphertext: Buffer.from(env.ciphertext, 'base64'), tag }, aad);
      },
      close: () => t.close(),
    };
  }
  const salt = Buffer.from(params.salt, 'base64');
  if (params.type === 'scrypt') {
    const src = source as Extract<KekSource, { type: 'passphrase' }>;
    const pass = typeof src.passphrase === 'string' ? Buffer.from(src.passphrase, 'utf8') : Buffer.from(src.passphrase);
    if (pass.length === 0) throw new StoreError('wrong-secret', 'the store passphrase is empty');
    try {
      return softwareKek(await scryptAsync(pass, salt, params), 'passphrase');
    } finally {
      pass.fill(0);
    }
  }
  const ikm = await readKeyFile((source as Extract<KekSource, { type: 'keyfile' }>).path);
  try {
    return softwareKek(await hkdfAsync(ikm, salt), 'key file');
  } finally {
    ikm.fill(0);
  }
}

/** write, fsync, rename, fsync(dir): after a crash the file is either old or new, never torn. */
async function writeFileAtomic(path: string, data: string): Promise<void> {
  const dir = join(path, '..');
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
  try {
    await fh.writeFile(data, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await fsyncDir(dir);
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, fsConstants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new StoreError('io', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`, path);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new StoreError('corrupt', `corrupt store file ${path}: not valid JSON`, path);
  }
}

async function isEmptyOrMissing(dir: string): Promise<boolean> {
  try {
    const entries = await readdir(dir);
    return entries.length === 0;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw new StoreError('io', `cannot read store folder ${dir}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`, dir);
  }
}

/** Options for creating a store. */
export interface CreateStoreOptions {
  /** scrypt cost for a passphrase store; default DEFAULT_SCRYPT. */
  scrypt?: ScryptParams;
}

/**
 * A sealed key store opened with its key-encryption key. Holds the decrypted keys and
 * PSKs in memory (private keys as KeyObjects, in OpenSSL's memory) for keyd to use.
 */
export class SealedStore {
  readonly #keys = new Map<string, StoredKey>();
  readonly #psks = new Map<string, StoredPsk>();
  /** By name (hex). */
  readonly #ticketKeys = new Map<string, StoredTicketKey>();
  #auditKey: StoredAuditKey | undefined;
  #storeKey: Buffer;

  private constructor(
    readonly dir: string,
    storeKey: Buffer,
    /** Files that were skipped while opening (e.g. temporary files left by a crash). */
    readonly warnings: string[],
  ) {
    this.#storeKey = storeKey;
  }

  /** True when `dir` holds a store header. */
  static async exists(dir: string): Promise<boolean> {
    try {
      return (await stat(join(dir, HEADER_FILE))).isFile();
    } catch {
      return false;
    }
  }

  /**
   * Creates a new, empty store in `dir`, which must be missing or empty (so an existing
   * store whose header went missing is never silently replaced).
   */
  static async create(dir: string, kek: KekSource, opts: CreateStoreOptions = {}): Promise<SealedStore> {
    if (!(await isEmptyOrMissing(dir))) throw new StoreError('not-empty', `cannot create a store in ${dir}: the folder is not empty and has no ${HEADER_FILE}`, dir);
    let params: KekParams;
    const salt = randomBytes(32).toString('base64');
    if (kek.type === 'passphrase') {
      const s = opts.scrypt ?? DEFAULT_SCRYPT;
      const bad = checkScrypt(s);
      if (bad) throw new StoreError('bad-key', bad);
      params = { type: 'scrypt', salt, N: s.N, r: s.r, p: s.p };
    } else if (kek.type === 'keyfile') {
      params = { type: 'keyfile', salt };
    } else {
      params = { type: 'pkcs11', uri: redactPkcs11Uri(kek.uri) };
    }
    const handle = await openKek(kek, params);
    const storeKey = randomBytes(32);
    try {
      const wrapped = handle.seal(storeKey, headerAad(params));
      const body = { format: HEADER_FORMAT, version: VERSION, kek: params, wrappedStoreKey: wrapped };
      const header: HeaderFile = { ...body, checksum: headerChecksum(body) };
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await mkdir(join(dir, KEYS_DIR), { mode: 0o700 });
      await mkdir(join(dir, PSKS_DIR), { mode: 0o700 });
      await writeFileAtomic(join(dir, HEADER_FILE), JSON.stringify(header, null, 2) + '\n');
      await fsyncDir(join(dir, '..'));
    } finally {
      handle.close();
    }
    return new SealedStore(dir, storeKey, []);
  }

  /**
   * Opens an existing store and decrypts every record. Throws StoreError:
   * 'not-a-store' (no header), 'corrupt' (a damaged header or record, named in the
   * message), 'wrong-secret' (the header is intact but the passphrase or key file does
   * not open it). Never writes.
   */
  static async open(dir: string, kek: KekSource): Promise<SealedStore> {
    const headerPath = join(dir, HEADER_FILE);
    if (!(await SealedStore.exists(dir))) throw new StoreError('not-a-store', `no sealed store in ${dir} (${HEADER_FILE} is missing)`, headerPath);
    const h = (await readJson(headerPath)) as HeaderFile;
    const corrupt = (why: string): StoreError => new StoreError('corrupt', `corrupt store header ${headerPath}: ${why}`, headerPath);
    if (typeof h !== 'object' || h === null || h.format !== HEADER_FORMAT) throw corrupt('not a keyward sealed store header');
    if (h.version !== VERSION) throw corrupt(`unsupported version ${String(h.version)} (this keyd reads version ${VERSION})`);
    if (typeof h.checksum !== 'string' || headerChecksum(h) !== h.checksum) throw corrupt('checksum mismatch (the file was edited or damaged)');
    const params = h.kek;
    if (!params || typeof params !== 'object') throw corrupt('bad key-encryption parameters');
    if (params.type === 'pkcs11') {
      if (typeof params.uri !== 'string') throw corrupt('bad key-encryption parameters');
    } else if ((params.type !== 'scrypt' && params.type !== 'keyfile') || !isB64(params.salt)) {
      throw corrupt('bad key-encryption parameters');
    }
    if (params.type === 'scrypt') {
      const bad = checkScrypt(params);
      if (bad) throw corrupt(bad);
    }
    if (!isEnvelope(h.wrappedStoreKey)) throw corrupt('bad wrapped store key');
    const handle = await openKek(kek, params);
    let storeKey: Buffer | null;
    try {
      storeKey = handle.unseal(h.wrappedStoreKey, headerAad(params));
    } finally {
      handle.close();
    }
    if (!storeKey || storeKey.length !== 32) {
      // The checksum held, so the header is as written: the secret is what is wrong.
      const what = handle.what;
      const sealedWith = params.type === 'pkcs11' ? ` (sealed with ${params.uri})` : '';
      throw new StoreError('wrong-secret', `wrong ${what} or corrupt store ${dir}: the header is intact but does not open with this ${what}${sealedWith}`, headerPath);
    }
    const store = new SealedStore(dir, storeKey, []);
    try {
      await store.#loadKeys();
      await store.#loadPsks();
      await store.#loadTicketKeys();
      await store.#loadAuditKey();
    } catch (e) {
      store.close();
      throw e;
    }
    return store;
  }

  /** Opens the store in `dir`, or creates it when the folder is missing or empty. */
  static async openOrCreate(dir: string, kek: KekSource, opts: CreateStoreOptions = {}): Promise<SealedStore> {
    if (await SealedStore.exists(dir)) return SealedStore.open(dir, kek);
    return SealedStore.create(dir, kek, opts);
  }

  async #listRecords(sub: string): Promise<string[]> {
    const d = join(this.dir, sub);
    let names: string[];
    try {
      names = await readdir(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new StoreError('io', `cannot read ${d}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`, d);
    }
    const out: string[] = [];
    for (const n of names.sort()) {
      if (n.endsWith('.json') && !n.startsWith('.')) out.push(join(d, n));
      else this.warnings.push(`ignored ${join(d, n)} (not a record; a temporary file left by an interrupted write?)`);
    }
    return out;
  }

  async #loadKeys(): Promise<void> {
    for (const path of await this.#listRecords(KEYS_DIR)) {
      const k = await this.#readKey(path);
      this.#keys.set(k.keyId, k);
    }
  }

  async #readKey(path: string): Promise<StoredKey> {
    const corrupt = (why: string): StoreError => new StoreError('corrupt', `corrupt key file ${path}: ${why}; nothing was changed`, path);
    const f = (await readJson(path)) as KeyFile;
    if (typeof f !== 'object' || f === null || f.format !== KEY_FORMAT) throw corrupt('not a keyward sealed key');
    if (f.version !== VERSION) throw corrupt(`unsupported version ${String(f.version)}`);
    if (typeof f.keyId !== 'string' || !/^[0-9a-f]{64}$/.test(f.keyId) || basename(path) !== `${f.keyId}.json`) throw corrupt('key id does not match the file name');
    if (!Array.isArray(f.serverNames) || !f.serverNames.every((n) => typeof n === 'string')) throw corrupt('bad serverNames');
    if (f.origin !== 'imported' && f.origin !== 'generated') throw corrupt('bad origin');
    if (typeof f.createdAt !== 'string' || typeof f.keyType !== 'string' || !isEnvelope(f)) throw corrupt('missing fields');
    const privateKey = this.#unsealPrivateKey(f, keyAad(f), corrupt);
    const publicKey = createPublicKey(privateKey);
    if (keyIdOf(publicKey) !== f.keyId) throw corrupt('sealed key does not match its key id');
    const keyType = keyKindOf(publicKey);
    if (!keyType) throw corrupt('unsupported key type');
    return { keyId: f.keyId, privateKey, publicKey, keyType, serverNames: f.serverNames, origin: f.origin, createdAt: f.createdAt };
  }

  /** Opens a sealed PKCS#8 private key; the DER is wiped once the KeyObject holds it. */
  #unsealPrivateKey(env: Envelope, aad: Buffer, corrupt: (why: string) => StoreError): KeyObject {
    const der = unseal(this.#storeKey, env, aad);
    // The header opened, so the store key is right: a failing record was changed on disk.
    if (!der) throw corrupt('authentication failed (the file was edited or damaged)');
    try {
      return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    } catch {
      throw corrupt('sealed content is not a PKCS#8 private key');
    } finally {
      der.fill(0);
    }
  }

  /** Seals a private key's PKCS#8 DER (wiped after). */
  #sealPrivateKey(privateKey: KeyObject, aad: Buffer): Envelope {
    const der = privateKey.export({ type: 'pkcs8', format: 'der' });
    try {
      return seal(this.#storeKey, der, aad);
    } finally {
      der.fill(0);
    }
  }

  async #loadPsks(): Promise<void> {
    for (const path of await this.#listRecords(PSKS_DIR)) {
      const corrupt = (why: string): StoreError => new StoreError('corrupt', `corrupt PSK file ${path}: ${why}; nothing was changed`, path);
      const f = (await readJson(path)) as PskFile;
      if (typeof f !== 'object' || f === null || f.format !== PSK_FORMAT) throw corrupt('not a keyward sealed PSK');
      if (f.version !== VERSION) throw corrupt(`unsupported version ${String(f.version)}`);
      if (!isB64(f.identity) || typeof f.createdAt !== 'string' || !isEnvelope(f)) throw corrupt('missing fields');
      if (f.hash !== undefined && f.hash !== 'sha256' && f.hash !== 'sha384') throw corrupt('hash must be sha256 or sha384');
      const identity = Buffer.from(f.identity, 'base64');
      if (basename(path) !== pskFileName(identity)) throw corrupt('identity does not match the file name');
      const secret = unseal(this.#storeKey, f, pskAad(f.identity, f.createdAt, f.hash));
      if (!secret) throw corrupt('authentication failed (the file was edited or damaged)');
      this.#psks.set(identity.toString('hex'), { identity, secret, createdAt: f.createdAt, hash: f.hash ?? 'sha256' });
    }
  }

  async #loadTicketKeys(): Promise<void> {
    for (const path of await this.#listRecords(TICKET_KEYS_DIR)) {
      const corrupt = (why: string): StoreError => new StoreError('corrupt', `corrupt ticket key file ${path}: ${why}; nothing was changed`, path);
      const f = (await readJson(path)) as TicketKeyFile;
      if (typeof f !== 'object' || f === null || f.format !== TICKET_KEY_FORMAT) throw corrupt('not a keyward sealed ticket key');
      if (f.version !== VERSION) throw corrupt(`unsupported version ${String(f.version)}`);
      if (typeof f.name !== 'string' || !/^[0-9a-f]{32}$/.test(f.name) || basename(path) !== `${f.name}.json`) throw corrupt('name does not match the file name');
      if (!Number.isSafeInteger(f.createdAt) || f.createdAt < 0 || !isEnvelope(f)) throw corrupt('missing fields');
      const secret = unseal(this.#storeKey, f, ticketKeyAad(f.name, f.createdAt));
      if (!secret) throw corrupt('authentication failed (the file was edited or damaged)');
      if (secret.length !== TICKET_SECRET_BYTES) {
        secret.fill(0);
        throw corrupt(`the sealed key is not ${TICKET_SECRET_BYTES} bytes`);
      }
      this.#ticketKeys.set(f.name, { name: Buffer.from(f.name, 'hex'), secret, createdAt: f.createdAt });
    }
  }

  async #loadAuditKey(): Promise<void> {
    const path = join(this.dir, AUDIT_KEY_FILE);
    try {
      await stat(path);
    } catch {
      return;
    }
    const corrupt = (why: string): StoreError => new StoreError('corrupt', `corrupt audit key file ${path}: ${why}; nothing was changed`, path);
    const f = (await readJson(path)) as AuditKeyFile;
    if (typeof f !== 'object' || f === null || f.format !== AUDIT_KEY_FORMAT) throw corrupt('not a keyward sealed audit key');
    if (f.version !== VERSION) throw corrupt(`unsupported version ${String(f.version)}`);
    if (typeof f.keyId !== 'string' || typeof f.createdAt !== 'string' || !isEnvelope(f)) throw corrupt('missing fields');
    const privateKey = this.#unsealPrivateKey(f, auditKeyAad(f.keyId, f.createdAt), corrupt);
    const publicKey = createPublicKey(privateKey);
    if (privateKey.asymmetricKeyType !== 'ed25519' || keyIdOf(publicKey) !== f.keyId) throw corrupt('sealed key is not the Ed25519 key its id names');
    this.#auditKey = { keyId: f.keyId, privateKey, publicKey, createdAt: f.createdAt };
  }

  /** The audit checkpoint key if the store has one (it is made by {@link auditKey}). */
  existingAuditKey(): StoredAuditKey | undefined {
    return this.#auditKey;
  }

  /** The audit checkpoint key, made (Ed25519) and sealed on first use. */
  async auditKey(): Promise<StoredAuditKey> {
    this.#checkOpen();
    if (this.#auditKey) return this.#auditKey;
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const keyId = keyIdOf(publicKey);
    const createdAt = new Date().toISOString();
    const env = this.#sealPrivateKey(privateKey, auditKeyAad(keyId, createdAt));
    const file: AuditKeyFile = { format: AUDIT_KEY_FORMAT, version: VERSION, keyId, createdAt, ...env };
    await writeFileAtomic(join(this.dir, AUDIT_KEY_FILE), JSON.stringify(file, null, 2) + '\n');
    this.#auditKey = { keyId, privateKey, publicKey, createdAt };
    return this.#auditKey;
  }

  #checkOpen(): void {
    if (this.#storeKey.length === 0) throw new StoreError('io', 'the store is closed');
  }

  /** Every stored key. */
  keys(): StoredKey[] {
    return [...this.#keys.values()];
  }

  getKey(keyId: string): StoredKey | undefined {
    return this.#keys.get(keyId);
  }

  /** Every stored PSK. */
  psks(): StoredPsk[] {
    return [...this.#psks.values()];
  }

  getPsk(identity: Uint8Array): StoredPsk | undefined {
    return this.#psks.get(Buffer.from(identity).toString('hex'));
  }

  /**
   * Seals `privateKey` into the store (replacing a record of the same key, e.g. to change
   * its server names; the original creation time and origin are kept).
   */
  async putKey(privateKey: KeyObject, opts: { serverNames: readonly string[]; origin: KeyOrigin }): Promise<StoredKey> {
    this.#checkOpen();
    if (privateKey.type !== 'private') throw new StoreError('bad-key', 'putKey needs a private key');
    const publicKey = createPublicKey(privateKey);
    const keyType = keyKindOf(publicKey);
    if (!keyType) throw new StoreError('bad-key', `unsupported key type ${String(privateKey.asymmetricKeyType)} (TLS keys are RSA, RSASSA-PSS, EC P-256/384/521, Ed25519, Ed448)`);
    const keyId = keyIdOf(publicKey);
    const previous = this.#keys.get(keyId);
    const meta = {
      keyId,
      keyType,
      serverNames: [...new Set(opts.serverNames)],
      origin: previous?.origin ?? opts.origin,
      createdAt: previous?.createdAt ?? new Date().toISOString(),
    };
    const env = this.#sealPrivateKey(privateKey, keyAad(meta));
    const file: KeyFile = { format: KEY_FORMAT, version: VERSION, ...meta, ...env };
    await writeFileAtomic(join(this.dir, KEYS_DIR, `${keyId}.json`), JSON.stringify(file, null, 2) + '\n');
    const stored: StoredKey = { ...meta, privateKey, publicKey };
    this.#keys.set(keyId, stored);
    return stored;
  }

  /** Removes a key's record; false when there was none. */
  async deleteKey(keyId: string): Promise<boolean> {
    this.#checkOpen();
    if (!this.#keys.has(keyId)) return false;
    const path = join(this.dir, KEYS_DIR, `${keyId}.json`);
    await unlink(path);
    await fsyncDir(join(this.dir, KEYS_DIR));
    this.#keys.delete(keyId);
    return true;
  }

  /** Seals a PSK under its identity (replacing an existing one), with its TLS 1.3 hash (default sha256). */
  async putPsk(identity: Uint8Array, secret: Uint8Array, hash: PskHash = 'sha256'): Promise<StoredPsk> {
    this.#checkOpen();
    const identityB64 = Buffer.from(identity).toString('base64');
    const createdAt = new Date().toISOString();
    const env = seal(this.#storeKey, secret, pskAad(identityB64, createdAt, hash));
    const file: PskFile = { format: PSK_FORMAT, version: VERSION, identity: identityB64, createdAt, hash, ...env };
    await writeFileAtomic(join(this.dir, PSKS_DIR, pskFileName(identity)), JSON.stringify(file, null, 2) + '\n');
    const stored: StoredPsk = { identity: Buffer.from(identity), secret: Buffer.from(secret), createdAt, hash };
    const old = this.#psks.get(stored.identity.toString('hex'));
    this.#psks.set(stored.identity.toString('hex'), stored);
    old?.secret.fill(0);
    return stored;
  }

  /** Removes a PSK's record and wipes it from memory; false when there was none. */
  deletePsk(identity: Uint8Array): Promise<boolean> {
    return this.#removeSecret(this.#psks, Buffer.from(identity).toString('hex'), PSKS_DIR, pskFileName(identity));
  }

  /** Unlinks a secret's sealed file (fsyncing the folder), forgets it and zeroes it; false when there was none. */
  async #removeSecret<T extends { secret: Buffer }>(records: Map<string, T>, key: string, sub: string, file: string): Promise<boolean> {
    this.#checkOpen();
    const old = records.get(key);
    if (!old) return false;
    await unlink(join(this.dir, sub, file));
    await fsyncDir(join(this.dir, sub));
    records.delete(key);
    old.secret.fill(0);
    return true;
  }

  /** Every ticket key, oldest sealing period first. */
  ticketKeys(): StoredTicketKey[] {
    return [...this.#ticketKeys.values()].sort((a, b) => a.createdAt - b.createdAt);
  }

  /** Seals a ticket key (16-byte name, 32-byte key) whose sealing period starts at `createdAt`. */
  async putTicketKey(name: Uint8Array, secret: Uint8Array, createdAt: number): Promise<StoredTicketKey> {
    this.#checkOpen();
    if (name.length !== TICKET_NAME_BYTES || secret.length !== TICKET_SECRET_BYTES) throw new StoreError('bad-key', `a ticket key is a ${TICKET_NAME_BYTES}-byte name and a ${TICKET_SECRET_BYTES}-byte key`);
    if (!Number.isSafeInteger(createdAt) || createdAt < 0) throw new StoreError('bad-key', 'a ticket key needs a creation time in ms since the epoch');
    const nameHex = Buffer.from(name).toString('hex');
    const env = seal(this.#storeKey, secret, ticketKeyAad(nameHex, createdAt));
    const file: TicketKeyFile = { format: TICKET_KEY_FORMAT, version: VERSION, name: nameHex, createdAt, ...env };
    // Stores made before ticket keys existed have no folder for them yet.
    await mkdir(join(this.dir, TICKET_KEYS_DIR), { recursive: true, mode: 0o700 });
    await writeFileAtomic(join(this.dir, TICKET_KEYS_DIR, `${nameHex}.json`), JSON.stringify(file, null, 2) + '\n');
    const stored: StoredTicketKey = { name: Buffer.from(name), secret: Buffer.from(secret), createdAt };
    this.#ticketKeys.set(nameHex, stored);
    return stored;
  }

  /** Removes a ticket key's record and wipes it from memory; false when there was none. */
  deleteTicketKey(name: Uint8Array): Promise<boolean> {
    const nameHex = Buffer.from(name).toString('hex');
    return this.#removeSecret(this.#ticketKeys, nameHex, TICKET_KEYS_DIR, `${nameHex}.json`);
  }

  /** Wipes the store key, PSK and ticket key secrets from memory. The store cannot be used after. */
  close(): void {
    this.#storeKey.fill(0);
    this.#storeKey = Buffer.alloc(0);
    for (const p of this.#psks.values()) p.secret.fill(0);
    this.#psks.clear();
    for (const t of this.#ticketKeys.values()) t.secret.fill(0);
    this.#ticketKeys.clear();
    this.#keys.clear();
    this.#auditKey = undefined;
  }
}
