/**
 * A key-encryption key held in a PKCS#11 token: an AES key (CKO_SECRET_KEY, CKK_AES) that
 * wraps the sealed store's key with CKM_AES_GCM inside the token. The store then opens only
 * where that token is, as OP-TEE's trusted storage opens only on its device.
 *
 * Used once at keyd start (and when a store is created), so the calls are synchronous.
 */
import { randomBytes } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import { findObjects, findToken, login, resolvePin } from '../keys/pkcs11Key.js';
import { acquirePkcs11Module, ckrName, type Pkcs11Module } from '../keys/pkcs11Module.js';
import { parsePkcs11Uri, redactPkcs11Uri } from '../keys/pkcs11Uri.js';

/** Where the token KEK is. */
export interface Pkcs11KekOptions {
  /** Path of the PKCS#11 module. */
  module: string;
  /** RFC 7512 URI of the AES secret key (token and object and/or id). */
  uri: string;
  /** File holding the user PIN; else pin-value / pin-source from the URI. */
  pinFile?: string;
}

/** The AES-GCM output of one wrap. */
export interface TokenEnvelope {
  nonce: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

/** An open token KEK. */
export interface TokenKek {
  /** The URI without any PIN, for the store header and messages. */
  readonly description: string;
  wrap(plaintext: Uint8Array, aad: Uint8Array): TokenEnvelope;
  /** null when the token says the data does not authenticate (wrong key, edited bytes). */
  unwrap(env: TokenEnvelope, aad: Uint8Array): Buffer | null;
  close(): void;
}

const TAG_BYTES = 16;

/**
 * Opens the token, logs in and finds the AES key the URI names. Throws an Error naming
 * the problem (no token, no key, several keys, login failed); never with the PIN.
 */
export function openTokenKek(opts: Pkcs11KekOptions): TokenKek {
  const uri = parsePkcs11Uri(opts.uri);
  const description = redactPkcs11Uri(opts.uri);
  const mod: Pkcs11Module = acquirePkcs11Module(opts.module);
  const lib = mod.lib;
  let session: Buffer | undefined;
  try {
    let found: Buffer[];
    try {
      const pin = resolvePin(opts, uri);
      const token = findToken(lib, uri);
      session = lib.C_OpenSession(token.slot, pkcs11js.CKF_SERIAL_SESSION);
      if (pin !== undefined) login(lib, session, token, pin);
      const template: pkcs11js.Template = [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
        { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      ];
      if (uri.object !== undefined) template.push({ type: pkcs11js.CKA_LABEL, value: uri.object });
      if (uri.id !== undefined) template.push({ type: pkcs11js.CKA_ID, value: Buffer.from(uri.id) });
      found = findObjects(lib, session, template, 2);
    } catch (e) {
      throw new Error(`store KEK ${description}: ${ckrName(e) ?? (e as Error).message}`, { cause: e });
    }
    if (found.length !== 1) throw new Error(`store KEK ${description}: ${found.length === 0 ? 'no AES key matches (is the PIN given?)' : 'several AES keys match; add object= or id='}`);
    const key = found[0];
    const s = session;
    const gcm = (iv: Buffer, aad: Uint8Array): pkcs11js.Mechanism => ({
      mechanism: pkcs11js.CKM_AES_GCM,
      parameter: { type: pkcs11js.CK_PARAMS_AES_GCM, iv, aad: Buffer.from(aad), ivBits: iv.length * 8, tagBits: TAG_BYTES * 8 } as pkcs11js.AesGCM,
    });
    let closed = false;
    return {
      description,
      wrap(plaintext, aad) {
        const nonce = randomBytes(12);
        lib.C_EncryptInit(s, gcm(nonce, aad), key);
        const out = lib.C_Encrypt(s, Buffer.from(plaintext), Buffer.alloc(plaintext.length + TAG_BYTES));
        return { nonce, ciphertext: Buffer.from(out.subarray(0, out.length - TAG_BYTES)), tag: Buffer.from(out.subarray(out.length - TAG_BYTES)) };
      },
      unwrap(env, aad) {
        try {
          lib.C_DecryptInit(s, gcm(env.nonce, aad), key);
          const out = lib.C_Decrypt(s, Buffer.concat([env.ciphertext, env.tag]), Buffer.alloc(env.ciphertext.length + TAG_BYTES));
          return Buffer.from(out);
        } catch {
          return null;
        }
      },
      close() {
        if (closed) return;
        closed = true;
        try {
          lib.C_CloseSession(s);
        } catch {
          // already closed by the token
        }
        mod.release();
      },
    };
  } catch (e) {
    if (session) {
      try {
        lib.C_CloseSession(session);
      } catch {
        // ignore
      }
    }
    mod.release();
    throw e;
  }
}
