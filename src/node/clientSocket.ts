import { isIP, connect as netConnect, type Socket } from 'node:net';
import { X509Certificate } from 'node:crypto';
import type { CertificateKey } from '../keys/keyOperations.js';
import { LocalKey } from '../keys/localKey.js';
import { CipherSuite, suiteInfo } from '../tls/crypto/cipherSuites.js';
import { NamedGroup } from '../tls/crypto/groups.js';
import { certifiedKey, type CertifiedKey } from '../tls/engine/certificates.js';
import { resolveClientConfig, type ClientConfig, type ClientConfigInput, type ClientPskConfig, type ClientTls13PskConfig } from '../tls/engine/clientConfig.js';
import { TlsClientConnection } from '../tls/engine/clientConnection.js';
import type { PeerVerdict, PeerVerificationRequest } from '../tls/engine/events.js';
import { AlertDescription } from '../tls/wire/alerts.js';
import { parseClientSession, type ClientSession } from '../tls/resumption/clientSession.js';
import { EngineSocket, type EngineSocketOptions, type TlsHandshakeError } from './engineSocket.js';
import { judgeChain, trustAnchors, type CheckServerIdentity } from './peerVerification.js';

/** Options of {@link connect}, in the spirit of `tls.connect`'s. */
export interface KeywardConnectOptions extends EngineSocketOptions {
  host?: string;
  port?: number;
  /** A connected (or connecting) socket to run TLS over instead of opening one. */
  socket?: Socket;
  /** SNI and the name checked against the certificate; `host` when it is a name (not an IP address). */
  servername?: string;
  /** Trust anchors (PEM, DER or X509Certificate); Node's root store by default. */
  ca?: string | Buffer | X509Certificate | readonly (string | Buffer | X509Certificate)[];
  /** Fail the handshake when the server's chain or name does not verify (default true, as node:tls). */
  rejectUnauthorized?: boolean;
  /** Replaces the host-name check, as in node:tls. */
  checkServerIdentity?: CheckServerIdentity;
  ALPNProtocols?: readonly string[];
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  maxVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** Cipher suites by IANA name (TLS 1.3 and 1.2 together), in preference order. */
  cipherSuites?: readonly string[];
  /** Key-exchange groups by name (X25519MLKEM768, X25519, P-256, P-384, P-521, X448, and for TLS 1.3 ffdhe2048, ffdhe3072, ffdhe4096); a share is sent for the first. */
  groups?: readonly string[];
  /** Client certificate chain (PEM) and its key holder; node:tls's `cert` with a `key` that is a PEM or any KeyOperations. */
  cert?: string | Buffer;
  key?: string | Buffer | CertificateKey;
  /** TLS 1.2 PSK: the PSK stays in the holder (key process, keyd, local). */
  psk?: ClientPskConfig;
  /**
   * TLS 1.3 external PSK: the holder keeps the PSK and runs its key schedule. If the server
   * does not take it and sends a certificate instead, the certificate is verified against
   * `ca`; without `ca` this PSK client accepts no certificate (unless rejectUnauthorized is false).
   */
  tls13Psk?: ClientTls13PskConfig;
  /**
   * A session to resume, as a `session` event or `getSession()` gave it (node:tls's
   * option). It is offered only to the same server name, within its lifetime, and (with
   * rejectUnauthorized) when its server chain still verifies; otherwise a full handshake runs.
   */
  session?: Buffer | Uint8Array;
  /**
   * Offer delegated credentials (RFC 9345): `true` for the TLS 1.3 ECDSA and Ed25519
   * schemes, or a list of SignatureScheme code points. A server's credential is checked as
   * RFC 9345 4.1.3 says; `negotiated.delegatedCredential` tells whether one was used.
   */
  delegatedCredentials?: boolean | readonly number[];
  /** Engine options beyond node:tls's (signature schemes, compatibility mode, ...). */
  engine?: ClientConfigInput;
}

const GROUP_NAMES: Record<string, NamedGroup> = {
  x25519mlkem768: NamedGroup.X25519MLKEM768,
  x25519: NamedGroup.x25519,
  x448: NamedGroup.x448,
  'p-256': NamedGroup.secp256r1,
  prime256v1: NamedGroup.secp256r1,
  secp256r1: NamedGroup.secp256r1,
  'p-384': NamedGroup.secp384r1,
  secp384r1: NamedGroup.secp384r1,
  'p-521': NamedGroup.secp521r1,
  secp521r1: NamedGroup.secp521r1,
  // RFC 7919 finite-field groups: TLS 1.3 key shares only (keyward has no TLS 1.2 DHE suite).
  ffdhe2048: NamedGroup.ffdhe2048,
  ffdhe3072: NamedGroup.ffdhe3072,
  ffdhe4096: NamedGroup.ffdhe4096,
};

/** The group names {@link groupByName} knows, one spelling each, for help texts and errors. */
export const GROUP_NAME_LIST = 'X25519MLKEM768, X25519, X448, P-256, P-384, P-521, ffdhe2048, ffdhe3072, ffdhe4096';

/** NamedGroup of a group name (X25519, P-256, secp384r1, ffdhe2048, ...); throws naming the unknown one. */
export function groupByName(name: string): NamedGroup {
  const g = GROUP_NAMES[name.toLowerCase()];
  if (g === undefined) throw new Error(`unknown group "${name}" (known: ${GROUP_NAME_LIST})`);
  return g;
}

/** CipherSuite of an IANA suite name; throws naming the unknown one. */
export function suiteByName(name: string): CipherSuite {
  const s = (CipherSuite as unknown as Record<string, number>)[name];
  if (typeof s !== 'number' || suiteInfo(s) === undefined) throw new Error(`unknown cipher suite "${name}" (IANA names, e.g. TLS_AES_128_GCM_SHA256)`);
  return s;
}

/** Builds the client engine configuration from connect options. */
export function clientConfigFrom(options: KeywardConnectOptions): ClientConfig {
  const host = options.host ?? 'localhost';
  const serverName = options.servername ?? (isIP(host) === 0 ? host : undefined);
  let certificate: CertifiedKey | undefined;
  if (options.cert !== undefined || options.key !== undefined) {
    if (options.cert === undefined || options.key === undefined) throw new Error('a client certificate needs both cert and key');
    const key = typeof options.key === 'string' || Buffer.isBuffer(options.key) ? new LocalKey(options.key) : options.key;
    certificate = certifiedKey(options.cert, key);
  }
  const session = options.session === undefined ? undefined : parseClientSession(options.session);
  const suites = options.cipherSuites?.map(suiteByName);
  const tls13 = suites?.filter((s) => suiteInfo(s)!.version === 'TLSv1.3');
  const tls12 = suites?.filter((s) => suiteInfo(s)!.version === 'TLSv1.2');
  // Suites of one version only: offer that version only.
  const onlyVersion = tls13 && tls12 && (tls12.length === 0 ? 'TLSv1.3' : tls13.length === 0 ? 'TLSv1.2' : undefined);
  return resolveClientConfig({
    serverName: serverName === '' ? undefined : serverName,
    alpnProtocols: options.ALPNProtocols,
    minVersion: options.minVersion ?? (onlyVersion === 'TLSv1.3' ? 'TLSv1.3' : undefined),
    maxVersion: options.maxVersion ?? (onlyVersion === 'TLSv1.2' ? 'TLSv1.2' : undefined),
    tls13CipherSuites: tls13,
    tls12CipherSuites: tls12,
    groups: options.groups?.map(groupByName),
    certificate,
    psk: options.psk,
    tls13Psk: options.tls13Psk,
    session: session && (options.rejectUnauthorized === false || sessionChainVerifies(session, serverName ?? host, options)) ? session : undefined,
    delegatedCredentials: options.delegatedCredentials,
    ...options.engine,
  });
}

/** The chain a resumed handshake would rely on, judged as the full handshake would judge the server's. */
function judgeSessionChain(session: ClientSession, hostname: string, options: KeywardConnectOptions, rejectUnauthorized: boolean) {
  const ca = options.ca === undefined ? undefined : trustAnchors(options.ca);
  const chain = session.peerCertificates.map((der) => new X509Certificate(der));
  return judgeChain(chain, { ca, purpose: 'serverAuth', hostname, checkServerIdentity: options.checkServerIdentity }, rejectUnauthorized);
}

function sessionChainVerifies(session: ClientSession, hostname: string, options: KeywardConnectOptions): boolean {
  try {
    return judgeSessionChain(session, hostname, options, true).authorized;
  } catch {
    return false;
  }
}

/**
 * A client-side TLS socket, shaped like the `tls.TLSSocket` that `tls.connect` returns:
 * 'secureConnect' once the handshake is done, `authorized`/`authorizationError` as
 * node:tls sets them, 'error' when the handshake fails (with the alert we sent or got).
 * The client's CertificateVerify and PSK master secret are key operations, so the client
 * key and PSK can stay in a key holder.
 */
export class KeywardClientSocket extends EngineSocket {
  /** The name sent as SNI, false when none. */
  readonly servername: string | false;
  private readonly anchors?: X509Certificate[];

  constructor(
    rawSocket: Socket,
    readonly config: ClientConfig,
    private readonly options: KeywardConnectOptions,
  ) {
    const connectionId = EngineSocket.newConnectionId();
    super(rawSocket, new TlsClientConnection(config, { connectionId }), options, connectionId);
    this.servername = config.serverName ?? false;
    if (options.ca !== undefined) this.anchors = trustAnchors(options.ca);
    rawSocket.on('connect', () => this.emit('connect'));
    this.startEngine();
  }

  /** Whether the TCP connection is still being made. */
  get connecting(): boolean {
    return this.rawSocket.connecting;
  }
  get remoteAddress() {
    return this.rawSocket.remoteAddress;
  }
  get remotePort() {
    return this.rawSocket.remotePort;
  }
  get remoteFamily() {
    return this.rawSocket.remoteFamily;
  }

  protected onSecure(): void {
    // A resumed session's chain was verified when it was offered; say so as node:tls does.
    if (this.isSessionReused() && this.config.session) {
      const r = judgeSessionChain(this.config.session, this.config.serverName ?? this.options.host ?? 'localhost', this.options, false);
      this.authorized = r.authorized;
      this.authorizationError = r.authorizationError;
    }
    this.emit('secureConnect');
  }

  protected onHandshakeFailure(err: TlsHandshakeError): void {
    // As node:tls: a failed client handshake is the socket's 'error'.
    this.destroy(err);
  }

  protected judgePeer(_req: PeerVerificationRequest): PeerVerdict {
    // A PSK client without trust anchors: the server did not take the PSK, and no certificate can stand in for it.
    if (this.config.tls13Psk && this.options.ca === undefined && this.options.rejectUnauthorized !== false) {
      this.authorized = false;
      const reason = 'the server did not take the PSK and sent a certificate, and this PSK client has no trust anchors (ca)';
      this.authorizationError = new Error(reason);
      return { ok: false, alert: AlertDescription.handshake_failure, reason };
    }
    const host = this.config.serverName ?? this.options.host ?? 'localhost';
    const r = judgeChain(
      this.peerChain,
      { ca: this.anchors, purpose: 'serverAuth', hostname: host, checkServerIdentity: this.options.checkServerIdentity },
      this.options.rejectUnauthorized !== false,
    );
    this.authorized = r.authorized;
    this.authorizationError = r.authorizationError;
    return r.verdict;
  }
}

/**
 * `tls.connect` for keyward: opens a TCP connection (or uses `options.socket`) and runs
 * the TLS handshake over it. Usable as `createConnection` for `https.request`, an
 * `https.Agent` and `ws`.
 */
export function connect(options: KeywardConnectOptions, secureConnectListener?: () => void): KeywardClientSocket;
export function connect(port: number, host?: string, options?: KeywardConnectOptions, secureConnectListener?: () => void): KeywardClientSocket;
export function connect(port: number, options?: KeywardConnectOptions, secureConnectListener?: () => void): KeywardClientSocket;
export function connect(
  a: number | KeywardConnectOptions,
  b?: string | KeywardConnectOptions | (() => void),
  c?: KeywardConnectOptions | (() => void),
  d?: () => void,
): KeywardClientSocket {
  let options: KeywardConnectOptions;
  let listener: (() => void) | undefined;
  if (typeof a === 'number') {
    if (typeof b === 'string') {
      options = { ...(typeof c === 'object' ? c : {}), port: a, host: b };
      listener = typeof c === 'function' ? c : d;
    } else {
      options = { ...(typeof b === 'object' ? b : {}), port: a };
      listener = typeof b === 'function' ? b : (c as (() => void) | undefined);
    }
  } else {
    options = a;
    listener = typeof b === 'function' ? b : undefined;
  }
  const config = clientConfigFrom(options);
  const raw = options.socket ?? netConnect({ host: options.host ?? 'localhost', port: options.port ?? 443 });
  const socket = new KeywardClientSocket(raw, config, options);
  if (listener) socket.once('secureConnect', listener);
  return socket;
}
