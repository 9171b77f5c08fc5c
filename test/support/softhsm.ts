/**
 * SoftHSM2 tokens for tests: a token in a temp directory of its own, and keys generated
 * inside it (C_GenerateKeyPair, sensitive and not extractable), so a private key never
 * exists outside the token.
 *
 * SoftHSM reads SOFTHSM2_CONF and its token list when the library is initialized, so
 * this helper points SOFTHSM2_CONF (in process.env, inherited by child processes) at one
 * temp directory per test process, and every token of the process lives there. Create
 * tokens before opening keys: a token made while the library is initialized in this
 * process is not seen until every user has released it.
 */
import { randomBytes, type KeyObject } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import { acquirePkcs11Module, ckrName, findSoftHsmModule, pkcs11ModuleInUse } from '../../src/keys/pkcs11Module.js';
import { ecPublicKeyFromAttributes, rsaPublicKeyFromAttributes } from '../../src/keys/pkcs11PublicKey.js';
import { formatPkcs11Uri } from '../../src/keys/pkcs11Uri.js';
import { runProcess } from './processes.js';

/** Key kinds the helper can generate in a token. */
export type SoftHsmKeyKind = 'ec-p256' | 'ec-p384' | 'rsa-2048' | 'ed25519';

/** A key generated inside a token. */
export interface SoftHsmKey {
  /** `pkcs11:token=...;object=...;id=...;type=private` (no PIN, no module). */
  uri: string;
  publicKey: KeyObject;
  /** CKA_ID of the pair (random). */
  id: Uint8Array;
  label: string;
}

/** A SoftHSM2 token made for a test. */
export interface SoftHsmToken {
  /** Path of libsofthsm2.so. */
  module: string;
  /** The softhsm2.conf in use (also in process.env.SOFTHSM2_CONF). */
  conf: string;
  /** Variables a child process needs to see the token (merge into its environment): SOFTHSM2_CONF. */
  env: Record<string, string>;
  label: string;
  pin: string;
  soPin: string;
  /** A file holding the user PIN (mode 0600), for pin-source / --pin-file tests. */
  pinFile: string;
  generateKey(kind: SoftHsmKeyKind, label: string): Promise<SoftHsmKey>;
  /** Deletes the token (and the temp directory with the last token). */
  cleanup(): void;
}

interface Shared {
  dir: string;
  conf: string;
  tokens: Set<string>;
}

let shared: Shared | undefined;
let counter = 0;

/** Finds libsofthsm2.so or throws: a missing SoftHSM must fail the test, not skip it. */
export function softHsmModulePath(): string {
  const found = findSoftHsmModule();
  if (!found) throw new Error('libsofthsm2.so not found: install the Debian package softhsm2 (scripts/setup-test-env.sh does)');
  return found;
}

function sharedDir(): Shared {
  if (shared) return shared;
  const dir = mkdtempSync(join(tmpdir(), 'keyward-softhsm-'));
  const tokens = join(dir, 'tokens');
  const conf = join(dir, 'softhsm2.conf');
  mkdirSync(tokens, { mode: 0o700 });
  writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`, { mode: 0o600 });
  process.env.SOFTHSM2_CONF = conf;
  const s: Shared = { dir, conf, tokens: new Set() };
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  shared = s;
  return s;
}

const ecParams: Record<'ec-p256' | 'ec-p384' | 'ed25519', string> = {
  'ec-p256': '06082a8648ce3d030107',
  'ec-p384': '06052b81040022',
  'ed25519': '06032b6570',
};
const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055;

/**
 * Makes a new token (`softhsm2-util --init-token --free`) in this process's SoftHSM
 * directory. Default label `keyward-N`, default PINs random (so a test can look for the
 * PIN in error text without false hits).
 */
export async function createSoftHsmToken(opts: { label?: string; pin?: string } = {}): Promise<SoftHsmToken> {
  const module = softHsmModulePath();
  if (pkcs11ModuleInUse(module)) {
    throw new Error('createSoftHsmToken: SoftHSM is initialized in this process already; create tokens before opening keys');
  }
  const s = sharedDir();
  const label = opts.label ?? `keyward-${process.pid}-${++counter}`;
  const pin = opts.pin ?? randomBytes(6).toString('hex');
  const soPin = randomBytes(6).toString('hex');
  const env: Record<string, string> = { ...(process.env as Record<string, string>), SOFTHSM2_CONF: s.conf };
  const r = await runProcess('softhsm2-util', ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', soPin], { env, timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`softhsm2-util --init-token failed (${r.code}): ${r.stderr.replaceAll(pin, '***').replaceAll(soPin, '***')}`);
  s.tokens.add(label);
  const pinFile = join(s.dir, `${label}.pin`);
  writeFileSync(pinFile, `${pin}\n`, { mode: 0o600 });

  const generateKey = async (kind: SoftHsmKeyKind, keyLabel: string): Promise<SoftHsmKey> => {
    const mod = acquirePkcs11Module(module);
    const lib = mod.lib;
    let session: Buffer | undefined;
    try {
      const slot = lib.C_GetSlotList(true).find((sl) => lib.C_GetTokenInfo(sl).label.trimEnd() === label);
      if (!slot) throw new Error(`SoftHSM token "${label}" not visible in this process (created after SoftHSM was initialized?)`);
      session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
      try {
        lib.C_Login(session, pkcs11js.CKU_USER, pin);
      } catch (err) {
        if (ckrName(err) !== 'CKR_USER_ALREADY_LOGGED_IN') throw err;
      }
      const id = randomBytes(8);
      const common = [
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_ID, value: id },
        { type: pkcs11js.CKA_LABEL, value: keyLabel },
      ];
      const rsa = kind === 'rsa-2048';
      const pub: pkcs11js.Template = [...common, { type: pkcs11js.CKA_VERIFY, value: true }];
      // The private half: generated here, never readable (sensitive) nor wrappable out (not extractable).
      const priv: pkcs11js.Template = [
        ...common,
        { type: pkcs11js.CKA_PRIVATE, value: true },
        { type: pkcs11js.CKA_SENSITIVE, value: true },
        { type: pkcs11js.CKA_EXTRACTABLE, value: false },
        { type: pkcs11js.CKA_SIGN, value: true },
      ];
      let mechanism: number;
      if (rsa) {
        mechanism = pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN;
        pub.push({ type: pkcs11js.CKA_MODULUS_BITS, value: 2048 }, { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) }, { type: pkcs11js.CKA_ENCRYPT, value: true });
        priv.push({ type: pkcs11js.CKA_DECRYPT, value: true });
      } else {
        mechanism = kind === 'ed25519' ? CKM_EC_EDWARDS_KEY_PAIR_GEN : pkcs11js.CKM_EC_KEY_PAIR_GEN;
        pub.push({ type: pkcs11js.CKA_EC_PARAMS, value: Buffer.from(ecParams[kind], 'hex') });
      }
      // The async variant keeps the event loop free during RSA key generation.
      const pair = await lib.C_GenerateKeyPairAsync(session, { mechanism }, pub, priv);
      const get = (t: number): Buffer => lib.C_GetAttributeValue(session!, pair.publicKey, [{ type: t }])[0]!.value;
      const publicKey = rsa
        ? rsaPublicKeyFromAttributes(get(pkcs11js.CKA_MODULUS), get(pkcs11js.CKA_PUBLIC_EXPONENT))
        : ecPublicKeyFromAttributes(get(pkcs11js.CKA_EC_PARAMS), get(pkcs11js.CKA_EC_POINT));
      return { uri: formatPkcs11Uri({ token: label, object: keyLabel, id, type: 'private' }), publicKey, id: new Uint8Array(id), label: keyLabel };
    } finally {
      if (session) {
        try {
          lib.C_CloseSession(session);
        } catch {
          // Ignore.
        }
      }
      mod.release();
    }
  };

  const cleanup = (): void => {
    if (!s.tokens.delete(label)) return;
    spawnSync('softhsm2-util', ['--delete-token', '--token', label], { env, timeout: 10_000, stdio: 'ignore' });
    rmSync(pinFile, { force: true });
    if (s.tokens.size === 0 && shared === s) {
      rmSync(s.dir, { recursive: true, force: true });
      shared = undefined;
    }
  };

  return { module, conf: s.conf, env: { SOFTHSM2_CONF: s.conf }, label, pin, soPin, pinFile, generateKey, cleanup };
}
