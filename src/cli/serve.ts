/**
 * `keyward serve`: a small HTTPS (and HTTP/2) page over the keyward TLS engine, with each
 * certificate's private key wherever the command line puts it (see keySources.ts).
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type http2 from 'node:http2';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import { keyIdOf } from '../keys/keyId.js';
import { signaturesVouchedFor, vouchForSignatures, type KeyOperations, type OperationContext } from '../keys/keyOperations.js';
import { createHttp2SecureServer, createHttpsServer, type WithTlsAcceptor } from '../node/http.js';
import type { CertificateWithKey } from '../node/server.js';
import type { KeywardTLSSocket } from '../node/tlsSocket.js';
import type { SignatureScheme } from '../tls/crypto/signatureSchemes.js';
import { certifiedKey } from '../tls/engine/certificates.js';
import { SourceLimit } from '../proxy/sourceLimit.js';
import type { TicketKeyFetcher } from '../keys/ticketKeyFetcher.js';
import type { DelegatedCredentialIssuer } from '../keys/delegatedCredentialIssuer.js';
import { DEFAULT_DC_VALIDITY_MS, holderMaxValidity, startDelegation, type DelegationLog } from './delegation.js';
import { serverTlsChoices } from './frontOptions.js';
import { CliError, KeySources, type KeySourceOptions, type KeySpec, type OpenedKey, type OpenedPsk, type PskSpec } from './keySources.js';
import { demoPage } from './page.js';

export { CliError, type KeySpec, type KeySourceOptions, type PskSpec } from './keySources.js';

/** The PSKs of a `serve` run: TLS 1.2 PSK suites (RFC 4279 PSK and RFC 5489 ECDHE_PSK), and TLS 1.3 external PSKs with `tls13`. */
export interface ServePskOptions {
  /** Where the PSKs are held. */
  source: PskSpec;
  /** psk_identity_hint sent to clients (--psk-hint). */
  identityHint?: string;
  /** Unknown identity with a PSK file: random master secret (default) or unknown_psk_identity. */
  unknownIdentity?: 'random' | 'reject';
  /** Also TLS 1.3 external PSKs (--tls13-psk): the hash, the identities taken (required with certificates), psk_ke. */
  tls13?: { hash?: 'sha256' | 'sha384'; identities?: string[]; allowPskOnly?: boolean };
}

/** What `serve` needs: where to listen, the certificates, and where their keys are. */
export interface ServeOptions {
  /** HOST:PORT, [V6]:PORT or PORT (port 0 picks a free one). */
  listen: string;
  /** Certificate chain files, PEM, leaf first. May be empty when `psk` is given (a PSK-only server). */
  certs: string[];
  /** Also offer TLS 1.2 PSK suites (and TLS 1.3 external PSKs with `psk.tls13`), the PSKs held where `psk.source` says. */
  psk?: ServePskOptions;
  /** Key options in command-line order: the k-th goes with the k-th certificate; the rest (and undefined entries) use keyd. */
  keys?: (KeySpec | undefined)[];
  /** Backend settings shared by every key (key process, keyd, PKCS#11). */
  sources?: KeySourceOptions;
  alpn?: string[];
  /** Also offer TLS 1.2 RSA key exchange (no forward secrecy; the key holder decrypts the premaster). */
  rsaKeyExchange?: boolean;
  /** Lowest TLS version accepted (default TLSv1.2). */
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** Highest TLS version used (default TLSv1.3). */
  maxVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** Key-exchange groups by name in preference order (X25519, P-256, ffdhe2048, ...; --groups); default: the engine's. */
  groups?: string[];
  /** Cipher suites by IANA name in preference order (--cipher); the suites of one version only limit the server to it. */
  ciphers?: string[];
  /** Mutual TLS: ask clients for a certificate issued by this CA file (PEM). */
  clientCa?: string;
  /** With clientCa: refuse clients without a valid certificate (else they are served, unauthenticated). */
  requireClientCert?: boolean;
  /**
   * Builds the key operations for the i-th certificate instead of `keys` and `sources`
   * (for programs that embed serve with a key of their own).
   */
  keyFor?: (index: number, certPem: string) => Promise<KeyOperations>;
  /** With keyFor: where those keys live, for the page. */
  keyDescription?: string;
  /** Milliseconds a client has to finish the TLS handshake before it is closed (default 10000). */
  handshakeTimeoutMs?: number;
  /** Client connections open at once; more are closed at accept (default 10000). */
  maxConnections?: number;
  /** Client connections open at once from one IP address (default: no such limit). */
  maxConnectionsPerSource?: number;
  /**
   * Delegated credentials (RFC 9345; --delegated-credentials): each certificate whose key
   * can sign them gets a credential of `validityMs` (default 1 h), renewed before expiry;
   * TLS 1.3 clients that offer them are served without a key-holder call. `log` gets
   * renewal failures and expiries (default: stderr lines).
   */
  delegatedCredentials?: { validityMs?: number; log?: DelegationLog };
}

/** serve's defaults: a connection that does not finish its handshake in time gives its slot back. */
export const SERVE_DEFAULT_LIMITS = { handshakeTimeoutMs: 10_000, maxConnections: 10_000 } as const;

/** One certificate being served, and where its key is. */
export interface ServedCertificate {
  certPath: string;
  keyId: string;
  backend: OpenedKey['backend'] | 'custom';
  describe(): string;
  /** For a key process: its current pid. */
  pid?(): number | undefined;
  /** With delegatedCredentials: whether they are on for this certificate (until when), or why not. */
  delegation?: string;
}

/** A running `serve`. */
export interface RunningServer {
  server: http2.Http2Server & WithTlsAcceptor;
  address: AddressInfo;
  certificates: ServedCertificate[];
  /** The PSK holder, when PSKs are on. */
  psk?: { backend: OpenedPsk['backend']; describe(): string; pid?(): number | undefined };
  /** The keyd-served ticket keys (--ticket-keys-keyd). */
  ticketKeys?: TicketKeyFetcher;
  /** Stops accepting, ends connections (forcibly after `graceMs`), then closes the keys. */
  close(graceMs?: number): Promise<void>;
}

/** Parses --listen: HOST:PORT, [V6]:PORT, or a bare PORT (on 127.0.0.1). */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(listen) ?? /^(\d+)$/.exec(listen);
  if (!m) throw new CliError(`--listen must be HOST:PORT or PORT, got "${listen}"`);
  const port = Number(m[3] ?? m[1]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new CliError(`invalid port in --listen ${listen}`);
  return { host: m[3] ? (m[1] ?? m[2]) : '127.0.0.1', port };
}

/**
 * Reads a certificate chain. In the isolated modes a file that also holds a private key
 * is refused: reading it has put the key in this process, which is what they avoid.
 */
function readCertificate(path: string, isolated: boolean): { pem: string; leaf: X509Certificate } {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (err) {
    throw new CliError(`cannot read certificate file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (isolated && data.includes('PRIVATE KEY-----')) {
    data.fill(0);
    throw new CliError(`${path} holds a private key as well as the certificate: this front must not read the key; give the certificate chain alone`);
  }
  const pem = data.toString('latin1');
  const block = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem);
  if (!block) throw new CliError(`${path} holds no PEM certificate`);
  try {
    return { pem, leaf: new X509Certificate(block[0]) };
  } catch {
    throw new CliError(`${path}: the first certificate does not parse`);
  }
}

/** Loads each certificate with its key, checking they belong together. Closes what it opened when one fails. */
export async function loadCertificates(opts: ServeOptions, sources: KeySources): Promise<{ certificates: CertificateWithKey[]; served: ServedCertificate[]; keys: KeyOperations[] }> {
  if (opts.certs.length === 0 && !opts.psk) throw new CliError('at least one --cert is required (or a PSK source: --psk-keyd, --psk-process --psk-file, --psk-file)');
  const specs = opts.keys ?? [];
  if (!opts.keyFor && specs.length > opts.certs.length) {
    throw new CliError(`more key options (--key, --pkcs11, --keyd-key-id: ${specs.length}) than certificates (--cert: ${opts.certs.length}); the k-th key option goes with the k-th --cert`);
  }
  const isolated = !opts.keyFor && (opts.sources?.keyProcess === true || sources.hasKeyd || specs.some((s) => s !== undefined && s.kind !== 'file') || (opts.psk !== undefined && opts.psk.source.kind !== 'file'));
  const certificates: CertificateWithKey[] = [];
  const served: ServedCertificate[] = [];
  const keys: KeyOperations[] = [];
  try {
    for (let i = 0; i < opts.certs.length; i++) await loadOne(i);
    // Asked for, and possible for none: say why rather than run without them unnoticed.
    if (opts.delegatedCredentials && opts.certs.length > 0 && !certificates.some((c) => c.delegatedCredentials)) {
      throw new CliError(`--delegated-credentials: ${served.map((c) => `${c.certPath}: ${c.delegation ?? ''}`).join('; ')}`);
    }
  } catch (err) {
    // Keys from keyFor are this function's to close; those from `sources` are closed with it.
    if (opts.keyFor) await Promise.allSettled(keys.map((k) => k.close?.()));
    throw err;
  }
  return { certificates, served, keys };

  async function loadOne(i: number): Promise<void> {
    const certPath = opts.certs[i];
    const { pem, leaf } = readCertificate(certPath, isolated);
    let key: KeyOperations;
    let entry: ServedCertificate;
    let opened: OpenedKey | undefined;
    if (opts.keyFor) {
      key = await opts.keyFor(i, pem);
      keys.push(key);
      const description = opts.keyDescription ?? 'held by the program that embeds keyward';
      entry = { certPath, keyId: key.keyId, backend: 'custom', describe: () => description };
    } else {
      opened = await sources.open(certPath, leaf, specs[i]);
      key = opened.key;
      keys.push(key);
      entry = { certPath, keyId: keyIdOf(leaf.publicKey), backend: opened.backend, describe: withProtection(opened.describe, key), ...(opened.pid ? { pid: opened.pid } : {}) };
    }
    try {
      certifiedKey(pem, key);
    } catch (err) {
      const msg = (err as Error).message;
      if (/do not match/.test(msg)) throw new CliError(`the certificate ${certPath} and the key do not match (key: ${entry.describe()})`);
      throw new CliError(`${certPath}: ${msg}`);
    }
    let delegatedCredentials;
    const dc = opts.delegatedCredentials;
    if (dc) {
      const d = await startDelegation(certPath, new Uint8Array(leaf.raw), opened ?? { delegation: customDelegation(key) }, dc.validityMs ?? DEFAULT_DC_VALIDITY_MS, dc.log ?? stderrLog);
      if (d.manager) {
        const m = d.manager;
        sources.onClose(() => m.stop());
        delegatedCredentials = m;
      }
      entry.delegation = d.status;
    }
    certificates.push({ cert: pem, key, ...(delegatedCredentials ? { delegatedCredentials } : {}) });
    served.push(entry);
  }
}

/** A key from keyFor signs delegated credentials when it is an issuer (keyd's RemoteKey, a KeyProcessKey). */
function customDelegation(key: KeyOperations): OpenedKey['delegation'] {
  const issuer = key as Partial<DelegatedCredentialIssuer>;
  return typeof issuer.issueDelegatedCredential === 'function' ? { issuer: issuer as DelegatedCredentialIssuer } : { unavailable: 'the key given by the program does not sign delegated credentials' };
}

/** serve's default log for delegated-credential events: one stderr line each. */
const stderrLog: DelegationLog = (level, message, fields) => process.stderr.write(`keyward: ${level}: ${message} ${JSON.stringify(fields)}\n`);

/** A key process's description says plainly what keeps the front out of its memory (KeyProcessHost.describeProtection). */
function withProtection(describe: () => string, holder: unknown): () => string {
  const p = holder as { describeProtection?: () => string };
  return typeof p.describeProtection === 'function' ? () => `${describe()}; ${p.describeProtection!()}` : describe;
}

/** TLS 1.2 RSA premaster decryption, which an RSA key holder may offer beside signing. */
type DecryptPremaster = (ciphertext: Uint8Array, clientVersion: number, ctx: OperationContext, signal: AbortSignal) => Promise<Uint8Array>;

/**
 * Wraps a key so that the server can tell which key served a connection: `onUse` is
 * called with the connection id of every operation.
 */
function observedKey(key: KeyOperations, onUse: (connectionId: string | undefined) => void): KeyOperations {
  const wrapped: KeyOperations & { decryptPremaster?: DecryptPremaster } = {
    publicKey: key.publicKey,
    schemes: key.schemes,
    keyId: key.keyId,
    sign(scheme: SignatureScheme, message: Uint8Array, ctx: OperationContext, signal: AbortSignal) {
      onUse(ctx.connectionId);
      return key.sign(scheme, message, ctx, signal);
    },
    ...(key.close ? { close: () => key.close!() } : {}),
  };
  const decrypt = (key as { decryptPremaster?: DecryptPremaster }).decryptPremaster?.bind(key);
  if (decrypt) {
    wrapped.decryptPremaster = (ciphertext: Uint8Array, clientVersion: number, ctx: OperationContext, signal: AbortSignal) => {
      onUse(ctx.connectionId);
      return decrypt(ciphertext, clientVersion, ctx, signal);
    };
  }
  // Signatures pass through untouched: a holder whose signatures need no check in the
  // engine (a key in this process, a key process, keyd) keeps that here, or every
  // handshake of `serve` would verify its own signature (~95 µs for P-256).
  if (signaturesVouchedFor(key)) vouchForSignatures(wrapped);
  return wrapped;
}

/** The --client-ca file's certificates. */
function readClientCa(path: string): string {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CliError(`--client-ca ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new CliError(`--client-ca ${path}: no PEM certificate in it`);
  return pem;
}

/** Closes a connection at accept when its address already has `limit.max` open, before the TLS acceptor sees it. */
function limitPerSource(server: NetServer, limit: SourceLimit): void {
  const accept = server.listeners('connection') as ((raw: Socket) => void)[];
  server.removeAllListeners('connection');
  server.on('connection', (raw: Socket) => {
    if (!limit.admit(raw)) {
      raw.destroy();
      return;
    }
    for (const l of accept) l.call(server, raw);
  });
}

/** Runs the HTTPS (and h2) page server; resolves once it is listening. */
export async function serve(opts: ServeOptions): Promise<RunningServer> {
  const { host, port } = parseListen(opts.listen);
  // Checked before any key holder starts: a bad name or version pair is a usage error.
  const tlsChoices = serverTlsChoices({ minVersion: opts.minVersion, maxVersion: opts.maxVersion, groups: opts.groups, ciphers: opts.ciphers });
  const alpn = opts.alpn ?? ['h2', 'http/1.1'];
  const dcValidity = opts.delegatedCredentials && (opts.delegatedCredentials.validityMs ?? DEFAULT_DC_VALIDITY_MS);
  const sources = new KeySources({ ...opts.sources, ...(dcValidity ? { delegatedCredentials: { maxValidityMs: holderMaxValidity(dcValidity) } } : {}) });
  let loaded;
  let psk: OpenedPsk | undefined;
  let ticketKeys: TicketKeyFetcher | undefined;
  try {
    if (opts.psk?.identityHint !== undefined && Buffer.byteLength(opts.psk.identityHint, 'utf8') > 0xffff) throw new CliError('--psk-hint is longer than 65535 bytes');
    loaded = await loadCertificates(opts, sources);
    if (opts.psk) psk = await sources.openPsk(opts.psk.source, opts.psk.unknownIdentity);
    if (opts.sources?.keyd?.ticketKeys) ticketKeys = await sources.openTicketKeys();
  } catch (err) {
    await sources.close();
    throw err;
  }
  const { served } = loaded;

  // Which certificate's key served each connection, so the page can say where that key is.
  const usedBy = new Map<string, number>();
  const certificates = loaded.certificates.map((c, i) => ({
    ...c,
    key: observedKey(c.key, (id) => {
      if (id === undefined) return;
      if (usedBy.size > 100_000) usedBy.clear();
      usedBy.set(id, i);
    }),
  }));
  const describeFor = (connectionId: string | undefined): string => {
    const i = connectionId === undefined ? undefined : usedBy.get(connectionId);
    if (i !== undefined) return served[i].describe();
    // No certificate key was used: a PSK handshake, or a PSK-only server.
    if (psk && (served.length === 0 || connectionId !== undefined)) return psk.describe();
    if (served.length === 1) return served[0].describe();
    return served.map((s) => `${s.certPath}: ${s.describe()}`).join('; ');
  };

  const page = demoPage(describeFor);
  const tlsOptions = {
    certificates,
    handshakeTimeout: opts.handshakeTimeoutMs ?? SERVE_DEFAULT_LIMITS.handshakeTimeoutMs,
    ALPNProtocols: alpn,
    ...(opts.rsaKeyExchange ? { rsaKeyExchange: true } : {}),
    ...tlsChoices,
    ...(opts.clientCa !== undefined ? { requestCert: true, ca: readClientCa(opts.clientCa), rejectUnauthorized: opts.requireClientCert === true } : {}),
    ...(psk ? { psk: { holder: psk.holder, ...(opts.psk?.identityHint !== undefined ? { identityHint: opts.psk.identityHint } : {}) } } : {}),
    ...(psk && opts.psk?.tls13 ? { tls13Psk: { holder: psk.holder, ...opts.psk.tls13 } } : {}),
    ...(ticketKeys ? { ticketKeys: ticketKeys.ring } : {}),
  };
  let server: http2.Http2Server & WithTlsAcceptor;
  try {
    server = (alpn.includes('h2') ? createHttp2SecureServer(tlsOptions, page) : createHttpsServer(tlsOptions, page)) as unknown as http2.Http2Server & WithTlsAcceptor;
  } catch (err) {
    await sources.close();
    throw new CliError(`invalid TLS settings: ${(err as Error).message}`);
  }
  // net.Server closes connections beyond maxConnections at accept; the handshake timeout closes those that never finish.
  server.maxConnections = opts.maxConnections ?? SERVE_DEFAULT_LIMITS.maxConnections;
  if (opts.maxConnectionsPerSource !== undefined) limitPerSource(server, new SourceLimit(opts.maxConnectionsPerSource));
  server.on('secureConnection', (socket: KeywardTLSSocket) => socket.once('close', () => usedBy.delete(socket.connectionId)));
  server.on('tlsClientError', (err: Error, socket: KeywardTLSSocket) => {
    usedBy.delete(socket.connectionId);
    process.stderr.write(`tls: ${err.message}\n`);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => reject(new CliError(`cannot listen on ${host}:${port}: ${err.code ?? err.message}`)));
      server.listen(port, host, () => resolve());
    });
  } catch (err) {
    await sources.close();
    throw err;
  }
  const address = server.address() as AddressInfo;

  let closing: Promise<void> | undefined;
  const close = (graceMs = 2_000): Promise<void> => {
    closing ??= (async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      const timer = setTimeout(() => server.tlsAcceptor.destroyAll(), graceMs);
      await closed;
      clearTimeout(timer);
      await sources.close();
      if (opts.keyFor) await Promise.allSettled(loaded.keys.map((k) => k.close?.()));
    })();
    return closing;
  };
  const pskInfo = psk ? { backend: psk.backend, describe: withProtection(() => psk.describe(), psk.holder), ...(psk.pid ? { pid: psk.pid } : {}) } : undefined;
  return { server, address, certificates: served, ...(pskInfo ? { psk: pskInfo } : {}), ...(ticketKeys ? { ticketKeys } : {}), close };
}
