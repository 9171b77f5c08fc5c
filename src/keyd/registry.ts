/**
 * The keys keyd serves. A key is anything that can sign: a private KeyObject from the
 * sealed store (wrapped in a LocalKey), a PKCS#11 token key, or any KeyOperations an
 * embedding program hands in. Keys are found by id (SHA-256 of the SPKI) or by a server
 * name they serve.
 */
import type { KeyObject } from 'node:crypto';
import type { CertificateKey, OperationContext } from '../keys/keyOperations.js';
import { keyKindOf, schemeFitsVersion, type KeyKind, type SignatureScheme, type TlsVersion } from '../tls/crypto/signatureSchemes.js';
import type { KeyInfo, KeySelector } from './protocol.js';

/**
 * A key as keyd holds it: signing (and RSA premaster decryption where the key offers it),
 * plus two synchronous forms only keyd's scheduler uses. `signNow`: in-memory EC and EdDSA
 * keys, cheaper than a hop to the thread pool, answered in the turn that read the request.
 * `signBlocking`: an in-memory key of any type, used only while keyd is otherwise idle.
 * Both throw KeyOperationError.
 */
export type KeydKeyOperations = CertificateKey & {
  signNow?(scheme: SignatureScheme, message: Uint8Array, ctx: OperationContext): Uint8Array;
  signBlocking?(scheme: SignatureScheme, message: Uint8Array, ctx: OperationContext): Uint8Array;
};

/** Where a key lives. */
export type KeySource = 'store' | 'pkcs11' | 'embedded';

/** A key as keyd serves it. */
export interface RegisteredKey {
  readonly keyId: string;
  readonly publicKey: KeyObject;
  /** SubjectPublicKeyInfo DER. */
  readonly spki: Buffer;
  readonly schemes: readonly SignatureScheme[];
  readonly keyType: KeyKind;
  readonly serverNames: readonly string[];
  readonly source: KeySource;
  readonly origin?: 'imported' | 'generated';
  readonly createdAt?: string;
  /** Does the signing. */
  readonly ops: KeydKeyOperations;
  /**
   * Verify each signature before returning it. On for token keys (a faulty device must
   * not hand the front a bad RSA-CRT signature, which can reveal the key); OpenSSL already
   * checks its own RSA-CRT results.
   */
  readonly verifyResults: boolean;
}

/** What to register: everything but what the registry derives from `ops`. */
export interface KeyRegistration {
  ops: KeydKeyOperations;
  serverNames: readonly string[];
  source: KeySource;
  origin?: 'imported' | 'generated';
  createdAt?: string;
  verifyResults?: boolean;
}

/** Whether `pattern` "*.example.com" covers `name` (exactly one more label, RFC 6125 style). */
export function wildcardMatches(pattern: string, name: string): boolean {
  if (!pattern.startsWith('*.')) return false;
  const suffix = pattern.slice(1);
  if (!name.endsWith(suffix)) return false;
  const label = name.slice(0, name.length - suffix.length);
  return label.length > 0 && !label.includes('.');
}

/** The key table. */
export class KeyRegistry {
  readonly #byId = new Map<string, { key: RegisteredKey; order: number }>();
  #order = 0;

  /** Adds a key, replacing one with the same id. Later additions count as newer. */
  add(reg: KeyRegistration): RegisteredKey {
    const publicKey = reg.ops.publicKey;
    const keyType = keyKindOf(publicKey);
    if (!keyType) throw new Error(`unsupported key type ${String(publicKey.asymmetricKeyType)}`);
    const key: RegisteredKey = {
      keyId: reg.ops.keyId,
      publicKey,
      spki: publicKey.export({ type: 'spki', format: 'der' }),
      schemes: reg.ops.schemes,
      keyType,
      serverNames: [...new Set(reg.serverNames.map((n) => n.toLowerCase().replace(/\.$/, '')))],
      source: reg.source,
      origin: reg.origin,
      createdAt: reg.createdAt,
      ops: reg.ops,
      verifyResults: reg.verifyResults ?? false,
    };
    this.#byId.set(key.keyId, { key, order: ++this.#order });
    return key;
  }

  remove(keyId: string): RegisteredKey | undefined {
    const e = this.#byId.get(keyId);
    this.#byId.delete(keyId);
    return e?.key;
  }

  get(keyId: string): RegisteredKey | undefined {
    return this.#byId.get(keyId)?.key;
  }

  get size(): number {
    return this.#byId.size;
  }

  /** Every key, newest first. */
  all(): RegisteredKey[] {
    return [...this.#byId.values()].sort((a, b) => b.order - a.order).map((e) => e.key);
  }

  /** Keys serving `name`: exact matches first, then wildcard ones; newest first within each. */
  byName(name: string): RegisteredKey[] {
    const n = name.toLowerCase().replace(/\.$/, '');
    const all = this.all();
    const exact = all.filter((k) => k.serverNames.includes(n));
    const wild = all.filter((k) => !k.serverNames.includes(n) && k.serverNames.some((p) => wildcardMatches(p, n)));
    return [...exact, ...wild];
  }

  /**
   * The keys a selector names. By id: that key. By name: every key serving it; with
   * `scheme`, only those that can produce it in `version` (see schemeFitsVersion).
   */
  select(sel: KeySelector, scheme?: number, version: TlsVersion = 'TLSv1.3'): RegisteredKey[] {
    const found = 'keyId' in sel ? [this.get(sel.keyId)].filter((k): k is RegisteredKey => k !== undefined) : this.byName(sel.serverName);
    if (scheme === undefined || 'keyId' in sel) return found;
    // Keys whose own curve the scheme names come before those that sign it only as TLS 1.2 allows.
    return [...found.filter((k) => k.schemes.includes(scheme)), ...found.filter((k) => !k.schemes.includes(scheme) && schemeFitsVersion(k.schemes, scheme, version))];
  }
}

/** Public description of a key for GET_KEY and LIST_KEYS. */
export function keyInfoOf(k: RegisteredKey): KeyInfo {
  const info: KeyInfo = {
    keyId: k.keyId,
    spki: k.spki,
    schemes: [...k.schemes],
    serverNames: [...k.serverNames],
    keyType: k.keyType,
    source: k.source,
  };
  if (k.origin) info.origin = k.origin;
  if (k.createdAt) info.createdAt = k.createdAt;
  return info;
}

/** Whether `key` serves `name`, exactly or through a one-label wildcard. */
export function servesName(key: RegisteredKey, name: string): boolean {
  const n = name.toLowerCase().replace(/\.$/, '');
  return key.serverNames.includes(n) || key.serverNames.some((p) => wildcardMatches(p, n));
}
