/**
 * Interop helpers around the keyward server: an echo server that records what each
 * connection negotiated (server side), a TCP proxy that captures the raw TLS records in
 * both directions, a small independent parser for the plaintext handshake messages it
 * sees, and the tables that name every suite, group and key type in each peer's spelling.
 *
 * Everything listens on 127.0.0.1 port 0 and is stopped by `close()`; every wait is bounded.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before } from 'node:test';
import { LocalKey } from '../../src/keys/localKey.js';
import { CipherSuite } from '../../src/tls/crypto/cipherSuites.js';
import { NamedGroup } from '../../src/tls/crypto/groups.js';
import { SignatureScheme } from '../../src/tls/crypto/signatureSchemes.js';
import type { NegotiatedInfo } from '../../src/tls/engine/events.js';
import { createServer, type CertificateWithKey, type KeywardServer, type KeywardServerOptions } from '../../src/node/server.js';
import { TlsHandshakeError, type CipherInfo, type KeywardTLSSocket } from '../../src/node/tlsSocket.js';
import { parseClientHello as parseWireClientHello } from '../../src/tls/wire/clientHello.js';
import { HRR_RANDOM } from '../../src/tls/wire/constants.js';
import type { Extension } from '../../src/tls/wire/extensions.js';
import { parseServerHello as parseWireServerHello } from '../../src/tls/wire/serverHello.js';
import { getPki, KEY_TYPES, type CertFiles, type KeyType, type PkiFixtures } from './pki.js';

// ---------------------------------------------------------------------------------------
// Names of every negotiable value, per peer

/** A TLS 1.3 cipher suite under the names each peer uses. */
export interface SuiteNames {
  suite: CipherSuite;
  /** IANA / OpenSSL / node name. */
  name: string;
  /** GnuTLS cipher name (priority `+NAME`, printed in "- Description:"). */
  gnutls: string;
}

export const SUITES: readonly SuiteNames[] = [
  { suite: CipherSuite.TLS_AES_128_GCM_SHA256, name: 'TLS_AES_128_GCM_SHA256', gnutls: 'AES-128-GCM' },
  { suite: CipherSuite.TLS_AES_256_GCM_SHA384, name: 'TLS_AES_256_GCM_SHA384', gnutls: 'AES-256-GCM' },
  { suite: CipherSuite.TLS_CHACHA20_POLY1305_SHA256, name: 'TLS_CHACHA20_POLY1305_SHA256', gnutls: 'CHACHA20-POLY1305' },
];

/** A key-exchange group under the names each peer uses. */
export interface GroupNames {
  group: NamedGroup;
  /** openssl `-groups` name, also what parseOpensslOutput/parseGnutlsOutput report. */
  openssl: string;
  /** GnuTLS priority keyword. */
  gnutls: string;
  /** Python `set_ecdh_curve` name. */
  python: string;
  /** node `ecdhCurve` name. */
  node: string;
  /** node `getEphemeralKeyInfo().name` on the client. */
  nodeEphemeral: string;
}

export const GROUPS: readonly GroupNames[] = [
  { group: NamedGroup.x25519, openssl: 'X25519', gnutls: 'GROUP-X25519', python: 'X25519', node: 'X25519', nodeEphemeral: 'X25519' },
  { group: NamedGroup.secp256r1, openssl: 'P-256', gnutls: 'GROUP-SECP256R1', python: 'prime256v1', node: 'P-256', nodeEphemeral: 'prime256v1' },
  { group: NamedGroup.secp384r1, openssl: 'P-384', gnutls: 'GROUP-SECP384R1', python: 'secp384r1', node: 'P-384', nodeEphemeral: 'secp384r1' },
  { group: NamedGroup.x448, openssl: 'X448', gnutls: 'GROUP-X448', python: 'X448', node: 'X448', nodeEphemeral: 'X448' },
];

/** What a certificate key type signs with by default, in each peer's words. */
export interface KeyTypeNames {
  keyType: KeyType;
  /** The scheme the server uses when the client accepts every scheme. */
  scheme: SignatureScheme;
  /** s_client "Peer signature type" (OpenSSL 3.0 prints Ed25519 in lower case). */
  opensslType: string;
  /** s_client "Peer signing digest" (absent for Ed25519). */
  opensslDigest?: string;
  /** GnuTLS signature in "- Description:". */
  gnutls: string;
  /** GnuTLS priority keyword that allows only this scheme. */
  gnutlsSign: string;
}

export const KEY_TYPE_NAMES: Readonly<Record<KeyType, KeyTypeNames>> = {
  'ecdsa-p256': {
    keyType: 'ecdsa-p256',
    scheme: SignatureScheme.ecdsa_secp256r1_sha256,
    opensslType: 'ECDSA',
    opensslDigest: 'SHA256',
    gnutls: 'ECDSA-SECP256R1-SHA256',
    gnutlsSign: 'SIGN-ECDSA-SECP256R1-SHA256',
  },
  'ecdsa-p384': {
    keyType: 'ecdsa-p384',
    scheme: SignatureScheme.ecdsa_secp384r1_sha384,
    opensslType: 'ECDSA',
    opensslDigest: 'SHA384',
    gnutls: 'ECDSA-SECP384R1-SHA384',
    gnutlsSign: 'SIGN-ECDSA-SECP384R1-SHA384',
  },
  'rsa-2048': {
    keyType: 'rsa-2048',
    scheme: SignatureScheme.rsa_pss_rsae_sha256,
    opensslType: 'RSA-PSS',
    opensslDigest: 'SHA256',
    gnutls: 'RSA-PSS-RSAE-SHA256',
    gnutlsSign: 'SIGN-RSA-PSS-RSAE-SHA256',
  },
  ed25519: {
    keyType: 'ed25519',
    scheme: SignatureScheme.ed25519,
    opensslType: 'ed25519',
    gnutls: 'EdDSA-Ed25519',
    gnutlsSign: 'SIGN-EDDSA-ED25519',
  },
};

// ---------------------------------------------------------------------------------------
// Certificates and the echo server

/** A string no other test sends: `label-` and 12 random hex digits, to find one exchange in a peer's output. */
export function token(label: string): string {
  return `${label}-${randomBytes(6).toString('hex')}`;
}

/** A fixture chain with an in-process key, optionally served under other names. */
export function certificate(files: CertFiles, names?: string[]): CertificateWithKey {
  return { cert: files.chainPem, key: new LocalKey(files.keyPem), names };
}

/** What the server saw of one established connection. */
export interface ServerSession {
  socket: KeywardTLSSocket;
  protocol: string | null;
  cipher?: CipherInfo;
  /** Copy of `socket.negotiated` taken at `secureConnection`. */
  negotiated: NegotiatedInfo;
  alpnProtocol: string | false;
  servername: string | false;
  /** Application data received so far (the echo sends the same bytes back). */
  received: Buffer[];
  /** Error the socket emitted after the handshake, if any. */
  error?: Error;
  closed: boolean;
}

/** A failed handshake, from `tlsClientError`. */
export interface ServerClientError {
  error: Error;
  /** Alert the server sent, e.g. 70 for protocol_version. */
  alertSent?: number;
  alertReceived?: number;
}

/** Position in a server's history, from {@link EchoServer.mark}. */
export interface Mark {
  sessions: number;
  errors: number;
}

export interface EchoServer {
  server: KeywardServer;
  port: number;
  sessions: ServerSession[];
  errors: ServerClientError[];
  /** Where the history stands now; pass it to {@link EchoServer.since}. */
  mark(): Mark;
  /** Sessions and handshake errors after `mark`. */
  since(mark: Mark): { sessions: ServerSession[]; errors: ServerClientError[] };
  close(): Promise<void>;
}

export interface EchoServerHooks {
  /** Called with each chunk before it is echoed (e.g. to start a KeyUpdate first). */
  onData?: (socket: KeywardTLSSocket, chunk: Buffer) => void;
}

/** Default handshake timeout of test servers: a stuck handshake fails fast. */
const TEST_HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * Starts a keyward server on 127.0.0.1:0 that echoes every byte back on the same
 * connection and ends its side when the client ends.
 */
export function startEchoServer(options: KeywardServerOptions, hooks: EchoServerHooks = {}): Promise<EchoServer> {
  const sessions: ServerSession[] = [];
  const errors: ServerClientError[] = [];
  const server = createServer({ handshakeTimeout: TEST_HANDSHAKE_TIMEOUT_MS, ...options }, (socket) => {
    const session: ServerSession = {
      socket,
      protocol: socket.getProtocol(),
      cipher: socket.getCipher(),
      negotiated: { ...socket.negotiated },
      alpnProtocol: socket.alpnProtocol,
      servername: socket.servername,
      received: [],
      closed: false,
    };
    sessions.push(session);
    socket.on('data', (chunk: Buffer) => {
      session.received.push(chunk);
      hooks.onData?.(socket, chunk);
      socket.write(chunk);
    });
    socket.on('end', () => socket.end());
    socket.on('error', (err: Error) => {
      session.error ??= err;
    });
    socket.on('close', () => {
      session.closed = true;
    });
  });
  server.on('tlsClientError', (error: Error) => {
    const e: ServerClientError = { error };
    if (error instanceof TlsHandshakeError) {
      e.alertSent = error.alertSent;
      e.alertReceived = error.alertReceived;
    }
    errors.push(e);
  });
  return listen(server).then((port) => ({
    server,
    port,
    sessions,
    errors,
    mark: () => ({ sessions: sessions.length, errors: errors.length }),
    since: (m: Mark) => ({ sessions: sessions.slice(m.sessions), errors: errors.slice(m.errors) }),
    close: () => closeServer(server, () => server.closeAllConnections()),
  }));
}

/** One echo server per certificate key type, shared by the tests of a file. */
export interface EchoServersByKeyType {
  /** The server presenting the fixture certificate of key type `kt`. */
  get(kt: KeyType): EchoServer;
  /** Stops every server. */
  close(): Promise<void>;
}

/**
 * Starts one echo server per key type of {@link KEY_TYPES}, each with that type's fixture
 * certificate and `options`; if one fails to start, those already started are stopped.
 */
export async function startEchoServersByKeyType(pki: PkiFixtures, options: Omit<KeywardServerOptions, 'certificates'> = {}): Promise<EchoServersByKeyType> {
  const servers = new Map<KeyType, EchoServer>();
  const close = async (): Promise<void> => {
    for (const s of servers.values()) await s.close();
  };
  try {
    for (const kt of KEY_TYPES) servers.set(kt, await startEchoServer({ ...options, certificates: [certificate(pki.server[kt])] }));
  } catch (err) {
    await close();
    throw err;
  }
  return {
    get(kt) {
      const s = servers.get(kt);
      if (!s) throw new Error(`no server for ${kt}`);
      return s;
    },
    close,
  };
}

/**
 * For a test file: registers before/after hooks that load the fixture PKI (handed to
 * `onPki`) and start one echo server per key type; returns the lookup by key type.
 */
export function echoServersPerKeyType(onPki: (pki: PkiFixtures) => void, options: Omit<KeywardServerOptions, 'certificates'> = {}): (kt: KeyType) => EchoServer {
  let servers: EchoServersByKeyType | undefined;
  before(async () => {
    const pki = await getPki();
    onPki(pki);
    servers = await startEchoServersByKeyType(pki, options);
  });
  after(() => servers?.close());
  return (kt) => {
    if (!servers) throw new Error('the echo servers did not start');
    return servers.get(kt);
  };
}

/** Listens on 127.0.0.1:0 and resolves with the port. */
export function listen(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

/** Closes a server, ending open connections with `destroyAll`, bounded at 5 s. */
export function closeServer(server: net.Server, destroyAll: () => void): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 5_000);
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    destroyAll();
  });
}

/** Polls `check` every 10 ms until it is true; rejects naming `what` after `timeoutMs`. */
export async function waitUntil(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// ---------------------------------------------------------------------------------------
// Record-capturing proxy

/** Record content types (RFC 8446 5.1). */
export const ContentType = { change_cipher_spec: 20, alert: 21, handshake: 22, application_data: 23 } as const;

/** One TLSPlaintext/TLSCiphertext record as seen on the wire. */
export interface WireRecord {
  type: number;
  version: number;
  /** The header's length field. */
  length: number;
  fragment: Buffer;
}

/** Splits a byte stream into records; an incomplete tail is reported, not parsed. */
export function parseRecords(stream: Buffer): { records: WireRecord[]; trailingBytes: number } {
  const records: WireRecord[] = [];
  let off = 0;
  while (stream.length - off >= 5) {
    const length = stream.readUInt16BE(off + 3);
    if (stream.length - off - 5 < length) break;
    records.push({ type: stream[off], version: stream.readUInt16BE(off + 1), length, fragment: stream.subarray(off + 5, off + 5 + length) });
    off += 5 + length;
  }
  return { records, trailingBytes: stream.length - off };
}

/** One client connection through the proxy. */
export interface ProxiedConnection {
  /** Bytes the client sent, in order. */
  fromClient(): Buffer;
  /** Bytes the server sent, in order. */
  fromServer(): Buffer;
  clientRecords(): WireRecord[];
  serverRecords(): WireRecord[];
  /** True once both sides are closed. */
  closed: boolean;
}

export interface RecordProxy {
  port: number;
  connections: ProxiedConnection[];
  close(): Promise<void>;
}

/**
 * A TCP proxy on 127.0.0.1:0 in front of `targetPort` that forwards bytes unchanged and
 * keeps a copy of each direction, so tests can check record sizes, ChangeCipherSpec and
 * handshake messages as the peer really saw them.
 */
export function startRecordProxy(targetPort: number): Promise<RecordProxy> {
  const connections: ProxiedConnection[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const c2s: Buffer[] = [];
    const s2c: Buffer[] = [];
    const upstream = net.connect(targetPort, '127.0.0.1');
    let open = 2;
    const conn: ProxiedConnection = {
      fromClient: () => Buffer.concat(c2s),
      fromServer: () => Buffer.concat(s2c),
      clientRecords: () => parseRecords(Buffer.concat(c2s)).records,
      serverRecords: () => parseRecords(Buffer.concat(s2c)).records,
      closed: false,
    };
    connections.push(conn);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => {
        sockets.delete(s);
        if (--open === 0) conn.closed = true;
      });
    }
    client.on('data', (d: Buffer) => {
      c2s.push(d);
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      s2c.push(d);
      client.write(d);
    });
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  return listen(server).then((port) => ({
    port,
    connections,
    close: () =>
      closeServer(server, () => {
        for (const s of sockets) s.destroy();
      }),
  }));
}

// ---------------------------------------------------------------------------------------
// Plaintext handshake messages (ClientHello, ServerHello), read with the wire parsers

/** A handshake message from the plaintext records of one direction. */
export interface HandshakeMessage {
  type: number;
  body: Buffer;
}

export { HandshakeType } from '../../src/tls/wire/constants.js';

/**
 * The handshake messages carried by the unencrypted handshake records (type 22) of one
 * direction: in TLS 1.3 these are the ClientHellos or the ServerHello/HelloRetryRequest.
 */
export function plaintextHandshakes(records: readonly WireRecord[]): HandshakeMessage[] {
  const data = Buffer.concat(records.filter((r) => r.type === ContentType.handshake).map((r) => r.fragment));
  const out: HandshakeMessage[] = [];
  let off = 0;
  while (data.length - off >= 4) {
    const len = data.readUIntBE(off + 1, 3);
    if (data.length - off - 4 < len) break;
    out.push({ type: data[off], body: data.subarray(off + 4, off + 4 + len) });
    off += 4 + len;
  }
  return out;
}

/** The parts of a Client/ServerHello the interop tests look at. */
export interface Hello {
  legacyVersion: number;
  random: Buffer;
  sessionId: Buffer;
  /** ClientHello: offered suites; ServerHello: the chosen one. */
  cipherSuites: number[];
  extensions: Map<number, Buffer>;
  /** ClientHello: the groups it sent shares for; ServerHello: its share's group; HelloRetryRequest: the group asked for. */
  keyShareGroups: number[];
  recordSizeLimit: number | undefined;
}

/** RFC 8446 4.1.3: the ServerHello.random that marks a HelloRetryRequest. */
export const HELLO_RETRY_RANDOM = HRR_RANDOM;

function extensionMap(exts: readonly Extension[]): Map<number, Buffer> {
  return new Map(exts.map((e) => [e.type, Buffer.from(e.data)]));
}

export function parseClientHello(body: Buffer): Hello {
  const ch = parseWireClientHello(body);
  return {
    legacyVersion: ch.legacyVersion,
    random: Buffer.from(ch.random),
    sessionId: Buffer.from(ch.sessionId),
    cipherSuites: [...ch.cipherSuites],
    extensions: extensionMap(ch.extensions),
    keyShareGroups: ch.keyShares?.map((s) => s.group) ?? [],
    recordSizeLimit: ch.recordSizeLimit,
  };
}

export function parseServerHello(body: Buffer): Hello {
  const sh = parseWireServerHello(body);
  return {
    legacyVersion: sh.legacyVersion,
    random: Buffer.from(sh.random),
    sessionId: Buffer.from(sh.sessionId),
    cipherSuites: [sh.cipherSuite],
    extensions: extensionMap(sh.extensions),
    keyShareGroups: sh.selectedGroup !== undefined ? [sh.selectedGroup] : sh.keyShare ? [sh.keyShare.group] : [],
    recordSizeLimit: sh.recordSizeLimit,
  };
}

/** Groups a ClientHello sent key shares for. */
export function keyShareGroups(hello: Hello): number[] {
  return hello.keyShareGroups;
}

/** The group a ServerHello's key_share names (for a HelloRetryRequest, the group asked for). */
export function serverKeyShareGroup(hello: Hello): number | undefined {
  return hello.keyShareGroups[0];
}

/** The record_size_limit value a hello carries, if any. */
export function recordSizeLimit(hello: Hello): number | undefined {
  return hello.recordSizeLimit;
}

// ---------------------------------------------------------------------------------------
// Diagnostics

/** The end of a peer run's output, for assertion messages. */
export function describeRun(run: { stdout: string; stderr: string; code?: number | null; timedOut?: boolean }, max = 1500): string {
  const tail = (s: string) => (s.length > max ? `...${s.slice(-max)}` : s);
  return `exit=${String(run.code)} timedOut=${String(run.timedOut)}\n--- stdout ---\n${tail(run.stdout)}\n--- stderr ---\n${tail(run.stderr)}`;
}

/** Exactly one session since `mark`, else an error naming what the server saw instead. */
export function onlySession(server: EchoServer, mark: Mark): ServerSession {
  const { sessions, errors } = server.since(mark);
  if (sessions.length !== 1) {
    const errs = errors.map((e) => `${e.error.message} (sent ${String(e.alertSent)}, received ${String(e.alertReceived)})`).join('; ');
    throw new Error(`expected one established session on the server, saw ${sessions.length}; handshake errors: ${errs || 'none'}`);
  }
  return sessions[0];
}

/** All bytes a session received, as text. */
export function receivedText(session: ServerSession): string {
  return Buffer.concat(session.received).toString('utf8');
}
