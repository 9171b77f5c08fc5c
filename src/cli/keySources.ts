/**
 * Where `keyward serve` finds the private key of each certificate: a key file in this
 * process (--key), a key process that alone reads the key file (--key-process --key),
 * keyd (--keyd, found by the certificate's public key or --keyd-key-id), or a PKCS#11
 * token (--pkcs11); and where the TLS 1.2 PSKs are (--psk-keyd, --psk-process --psk-file,
 * or --psk-file in this process). Every failure becomes a CliError whose message names the file,
 * address or URI and the reason, never key bytes or a PIN.
 */
import { createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { DelegatedCredentialIssuer } from '../keys/delegatedCredentialIssuer.js';
import { describeUnusableKey } from '../tls/crypto/signatureSchemes.js';
import { keyIdOf } from '../keys/keyId.js';
import { KeyOperationError, type KeyOperations, type PskOperations, type Tls13PskOperations } from '../keys/keyOperations.js';
import { LocalDelegatedCredentialIssuer } from '../keys/localDelegatedCredentialIssuer.js';
import { LocalKey } from '../keys/localKey.js';
import { LocalPsk } from '../keys/localPsk.js';
import { parsePskEntries } from '../keys/pskFile.js';
import type { KeyProcessLogger } from '../keys/keyProcess.js';
import { KeydClient, parseKeydAddress, type RemoteKey } from '../keys/remoteKey.js';
import { TicketKeyFetcher } from '../keys/ticketKeyFetcher.js';
import { redactPkcs11Uri } from '../keys/pkcs11Uri.js';

/** A clear, user-facing error: printed without a stack trace. */
export class CliError extends Error {}

/**
 * One key option from the command line, in command-line order: the k-th goes with the
 * k-th --cert. A certificate left without one is looked up in keyd.
 */
export type KeySpec =
  /** --key FILE: in this process, or in a key process with --key-process. */
  | { kind: 'file'; path: string }
  /** --pkcs11 URI. */
  | { kind: 'pkcs11'; uri: string }
  /** --keyd-key-id HEX. */
  | { kind: 'keyd-id'; keyId: string };

/** How to reach keyd. */
export interface KeydSourceOptions {
  /** tls://HOST:PORT or unix:/path, in order of preference (failover). */
  addresses: string[];
  /** --keyd-ca, --keyd-cert, --keyd-key: PEM files for mutual TLS. */
  caPath?: string;
  certPath?: string;
  keyPath?: string;
  /** Deadline per key operation (default 2000 ms). */
  deadlineMs?: number;
  /** --keyd-bound: sign requests carry their handshake messages. */
  bound?: boolean;
  /** --ticket-keys-keyd: the session ticket keys come from keyd (see openTicketKeys). */
  ticketKeys?: boolean;
}

/** Options shared by every key of a `serve` run. */
export interface KeySourceOptions {
  /** --key files are loaded by key processes (the front never opens them). */
  keyProcess?: boolean;
  /** --psk-process: the PSK file is read by a key process (only used to check --key-user). */
  pskProcess?: boolean;
  /** --key-user: the key processes run as this user (needs root). */
  keyUser?: string;
  keyd?: KeydSourceOptions;
  /** --pkcs11-module and --pkcs11-pin-file, for every --pkcs11 URI. */
  pkcs11?: { module?: string; pinFile?: string };
  /** Where key processes report exits and restarts (default: stderr). */
  log?: (line: string) => void;
  /**
   * Delegated credentials are wanted (--delegated-credentials): key processes start able to
   * sign them, for at most `maxValidityMs` (default 6 h), and in-process keys get an issuer.
   */
  delegatedCredentials?: { maxValidityMs?: number };
}

/** Where the PSKs are held (TLS 1.2 PSK suites and TLS 1.3 external PSKs). */
export type PskSpec =
  /** --psk-keyd: keyd holds them (provisioned with `keyward keys put-psk`); needs --keyd. */
  | { kind: 'keyd' }
  /** --psk-process --psk-file FILE: a key process alone reads FILE. */
  | { kind: 'process'; path: string }
  /** --psk-file FILE alone: read into this process (a baseline, not isolation). */
  | { kind: 'file'; path: string };

/** The PSK holder of a `serve` run, with what the page and the log say about it. */
export interface OpenedPsk {
  /** Every holder answers both versions' operations. */
  holder: PskOperations & Tls13PskOperations;
  backend: 'local' | 'key-process' | 'keyd';
  describe(): string;
  /** The PSK process's pid, for --psk-process. */
  pid?(): number | undefined;
}

/** A key ready for the TLS server, with what the demo page and the log say about it. */
export interface OpenedKey {
  key: KeyOperations;
  /** Where the key lives, in a sentence (may change, e.g. a key process's pid after a restart). */
  describe(): string;
  /** Short form of the backend: 'local', 'key-process', 'keyd', 'pkcs11'. */
  backend: 'local' | 'key-process' | 'keyd' | 'pkcs11';
  /** The key process's pid, for --key-process. */
  pid?(): number | undefined;
  /**
   * With KeySourceOptions.delegatedCredentials: what signs this certificate's delegated
   * credentials (keyd, the key process, or an issuer over the in-process key), or why
   * nothing can.
   */
  delegation?: { issuer: DelegatedCredentialIssuer } | { unavailable: string };
}

function errorCode(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
}

/** Reads a small file the front may read (certificates, the mTLS link's credentials). */
function readTextFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${what} ${path}: ${errorCode(err)}`);
  }
}

function mismatch(certPath: string, keyWhere: string): CliError {
  return new CliError(`the certificate ${certPath} and the key do not match (key: ${keyWhere})`);
}

/**
 * The keyd link's client certificate and key must belong together; say so naming both
 * files rather than letting keyd's TLS handshake fail obscurely. (This front may read the
 * link's key: it is not a TLS server key.)
 */
function checkLinkPair(certPem: string, certPath: string, keyPem: string, keyPath: string): void {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    throw new CliError(`--keyd-cert ${certPath} holds no readable PEM certificate`);
  }
  let pub;
  try {
    pub = createPublicKey(keyPem);
  } catch {
    throw new CliError(`--keyd-key ${keyPath} is not a readable PEM private key`);
  }
  if (!pub.export({ type: 'spki', format: 'der' }).equals(cert.publicKey.export({ type: 'spki', format: 'der' }))) {
    throw new CliError(`the keyd link's client certificate ${certPath} (--keyd-cert) and key ${keyPath} (--keyd-key) do not match`);
  }
}

/** A keyd connection failure in words that name its real cause and the file involved. */
function keydLinkFailure(k: KeydSourceOptions, message: string): string {
  const where = k.addresses.join(', ');
  const code = /\b([A-Z][A-Z0-9_]{5,})\b/.exec(message)?.[1] ?? '';
  if (/CERT_ALTNAME|ERR_TLS_CERT_ALTNAME_INVALID/.test(code)) {
    return `keyd at ${where} answered, but its certificate does not carry the name or address dialled (${code}): reissue it with that name (keyward certs init --keyd-name) or dial a name it has`;
  }
  if (/UNABLE_TO_VERIFY|SELF_SIGNED|UNABLE_TO_GET_ISSUER|CERT_SIGNATURE_FAILURE|CERT_UNTRUSTED/.test(code)) {
    return `keyd at ${where} answered, but its certificate does not verify against ${k.caPath ? `--keyd-ca ${k.caPath}` : "the system's CAs (no --keyd-ca given)"} (${code}): give the CA that issued keyd's certificate`;
  }
  if (/CERT_HAS_EXPIRED|CERT_NOT_YET_VALID/.test(code)) return `keyd at ${where} answered with a certificate outside its validity period (${code})`;
  if (/refused the connection/.test(message)) {
    return `keyd at ${where} refused this front's client certificate${k.certPath ? ` ${k.certPath}` : ''}: is it issued by keyd's tls.clientCa, and is its identity (cn:NAME) a client in keyd.json? (${message})`;
  }
  return `keyd is unreachable (${where}): ${message}`;
}

/** Opens the keys of one `serve` run and closes them together. */
export class KeySources {
  readonly #opts: KeySourceOptions;
  readonly #opened: KeyOperations[] = [];
  readonly #psks: PskOperations[] = [];
  #ticketKeys: TicketKeyFetcher | undefined;
  #keyd: Promise<KeydClient> | undefined;
  #client: KeydClient | undefined;
  readonly #onClose: (() => void)[] = [];

  constructor(opts: KeySourceOptions) {
    this.#opts = opts;
    if (opts.keyd) {
      if (opts.keyd.addresses.length === 0) throw new CliError('--keyd needs an address: tls://HOST:PORT or unix:/path');
      for (const a of opts.keyd.addresses) {
        let parsed;
        try {
          parsed = parseKeydAddress(a);
        } catch (err) {
          throw new CliError(`--keyd ${(err as Error).message}`);
        }
        if (parsed.kind === 'tls' && (!opts.keyd.certPath || !opts.keyd.keyPath)) {
          throw new CliError(`--keyd ${a} uses mutual TLS: give --keyd-cert and --keyd-key (this front's client certificate and its key; --keyd-ca names the CA of keyd's certificate)`);
        }
      }
    }
    if (opts.keyUser !== undefined && !opts.keyProcess && !opts.pskProcess) throw new CliError('--key-user needs --key-process or --psk-process');
  }

  /** Whether a certificate without a key option can be served (from keyd). */
  get hasKeyd(): boolean {
    return this.#opts.keyd !== undefined;
  }

  /**
   * The key for certificate `certPath` (its leaf `leaf`), from `spec` or, without one,
   * from keyd by the certificate's key id.
   */
  async open(certPath: string, leaf: X509Certificate, spec: KeySpec | undefined): Promise<OpenedKey> {
    if (!spec) {
      if (!this.#opts.keyd) throw new CliError(`the certificate ${certPath} has no key: give --key (with --key-process to keep it out of this process), --pkcs11, or --keyd`);
      return this.#fromKeyd(certPath, leaf, keyIdOf(leaf.publicKey));
    }
    switch (spec.kind) {
      case 'file':
        return this.#opts.keyProcess ? this.#fromKeyProcess(certPath, leaf, spec.path) : this.#fromLocalFile(certPath, leaf, spec.path);
      case 'keyd-id':
        if (!this.#opts.keyd) throw new CliError('--keyd-key-id needs --keyd');
        if (!/^[0-9a-fA-F]{64}$/.test(spec.keyId)) throw new CliError(`--keyd-key-id ${spec.keyId}: expected the 64 hex digits of the key's SHA-256 SPKI hash`);
        return this.#fromKeyd(certPath, leaf, spec.keyId.toLowerCase());
      case 'pkcs11':
        return this.#fromPkcs11(certPath, leaf, spec.uri);
    }
  }

  #track(key: KeyOperations): void {
    this.#opened.push(key);
  }

  #fromLocalFile(certPath: string, leaf: X509Certificate, path: string): OpenedKey {
    let data: Buffer;
    try {
      data = readFileSync(path);
    } catch (err) {
      throw new CliError(`cannot read key file ${path}: ${errorCode(err)}`);
    }
    let privateKey: KeyObject;
    let key: LocalKey;
    try {
      privateKey = createPrivateKey(data);
    } catch {
      throw new CliError(`${path} is not a usable private key (PEM: PKCS#8, PKCS#1 or SEC1)`);
    } finally {
      data.fill(0);
    }
    try {
      key = new LocalKey(privateKey);
    } catch {
      // A key node:crypto reads but TLS cannot sign with: secp256k1, DSA, an RSASSA-PSS key restricted to SHA-1...
      throw new CliError(`${path} holds ${describeUnusableKey(privateKey)}`);
    }
    if (key.keyId !== keyIdOf(leaf.publicKey)) throw mismatch(certPath, path);
    const dc = this.#opts.delegatedCredentials;
    const delegation = dc && { issuer: new LocalDelegatedCredentialIssuer(privateKey, dc.maxValidityMs !== undefined ? { maxValidityMs: dc.maxValidityMs } : {}) };
    return { key, backend: 'local', describe: () => `in this process, read from ${path} (--key without --key-process)`, ...(delegation ? { delegation } : {}) };
  }

  async #fromKeyProcess(certPath: string, leaf: X509Certificate, path: string): Promise<OpenedKey> {
    const { startKeyProcess } = await import('../keys/keyProcess.js');
    const log = this.#opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
    const fmt = (level: string) => (obj: object, msg?: string) => log(`keyward: ${level}: ${msg ?? ''} ${JSON.stringify({ ...obj, key: path })}`);
    const info = fmt('info');
    // "ready" is said once by serve itself; restarts and failures are worth a line each.
    const logger: KeyProcessLogger = { info: (obj, msg) => msg !== 'key process ready' && info(obj, msg), warn: fmt('warn'), error: fmt('error') };
    let key;
    try {
      const dc = this.#opts.delegatedCredentials;
      key = await startKeyProcess({ keyPath: path, keyUser: this.#opts.keyUser, expectedPublicKey: leaf.publicKey, logger, ...(dc ? { delegatedCredentials: dc } : {}) });
    } catch (err) {
      const msg = (err as Error).message;
      if (/does not match/.test(msg)) throw mismatch(certPath, `${path}, in a key process`);
      throw new CliError(msg);
    }
    this.#track(key);
    const user = this.#opts.keyUser ? `, user ${this.#opts.keyUser}` : '';
    return {
      key,
      backend: 'key-process',
      pid: () => key.pid,
      describe: () => `in a separate key process (pid ${key.pid ?? 'restarting'}${user}); this process never read ${path}`,
      ...(this.#opts.delegatedCredentials ? { delegation: { issuer: key } } : {}),
    };
  }

  #connectKeyd(): Promise<KeydClient> {
    const k = this.#opts.keyd!;
    this.#keyd ??= (async () => {
      const creds = {
        ...(k.caPath ? { ca: readTextFile(k.caPath, '--keyd-ca file') } : {}),
        ...(k.certPath ? { cert: readTextFile(k.certPath, '--keyd-cert file') } : {}),
        ...(k.keyPath ? { key: readTextFile(k.keyPath, '--keyd-key file') } : {}),
      };
      if (creds.cert !== undefined && creds.key !== undefined) checkLinkPair(creds.cert, k.certPath!, creds.key, k.keyPath!);
      try {
        this.#client = await KeydClient.connect({ addresses: k.addresses, ...creds, deadlineMs: k.deadlineMs ?? 2_000, bound: k.bound === true });
        return this.#client;
      } catch (err) {
        throw new CliError(keydLinkFailure(k, (err as Error).message));
      }
    })();
    return this.#keyd;
  }

  async #fromKeyd(certPath: string, leaf: X509Certificate, keyId: string): Promise<OpenedKey> {
    const client = await this.#connectKeyd();
    let key: RemoteKey;
    try {
      key = await client.key({ keyId });
    } catch (err) {
      const e = err as KeyOperationError;
      if (e.code === 'unknown-key') {
        throw new CliError(`keyd has no key ${keyId} (for the certificate ${certPath}): import it with "keyward keys put", or name another with --keyd-key-id`);
      }
      if (e.code === 'refused') throw new CliError(`keyd refused this front the key ${keyId} for the certificate ${certPath}: ${e.message}`);
      throw new CliError(`keyd could not give the key ${keyId} for the certificate ${certPath}: ${e.message}`);
    }
    if (key.keyId !== keyIdOf(leaf.publicKey)) throw mismatch(certPath, `keyd key ${keyId}`);
    const where = this.#opts.keyd!.addresses.join(', ');
    return {
      key,
      backend: 'keyd',
      describe: () => `in keyd (${where}), key id ${keyId.slice(0, 16)}…; this process holds only the public key`,
      ...(this.#opts.delegatedCredentials ? { delegation: { issuer: key } } : {}),
    };
  }

  async #fromPkcs11(certPath: string, leaf: X509Certificate, uri: string): Promise<OpenedKey> {
    const { openPkcs11Key } = await import('../keys/pkcs11Key.js');
    const shown = redactPkcs11Uri(uri);
    const p = this.#opts.pkcs11 ?? {};
    let key;
    try {
      key = await openPkcs11Key({ uri, publicKey: leaf.publicKey, ...(p.module ? { module: p.module } : {}), ...(p.pinFile ? { pinFile: p.pinFile } : {}) });
    } catch (err) {
      const msg = (err as Error).message;
      if (err instanceof KeyOperationError && err.code === 'refused' && /does not match/.test(msg)) throw mismatch(certPath, `PKCS#11 ${shown}`);
      throw new CliError(`PKCS#11 key ${shown}: ${msg}`);
    }
    this.#track(key);
    const i = key.info;
    // A software token (SoftHSM) keeps its keys in the memory of the process that loads it.
    const soft = /softhsm/i.test(i.modulePath) ? ' (a software token: its keys live in this process; a hardware token keeps them in the device)' : '';
    return {
      key,
      backend: 'pkcs11',
      ...(this.#opts.delegatedCredentials ? { delegation: { unavailable: 'a --pkcs11 key does not sign delegated credentials (put the key in keyd or a key process for that)' } } : {}),
      describe: () => `in PKCS#11 token "${i.tokenLabel}", object "${i.objectLabel}"${i.sensitive && !i.extractable ? ', sensitive and not extractable' : ''}${soft}`,
    };
  }

  /**
   * The PSK holder for `spec`. `unknownIdentity` applies to the PSK file modes; keyd's
   * behaviour for unknown identities is set in keyd's own configuration.
   */
  async openPsk(spec: PskSpec, unknownIdentity?: 'random' | 'reject'): Promise<OpenedPsk> {
    if (spec.kind === 'keyd') {
      if (!this.#opts.keyd) throw new CliError('--psk-keyd needs --keyd (the keyd that holds the PSKs)');
      if (unknownIdentity !== undefined) throw new CliError('--psk-unknown applies to --psk-file; with --psk-keyd, keyd\'s configuration (psk.unknownIdentity) decides');
      const client = await this.#connectKeyd();
      const holder = client.psk(this.#opts.keyd.deadlineMs ?? 2_000);
      const where = this.#opts.keyd.addresses.join(', ');
      return { holder, backend: 'keyd', describe: () => `PSKs in keyd (${where}); this process never holds them` };
    }
    if (spec.kind === 'file') {
      let data: Buffer;
      try {
        data = readFileSync(spec.path);
      } catch (err) {
        throw new CliError(`cannot read PSK file ${spec.path}: ${errorCode(err)}`);
      }
      let holder: LocalPsk;
      try {
        const psks = parsePskEntries(data, spec.path);
        holder = new LocalPsk(psks, unknownIdentity ? { unknownIdentity } : {});
        for (const v of psks.values()) v.secret.fill(0);
      } catch (err) {
        throw new CliError((err as Error).message);
      } finally {
        data.fill(0);
      }
      return { holder, backend: 'local', describe: () => `PSKs in this process, read from ${spec.path} (--psk-file without --psk-process)` };
    }
    const { startPskProcess } = await import('../keys/keyProcess.js');
    const log = this.#opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
    const fmt = (level: string) => (obj: object, msg?: string) => log(`keyward: ${level}: ${msg ?? ''} ${JSON.stringify({ ...obj, pskFile: spec.path })}`);
    const info = fmt('info');
    const logger: KeyProcessLogger = { info: (obj, msg) => msg !== 'PSK process ready' && info(obj, msg), warn: fmt('warn'), error: fmt('error') };
    let holder;
    try {
      holder = await startPskProcess({ pskPath: spec.path, keyUser: this.#opts.keyUser, logger, ...(unknownIdentity ? { unknownIdentity } : {}) });
    } catch (err) {
      throw new CliError((err as Error).message);
    }
    this.#psks.push(holder);
    const user = this.#opts.keyUser ? `, user ${this.#opts.keyUser}` : '';
    return {
      holder,
      backend: 'key-process',
      pid: () => holder.pid,
      describe: () => `PSKs in a separate key process (pid ${holder.pid ?? 'restarting'}${user}); this process never read ${spec.path}`,
    };
  }

  /**
   * The fleet's session ticket keys from keyd (--ticket-keys-keyd), kept current by a
   * TicketKeyFetcher over the same keyd connections; its ring goes to the server options.
   */
  async openTicketKeys(): Promise<TicketKeyFetcher> {
    if (!this.#opts.keyd) throw new CliError('--ticket-keys-keyd needs --keyd (the key server that rotates the ticket keys)');
    const client = await this.#connectKeyd();
    const log = this.#opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
    try {
      this.#ticketKeys = await TicketKeyFetcher.start({ client, log: (level, msg, fields) => log(`keyward: ${level}: ${msg} ${JSON.stringify(fields)}`) });
    } catch (err) {
      const e = err as KeyOperationError;
      if (e.code === 'refused') throw new CliError(`keyd refused this front the ticket keys: ${e.message}`);
      throw new CliError(`keyd could not give the ticket keys (${this.#opts.keyd.addresses.join(', ')}): ${e.message}`);
    }
    return this.#ticketKeys;
  }

  /** Runs `fn` first thing in close() (what uses the keys stops before they close: delegated-credential renewals). */
  onClose(fn: () => void): void {
    this.#onClose.push(fn);
  }

  /** Closes every key and PSK holder opened (key processes, PKCS#11 sessions, the keyd connections). */
  async close(): Promise<void> {
    for (const fn of this.#onClose.splice(0)) fn();
    this.#ticketKeys?.close();
    const keys = this.#opened.splice(0);
    const psks = this.#psks.splice(0);
    await Promise.allSettled([...keys.map((k) => k.close?.()), ...psks.map((p) => p.close?.())]);
    this.#client?.close();
  }
}

