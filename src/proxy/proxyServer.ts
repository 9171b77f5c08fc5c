/**
 * keyward proxy: terminates TLS with the keyward engine (the private keys stay in their
 * key holders) and relays the plaintext to a TCP or Unix-socket upstream, chosen by SNI.
 *
 * A "generation" is everything a reload can change: certificates and their keys, TLS
 * options, upstreams, PROXY protocol, limits. `reload` swaps it for new connections; open
 * connections keep the one they started with, and a generation's key holders are released
 * once no handshake of its own is still running.
 *
 * Client mode (a {@link ProxyClientGeneration}) is the same host the other way round:
 * plaintext accepted locally, TLS toward one target through `connect()`, the client
 * certificate's key and the PSK in their key holders behind the same gate, limits, logs
 * and metrics.
 */
import { Server as NetServer, createConnection, type AddressInfo, type Socket } from 'node:net';
import type { Server as HttpServer } from 'node:http';
import type { Logger } from 'pino';
import type { CertificateKey, KeyOperations, PskOperations, Tls13PskOperations } from '../keys/keyOperations.js';
import { clientConfigFrom, connect, type KeywardClientSocket, type KeywardConnectOptions } from '../node/clientSocket.js';
import type { EngineSocket } from '../node/engineSocket.js';
import { tlsAcceptorFrom, type KeywardServerOptions } from '../node/server.js';
import type { TlsAcceptor } from '../node/acceptor.js';
import type { KeywardTLSSocket, TlsHandshakeError } from '../node/tlsSocket.js';
import { groupName } from '../tls/crypto/groups.js';
import { schemeName } from '../tls/crypto/signatureSchemes.js';
import type { DelegatedCredentialSource } from '../tls/engine/certificates.js';
import { clearStaleSocket, formatEndpoint, type Endpoint } from './endpoint.js';
import { KeyOperationGate } from './keyGate.js';
import { ProxyMetrics, startMetricsListener } from './metrics.js';
import { encodeProxyV2 } from './proxyProtocol.js';
import { relay, type Relay, type RelayOutcome } from './relay.js';
import { UpstreamRoutes } from './routes.js';
import { SourceLimit } from './sourceLimit.js';

/** Limits of one proxy; every wait has one. */
export interface ProxyLimits {
  /** Milliseconds a client has to finish the TLS handshake (default 10000). */
  handshakeTimeoutMs: number;
  /** Milliseconds without traffic after which a relayed connection is closed; 0 disables (default 300000). */
  idleTimeoutMs: number;
  /** Client connections open at once; more are closed at accept (default 10000). */
  maxConnections: number;
  /** Client connections open at once from one IP address; 0: no such limit (the default). */
  maxConnectionsPerSource: number;
  /** Key operations running in key holders at once (default 64). */
  maxPendingKeyOps: number;
  /** Key operations waiting for a slot; more fail their handshake at once (default 1024). */
  maxQueuedKeyOps: number;
  /** Milliseconds to connect to the upstream (default 5000). */
  upstreamConnectTimeoutMs: number;
  /** Milliseconds open connections get to finish on stop before they are cut (default 10000). */
  shutdownGraceMs: number;
}

export const DEFAULT_PROXY_LIMITS: Readonly<ProxyLimits> = {
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 300_000,
  maxConnections: 10_000,
  maxConnectionsPerSource: 0,
  maxPendingKeyOps: 64,
  maxQueuedKeyOps: 1024,
  upstreamConnectTimeoutMs: 5_000,
  shutdownGraceMs: 10_000,
};

/** A certificate chain, its key, and what the metrics call the key's holder. */
export interface ProxyCertificate {
  cert: string | Buffer;
  key: KeyOperations;
  /** 'keyd', 'key-process', 'pkcs11', 'local', ... */
  holder: string;
  names?: string[];
  /** Delegated credentials signed by `key`'s holder (RFC 9345), served to TLS 1.3 clients that offer them. */
  delegatedCredentials?: DelegatedCredentialSource;
}

/** Everything a reload can change. */
export interface ProxyGeneration {
  certificates: ProxyCertificate[];
  /**
   * TLS 1.2 PSK suites, the PSKs in `holder`; with `tls13`, TLS 1.3 external PSKs too, their
   * key schedule run by the same holder (its hash, the identities taken, psk_ke allowed).
   */
  psk?: {
    holder: PskOperations & Partial<Tls13PskOperations>;
    label: string;
    identityHint?: string;
    tls13?: { hash?: 'sha256' | 'sha384'; identities?: readonly string[]; allowPskOnly?: boolean };
  };
  /** Engine options (ALPN, versions, suites, groups, ...). */
  tls?: Omit<KeywardServerOptions, 'certificates' | 'psk' | 'tls13Psk' | 'handshakeTimeout' | 'allowHalfOpen'>;
  upstream: Endpoint;
  /** Server name (exact or `*.domain`) to upstream; others go to `upstream`. */
  routes?: Readonly<Record<string, Endpoint>>;
  /** Write a PROXY protocol v2 header first on each upstream connection. */
  proxyProtocol?: boolean;
  limits?: Partial<ProxyLimits>;
  /** Releases this generation's key holders; called once none of its handshakes runs. */
  release?: () => Promise<void>;
}

/** Client mode: what a reload can change. Plaintext in, TLS out to `target`. */
export interface ProxyClientGeneration {
  target: { host: string; port: number };
  /** connect()'s options: servername, ca, ALPNProtocols, versions, suites, groups, rejectUnauthorized. */
  tls?: Omit<KeywardConnectOptions, 'host' | 'port' | 'socket' | 'handshakeTimeout' | 'allowHalfOpen' | 'cert' | 'key' | 'psk' | 'tls13Psk'>;
  /** The client certificate, its key in `holder` (named as in the metrics). */
  certificate?: { cert: string | Buffer; key: CertificateKey; holder: string };
  /**
   * A PSK: the identity sent, the key in `holder`; offered with TLS 1.2 PSK suites unless
   * `tls12` is false, and as a TLS 1.3 external PSK with `tls13` (its hash; psk_ke only).
   */
  psk?: {
    holder: PskOperations & Partial<Tls13PskOperations>;
    label: string;
    identity: string;
    tls12?: boolean;
    tls13?: { hash?: 'sha256' | 'sha384'; keyExchange?: 'psk_dhe_ke' | 'psk_ke' };
  };
  limits?: Partial<ProxyLimits>;
  release?: () => Promise<void>;
}

/** Options fixed for the proxy's life. */
export interface ProxyOptions {
  /** Where to listen: TCP (port 0 picks one) or a Unix socket. */
  listen: Endpoint;
  /** Serve Prometheus metrics on this address. */
  metricsListen?: { host: string; port: number };
  /** Access log and events (pino). */
  logger: Logger;
}

/** TLS in, plaintext out. */
interface TerminatingSide {
  kind: 'terminate';
  acceptor: TlsAcceptor;
  routes: UpstreamRoutes;
  proxyProtocol: boolean;
}

/** Plaintext in, TLS out. */
interface OriginatingSide {
  kind: 'originate';
  target: Endpoint & { kind: 'tcp' };
  /** connect()'s options, the keys wrapped by the gate (the socket and timeout added per connection). */
  options: KeywardConnectOptions;
}

interface Generation {
  side: TerminatingSide | OriginatingSide;
  limits: ProxyLimits;
  /** Handshakes of this generation still running. */
  handshaking: number;
  retired: boolean;
  released: boolean;
  release: () => Promise<void>;
}

interface Connection {
  relay?: Relay;
  /** Closes it now (before the relay runs). */
  destroy(): void;
}

/** A running proxy. */
export class KeywardProxy {
  readonly metrics: ProxyMetrics;
  readonly gate: KeyOperationGate;
  readonly #opts: ProxyOptions;
  readonly #server = new NetServer({ allowHalfOpen: true, pauseOnConnect: false });
  readonly #connections = new Set<Connection>();
  /** Which key holder answered for a connection (set by the gate's reports). */
  readonly #holderOf = new Map<string, string>();
  /** The PSK identity a connection's key operations named (kept for the access line of a handshake that failed there). */
  readonly #pskIdentityOf = new Map<string, string>();
  /** Ids of the TLS connections open now: the two maps above keep entries for these only. */
  readonly #openIds = new Set<string>();
  #current: Generation;
  #metricsServer: HttpServer | undefined;
  #metricsAddress: AddressInfo | undefined;
  #stopping: Promise<void> | undefined;
  #lastRefusalLog = 0;
  /** Open connections by client IP address (with maxConnectionsPerSource; a reload changing the limit starts a new count). */
  #perSource: SourceLimit | undefined;

  constructor(opts: ProxyOptions, generation: ProxyGeneration | ProxyClientGeneration) {
    this.#opts = opts;
    const limits = { ...DEFAULT_PROXY_LIMITS, ...generation.limits };
    this.gate = new KeyOperationGate(limits.maxPendingKeyOps, limits.maxQueuedKeyOps, (r) => {
      this.metrics.keyOperation(r);
      // A report that comes after its connection closed (an operation cut short) is not kept.
      if (!r.connectionId || !this.#openIds.has(r.connectionId)) return;
      this.#holderOf.set(r.connectionId, r.holder);
      if (r.pskIdentity !== undefined) this.#pskIdentityOf.set(r.connectionId, r.pskIdentity.slice(0, MAX_PROXY_PSK_IDENTITY));
    });
    this.metrics = new ProxyMetrics({ keyGateState: () => ({ running: this.gate.running, queued: this.gate.queued }) });
    this.#current = this.#build(generation);
    this.#server.on('connection', (raw) => this.#onConnection(raw));
  }

  /** Starts listening (and the metrics listener); resolves with the addresses. */
  async listen(): Promise<{ address: AddressInfo | string; metrics?: AddressInfo }> {
    const l = this.#opts.listen;
    if (l.kind === 'unix') await clearStaleSocket(l.path);
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      const done = () => {
        this.#server.off('error', reject);
        resolve();
      };
      if (l.kind === 'unix') this.#server.listen(l.path, done);
      else this.#server.listen(l.port, l.host, done);
    });
    if (this.#opts.metricsListen) {
      try {
        const m = await startMetricsListener(this.metrics.registry, this.#opts.metricsListen.host, this.#opts.metricsListen.port);
        this.#metricsServer = m.server;
        this.#metricsAddress = m.address;
      } catch (err) {
        this.#server.close();
        throw err;
      }
    }
    return { address: this.#server.address() as AddressInfo | string, ...(this.#metricsAddress ? { metrics: this.#metricsAddress } : {}) };
  }

  /** The listening address (TCP) or socket path. */
  get address(): AddressInfo | string | null {
    return this.#server.address();
  }

  /** The metrics listener's address, when there is one. */
  get metricsAddress(): AddressInfo | undefined {
    return this.#metricsAddress;
  }

  /** Client connections open now. */
  get connectionCount(): number {
    return this.#connections.size;
  }

  /**
   * Serves `generation` to new connections. Open connections keep theirs; the old
   * generation's key holders are released once its last handshake is over.
   */
  reload(generation: ProxyGeneration | ProxyClientGeneration): void {
    const next = this.#build(generation);
    const old = this.#current;
    if (next.side.kind !== old.side.kind) throw new Error('a reload cannot switch between client and server mode: restart');
    this.#current = next;
    this.gate.maxPending = next.limits.maxPendingKeyOps;
    this.gate.maxQueued = next.limits.maxQueuedKeyOps;
    old.retired = true;
    this.#maybeRelease(old);
    this.metrics.reloads.inc({ outcome: 'ok' });
  }

  /**
   * Stops: no new connections, open ones get `graceMs` (default the limit) to finish, then
   * are cut; then the key holders and the metrics listener are closed.
   */
  stop(graceMs = this.#current.limits.shutdownGraceMs): Promise<void> {
    this.#stopping ??= (async () => {
      const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
      const timer = setTimeout(() => {
        for (const c of this.#connections) {
          if (c.relay) c.relay.abort('shutdown');
          else c.destroy();
        }
      }, graceMs);
      await closed;
      clearTimeout(timer);
      this.#current.retired = true;
      await this.#current.release();
      await new Promise<void>((resolve) => (this.#metricsServer ? this.#metricsServer.close(() => resolve()) : resolve()));
    })();
    return this.#stopping;
  }

  #build(g: ProxyGeneration | ProxyClientGeneration): Generation {
    const limits = limitsOf(g);
    let releasing: Promise<void> | undefined;
    const common = {
      limits,
      handshaking: 0,
      retired: false,
      released: false,
      release: () => (releasing ??= (g.release ?? (() => Promise.resolve()))().catch((err: Error) => this.#opts.logger.warn({ err: err.message }, 'closing the key holders of an old configuration failed'))),
    };
    return { ...common, side: 'target' in g ? this.#originatingSide(g) : this.#terminatingSide(g, limits) };
  }

  #originatingSide(g: ProxyClientGeneration): OriginatingSide {
    const psk = g.psk && this.gate.wrapPsk(g.psk.holder, g.psk.label);
    const options: KeywardConnectOptions = {
      ...g.tls,
      host: g.target.host,
      port: g.target.port,
      ...(g.certificate ? { cert: g.certificate.cert, key: this.gate.wrapKey(g.certificate.key, g.certificate.holder) } : {}),
      ...(g.psk && psk && g.psk.tls12 !== false ? { psk: { holder: psk, identity: g.psk.identity } } : {}),
      ...(g.psk?.tls13 && psk ? { tls13Psk: { holder: psk as Tls13PskOperations, identity: g.psk.identity, ...g.psk.tls13 } } : {}),
    };
    // Bad settings (a certificate that does not match its key, an unknown group) fail here, not per connection.
    clientConfigFrom(options);
    return { kind: 'originate', target: { kind: 'tcp', ...g.target }, options };
  }

  #terminatingSide(g: ProxyGeneration, limits: ProxyLimits): TerminatingSide {
    const certificates = g.certificates.map((c) => ({
      cert: c.cert,
      key: this.gate.wrapKey(c.key, c.holder),
      ...(c.names ? { names: c.names } : {}),
      ...(c.delegatedCredentials ? { delegatedCredentials: c.delegatedCredentials } : {}),
    }));
    const pskHolder = g.psk && this.gate.wrapPsk(g.psk.holder, g.psk.label);
    const psk = g.psk && pskHolder ? { holder: pskHolder, ...(g.psk.identityHint !== undefined ? { identityHint: g.psk.identityHint } : {}) } : undefined;
    const acceptor = tlsAcceptorFrom({
      ...g.tls,
      certificates,
      ...(psk ? { psk } : {}),
      // The holder's own methods are checked by the engine: one without the TLS 1.3 steps is refused there.
      ...(g.psk?.tls13 && pskHolder ? { tls13Psk: { holder: pskHolder as Tls13PskOperations, ...g.psk.tls13 } } : {}),
      handshakeTimeout: limits.handshakeTimeoutMs,
      // The relay decides when each direction ends.
      allowHalfOpen: true,
    });
    return { kind: 'terminate', acceptor, routes: new UpstreamRoutes(g.upstream, g.routes), proxyProtocol: g.proxyProtocol === true };
  }

  #maybeRelease(g: Generation): void {
    if (g.retired && g.handshaking === 0 && !g.released) {
      g.released = true;
      void g.release();
    }
  }

  #onConnection(raw: Socket): void {
    const g = this.#current;
    if (this.#stopping) {
      raw.destroy();
      return;
    }
    if (this.#connections.size >= g.limits.maxConnections) return this.#refuse(raw, 'max-connections', g.limits.maxConnections);
    const perSource = g.limits.maxConnectionsPerSource;
    if (perSource > 0) {
      if (this.#perSource?.max !== perSource) this.#perSource = new SourceLimit(perSource);
      if (!this.#perSource.admit(raw)) return this.#refuse(raw, 'max-connections-per-source', perSource);
    }
    const conn: Connection = { destroy: () => raw.destroy() };
    this.#connections.add(conn);
    this.metrics.openConnections.inc();
    g.handshaking++;
    let handshakeDone = false;
    const endHandshake = () => {
      if (handshakeDone) return;
      handshakeDone = true;
      g.handshaking--;
      this.#maybeRelease(g);
    };
    const started = performance.now();
    // Read now: a destroyed socket no longer knows its peer.
    const client = peer(raw.remoteAddress, raw.remotePort);
    const closed = (tls: EngineSocket | undefined, outcome: string, upstream: string | undefined) => {
      endHandshake();
      if (!this.#connections.delete(conn)) return;
      this.metrics.openConnections.dec();
      this.#accessLog(tls, client, outcome, started, conn, upstream);
      if (tls) {
        this.#openIds.delete(tls.connectionId);
        this.#holderOf.delete(tls.connectionId);
        this.#pskIdentityOf.delete(tls.connectionId);
      }
    };
    const side = g.side;
    if (side.kind === 'originate') void this.#originate(raw, conn, g, side, endHandshake).then(({ tls, outcome }) => closed(tls, outcome, formatEndpoint(side.target)));
    else this.#terminate(raw, conn, g, side, endHandshake, closed);
  }

  /** Closes a connection at accept: a limit is reached. Logged at most once a second, counted always. */
  #refuse(raw: Socket, reason: string, limit: number): void {
    this.metrics.connectionsRefused.inc({ reason });
    // A flood must not turn into a flood of log lines.
    const now = Date.now();
    if (now - this.#lastRefusalLog >= 1_000) {
      this.#lastRefusalLog = now;
      const what = reason === 'max-connections' ? 'connection limit reached' : 'connection limit per source address reached';
      this.#opts.logger.warn({ client: peer(raw.remoteAddress, raw.remotePort), limit }, `connection refused: ${what} (logged once a second; counted in keyward_proxy_connections_refused_total)`);
    }
    raw.destroy();
  }

  /** Server mode: the TLS handshake with the client, then the upstream chosen by SNI. */
  #terminate(raw: Socket, conn: Connection, g: Generation, side: TerminatingSide, endHandshake: () => void, closed: (tls: EngineSocket, outcome: string, upstream: string | undefined) => void): void {
    const tls = side.acceptor.accept(raw, this);
    this.#openIds.add(tls.connectionId);
    conn.destroy = () => tls.destroy();
    let outcome = 'handshake-incomplete';
    let upstreamText: string | undefined;
    tls.once('tlsClientError', (err: TlsHandshakeError) => {
      endHandshake();
      outcome = err.code;
      this.#countHandshake(tls, err.code);
    });
    tls.once('secure', () => {
      endHandshake();
      this.#countHandshake(tls, 'ok');
      const target = side.routes.upstreamFor(tls.servername);
      upstreamText = formatEndpoint(target);
      this.#connectUpstream(tls, conn, g, side, target).then(
        (o) => (outcome = o),
        () => undefined,
      );
    });
    tls.once('close', () => {
      // The relay's own result, when it ran, arrives after both sides closed.
      if (conn.relay) void conn.relay.done.then((o) => closed(tls, o, upstreamText));
      else closed(tls, outcome, upstreamText);
    });
  }

  /**
   * Client mode: connects to the target within the upstream connect timeout, runs the TLS
   * handshake (within the handshake timeout; the target's certificate verified), then
   * relays. A failure closes the local connection at once, with a log line naming why.
   */
  async #originate(raw: Socket, conn: Connection, g: Generation, side: OriginatingSide, endHandshake: () => void): Promise<{ tls?: KeywardClientSocket; outcome: string }> {
    const target = formatEndpoint(side.target);
    const localClosed = new Promise<void>((resolve) => raw.once('close', () => resolve()));
    // Errors of the local socket end it; the relay (or the close below) reports them.
    raw.on('error', () => undefined);
    raw.pause();
    const closeLocal = async (outcome: string) => {
      raw.destroy();
      await localClosed;
      return outcome;
    };
    let tcp: Socket;
    try {
      tcp = await connectWithTimeout(side.target, g.limits.upstreamConnectTimeoutMs);
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code ?? 'error';
      this.metrics.upstreamErrors.inc({ upstream: target, reason });
      this.#opts.logger.warn({ target, reason }, 'target unreachable: closing the local connection');
      return { outcome: await closeLocal('upstream-unreachable') };
    }
    if (raw.destroyed) {
      tcp.destroy();
      return { outcome: await closeLocal('client-error') };
    }
    const tls = connect({ ...side.options, socket: tcp, handshakeTimeout: g.limits.handshakeTimeoutMs, allowHalfOpen: true });
    this.#openIds.add(tls.connectionId);
    conn.destroy = () => {
      tls.destroy();
      raw.destroy();
    };
    // The local client leaving during the handshake ends it.
    const abandon = () => tls.destroy();
    raw.once('close', abandon);
    const secure = await new Promise<boolean>((resolve) => {
      tls.once('secureConnect', () => resolve(true));
      tls.once('error', (err: TlsHandshakeError) => {
        this.#handshakeFailed(tls, err, target);
        resolve(false);
      });
      tls.once('close', () => resolve(false));
    });
    raw.off('close', abandon);
    endHandshake();
    if (!secure || raw.destroyed) {
      const code = (tls.errored as TlsHandshakeError | null)?.code ?? 'client-error';
      tls.destroy();
      return { tls, outcome: await closeLocal(code) };
    }
    this.#countHandshake(tls, 'ok');
    const bytes = { from_client: this.metrics.bytes.labels('from_client'), to_client: this.metrics.bytes.labels('to_client') };
    conn.relay = relay(raw, tls, g.limits.idleTimeoutMs, (d, n) => bytes[d].inc(n));
    const outcome = await conn.relay.done;
    if (outcome === 'upstream-error') this.metrics.upstreamErrors.inc({ upstream: target, reason: 'reset' });
    return { tls, outcome };
  }

  /** A failed handshake toward the target: counted, and one line naming the reason (the verification's own when it was that). */
  #handshakeFailed(tls: KeywardClientSocket, err: TlsHandshakeError, target: string): void {
    this.#countHandshake(tls, err.code ?? 'error');
    const verification = tls.authorizationError as (Error & { code?: string }) | null;
    this.#opts.logger.warn(
      {
        target,
        code: err.code ?? null,
        reason: verification ? `the target's certificate did not verify: ${verification.code ? `${verification.code}: ` : ''}${verification.message}` : err.message,
        connectionId: tls.connectionId,
      },
      'TLS to the target failed: closing the local connection',
    );
  }

  #countHandshake(tls: EngineSocket, outcome: string): void {
    const n = tls.negotiated;
    this.metrics.handshakes.inc({
      version: n.version ?? 'none',
      suite: n.cipherName ?? 'none',
      group: n.group !== undefined ? groupName(n.group) : 'none',
      // A handshake signed with a delegated credential asked no key holder.
      key_holder: this.#holderOf.get(tls.connectionId) ?? (n.delegatedCredential ? 'delegated-credential' : 'none'),
      outcome,
    });
  }

  /** Connects to the upstream; on failure closes the client promptly (close_notify, FIN). */
  async #connectUpstream(tls: KeywardTLSSocket, conn: Connection, g: Generation, side: TerminatingSide, target: Endpoint): Promise<RelayOutcome | 'upstream-unreachable'> {
    let upstream: Socket;
    try {
      upstream = await connectWithTimeout(target, g.limits.upstreamConnectTimeoutMs);
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code ?? 'error';
      this.metrics.upstreamErrors.inc({ upstream: formatEndpoint(target), reason });
      this.#opts.logger.warn({ upstream: formatEndpoint(target), reason, connectionId: tls.connectionId }, 'upstream unreachable: closing the client connection');
      if (!tls.destroyed) tls.destroySoon();
      return 'upstream-unreachable';
    }
    if (tls.destroyed) {
      upstream.destroy();
      return 'client-error';
    }
    if (side.proxyProtocol) upstream.write(this.#proxyHeader(tls));
    const bytes = { from_client: this.metrics.bytes.labels('from_client'), to_client: this.metrics.bytes.labels('to_client') };
    conn.relay = relay(tls, upstream, g.limits.idleTimeoutMs, (d, n) => bytes[d].inc(n));
    const o = await conn.relay.done;
    if (o === 'upstream-error') this.metrics.upstreamErrors.inc({ upstream: formatEndpoint(target), reason: 'reset' });
    return o;
  }

  #proxyHeader(tls: KeywardTLSSocket): Buffer {
    const n = tls.negotiated;
    const cn = peerCommonName(tls);
    return encodeProxyV2({
      ...(tls.remoteAddress && tls.remotePort !== undefined ? { source: { address: tls.remoteAddress, port: tls.remotePort } } : {}),
      ...(tls.localAddress && tls.localPort !== undefined ? { destination: { address: tls.localAddress, port: tls.localPort } } : {}),
      ...(n.alpnProtocol ? { alpn: n.alpnProtocol } : {}),
      ...(n.serverName ? { authority: n.serverName } : {}),
      uniqueId: tls.connectionId,
      tls: {
        ...(n.version ? { version: n.version } : {}),
        ...(n.cipherName ? { cipher: n.cipherName } : {}),
        ...(n.group !== undefined ? { group: groupName(n.group) } : {}),
        ...(n.signatureScheme !== undefined ? { signatureScheme: schemeName(n.signatureScheme) } : {}),
        ...(cn ? { clientCn: cn } : {}),
        // Bounded so the header always fits (RFC 8446 allows identities of 64 KiB).
        ...(n.pskIdentity !== undefined && Buffer.byteLength(n.pskIdentity, 'utf8') <= MAX_PROXY_PSK_IDENTITY ? { pskIdentity: n.pskIdentity } : {}),
      },
    });
  }

  #accessLog(tls: EngineSocket | undefined, client: string | null, outcome: string, started: number, conn: Connection, upstream: string | undefined): void {
    const n = tls?.negotiated;
    const clientMode = this.#current.side.kind === 'originate';
    this.#opts.logger.info(
      {
        client,
        sni: n?.serverName ?? null,
        alpn: n?.alpnProtocol || null,
        version: n?.version ?? null,
        cipher: n?.cipherName ?? null,
        keyHolder: (tls && this.#holderOf.get(tls.connectionId)) ?? (n?.delegatedCredential ? 'delegated-credential' : null),
        // Server mode: the client's verified identity; client mode: the target's.
        ...(clientMode ? { serverCn: (tls && peerCommonName(tls)) ?? null } : { clientCn: (tls && peerCommonName(tls)) ?? null }),
        // The identity a PSK handshake used (the client's in server mode, ours in client mode), or the one the
        // holder refused when it failed there; never the key.
        pskIdentity: n?.pskIdentity ?? (tls && this.#pskIdentityOf.get(tls.connectionId)) ?? null,
        upstream: upstream ?? null,
        outcome,
        durationMs: Math.round((performance.now() - started) * 10) / 10,
        bytesFromClient: conn.relay?.fromClient ?? 0,
        bytesToClient: conn.relay?.toClient ?? 0,
        connectionId: tls?.connectionId ?? null,
      },
      'connection',
    );
  }
}

/** Longest PSK identity (UTF-8 bytes) carried in the PROXY v2 header; a longer one is left out. */
const MAX_PROXY_PSK_IDENTITY = 1024;

/** The generation's limits over the defaults (a limit left undefined keeps its default). */
function limitsOf(g: ProxyGeneration | ProxyClientGeneration): ProxyLimits {
  const given = Object.fromEntries(Object.entries(g.limits ?? {}).filter(([, v]) => v !== undefined));
  return { ...DEFAULT_PROXY_LIMITS, ...given };
}

function peer(address: string | undefined, port: number | undefined): string | null {
  if (!address) return null;
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** The CN of the peer's certificate, when it was verified (the client's with mutual TLS, the target's in client mode). */
function peerCommonName(tls: EngineSocket): string | undefined {
  if (!tls.authorized) return undefined;
  const cert = tls.getPeerCertificate() as { subject?: { CN?: string | string[] } };
  const cn = cert.subject?.CN;
  return Array.isArray(cn) ? cn[0] : cn;
}

/** Connects to `target` (allowing half-open) or fails after `timeoutMs` with code ETIMEDOUT. */
function connectWithTimeout(target: Endpoint, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = target.kind === 'unix' ? createConnection({ path: target.path, allowHalfOpen: true }) : createConnection({ host: target.host, port: target.port, allowHalfOpen: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error(`upstream ${formatEndpoint(target)}: no connection within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
    const onError = (err: Error) => {
      clearTimeout(timer);
      reject(err);
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}
