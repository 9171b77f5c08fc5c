/**
 * keyd, the key server: opens the sealed store and any PKCS#11 keys, then serves key
 * operations to authenticated fronts over mutual TLS (TLS 1.3 only) and/or a Unix socket.
 * There is no unauthenticated transport. Metrics are served on a separate listener.
 */
import { X509Certificate, constants as tlsConstants, type KeyObject } from 'node:crypto';
import { readFile, unlink, writeFile } from 'node:fs/promises';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { pino, type Logger } from 'pino';
import { signaturesVouchedFor, type KeyOperations } from '../keys/keyOperations.js';
import { probeUnixSocketFile } from '../node/unixSocketFile.js';
import { keyIdOf } from '../keys/keyId.js';
import { AuditLog } from './audit.js';
import { SyslogTlsSink } from './auditSink.js';
import { Authorizer, identityOfCertificate, type PeerIdentity } from './authz.js';
import { crlNumberGoesBack, crlNumbers, loadClientCrls, timeLeft, watchClientCrls, watchCrlExpiry, type ClientCrls } from './clientCrl.js';
import { resolveKekSource, type KeydConfig } from './config.js';
import { KeydConnection } from './connection.js';
import { ErrorLineBudget } from './errorLineBudget.js';
import { HandshakeGuard } from './handshakeGuard.js';
import { KeydMetrics, startMetricsServer, type MetricsServer } from './metrics.js';
import { WorkQueue } from './queue.js';
import { KeyRegistry } from './registry.js';
import { KeydService, type Session } from './service.js';
import { SealedStore, type KekSource } from './store.js';
import { TicketKeyKeeper, type TicketKeySettings } from './ticketKeys.js';
import { registerStoredKey } from './storeKey.js';

/** How often keyd looks for a new `tls.crl` file. */
const CRL_POLL_MS = 1000;

/** Options for {@link startKeyd} beyond the config file. */
export interface StartKeydOptions {
  /** Logger; default pino JSON on stdout at the configured level. */
  logger?: Logger;
  /** Where the store's key-encryption key comes from; default: the config's passphrase source. */
  kek?: KekSource;
  /** Environment for `store.passphraseEnv` (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** More keys to serve, given by the embedding program: anything that can sign. */
  keys?: Array<{ ops: KeyOperations; serverNames: string[] }>;
}

/** A running keyd. */
export interface Keyd {
  /** The mutual-TLS listener's address, when configured. */
  readonly tlsAddress?: { host: string; port: number };
  /** The Unix socket path, when configured. */
  readonly unixPath?: string;
  /** The metrics listener's address, when configured. */
  readonly metricsAddress?: { host: string; port: number };
  readonly registry: KeyRegistry;
  readonly metrics: KeydMetrics;
  readonly audit: AuditLog;
  readonly logger: Logger;
  /** Open front connections. */
  readonly connections: number;
  /**
   * Graceful shutdown: stop accepting, refuse new requests, finish in-flight ones (up to
   * limits.shutdownGraceMs), close connections, flush the audit log, release keys.
   */
  close(): Promise<void>;
}

const crlOutOfDateReason = (issuers: string[]): string => `client CRL out of date: every front of ${issuers.join(' and of ')} is refused until a new one is loaded`;

/** Why the client CRLs in force make OpenSSL refuse fronts now: one past its nextUpdate. */
function crlOutOfDate(crls: ClientCrls | undefined): string | undefined {
  const now = Date.now();
  const stale = crls?.schedule.filter((c) => c.nextUpdate.getTime() < now) ?? [];
  return stale.length > 0 ? crlOutOfDateReason(stale.map((c) => c.issuer)) : undefined;
}

/** Logs the CRLs put in force, and each CA of tls.clientCa with none: OpenSSL refuses all its fronts (UNABLE_TO_GET_CRL). */
function logCrlsLoaded(crls: ClientCrls, file: string, logger: Logger): void {
  logger.info({ file, crls: crls.crls, number: crlNumbers(crls), revoked: crls.revokedCount, nextUpdate: crls.nextUpdate }, 'client CRL loaded');
  for (const ca of crls.uncovered) logger.warn({ file, ca }, `tls.clientCa holds the CA ${ca}, but ${file} has no CRL of it: every front of that CA is refused (UNABLE_TO_GET_CRL)`);
}

/**
 * Puts a CRL's clock in force: the nextUpdate gauge, warnings as it nears, an error once
 * it passed. Returns the function that clears its timers.
 */
function keepCrlTime(crls: ClientCrls, file: string, metrics: KeydMetrics, logger: Logger): () => void {
  metrics.setClientCrlNextUpdate(crls.nextUpdate);
  return watchCrlExpiry(crls, {
    nearing: (issuer, nextUpdate, leftMs) =>
      logger.warn({ file, issuer, nextUpdate, left: timeLeft(leftMs) }, `client CRL runs out in ${timeLeft(leftMs)}: load a new one before ${nextUpdate.toISOString()} (keyward certs revoke), or every front of ${issuer} is refused`),
    expired: (issuer, nextUpdate) => logger.error({ file, issuer, nextUpdate }, crlOutOfDateReason([issuer])),
  });
}

async function openStore(config: KeydConfig, kek: KekSource, logger: Logger): Promise<SealedStore> {
  const exists = await SealedStore.exists(config.store.dir);
  if (!exists && !config.store.create) throw new Error(`no sealed store in ${config.store.dir}, and store.create is false`);
  const store = exists ? await SealedStore.open(config.store.dir, kek) : await SealedStore.create(config.store.dir, kek, config.store.scrypt ? { scrypt: config.store.scrypt } : {});
  if (!exists) logger.info({ dir: config.store.dir }, 'created a new sealed store');
  for (const w of store.warnings) logger.warn({ dir: config.store.dir }, w);
  return store;
}

/** The public key of the (first) certificate in a PEM file, for a token key that serves it; errors name the file. */
async function certificatePublicKey(path: string): Promise<KeyObject> {
  let pem: string;
  try {
    pem = await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read pkcs11 certificate ${path}: ${(err as NodeJS.ErrnoException).code ?? 'read failed'}`, { cause: err });
  }
  const block = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem);
  try {
    if (!block) throw new Error('no PEM certificate');
    return new X509Certificate(block[0]).publicKey;
  } catch (err) {
    throw new Error(`pkcs11 certificate ${path} is not a readable PEM certificate`, { cause: err });
  }
}

/** Removes a stale socket file left by a keyd that died; refuses to touch a live one or a non-socket. */
async function clearStaleSocket(path: string): Promise<void> {
  const found = await probeUnixSocketFile(path);
  if (found === 'not-a-socket') throw new Error(`${path} exists and is not a socket; refusing to replace it`);
  if (found === 'live') throw new Error(`${path} is in use by a running process`);
  if (found === 'stale') await unlink(path);
}

/** Writes the audit key's public half (SPKI PEM) where the operator asked, if it is not there already. */
async function writeAuditPublicKey(path: string, publicKey: KeyObject, logger: Logger): Promise<void> {
  const pem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const old = await readFile(path, 'utf8').catch(() => undefined);
  if (old === pem) return;
  await writeFile(path, pem, { mode: 0o644 });
  logger.info({ file: path, auditKey: keyIdOf(publicKey) }, old === undefined ? 'audit public key written' : 'audit public key replaced (it held another key)');
}

async function openAuditSink(c: NonNullable<KeydConfig['audit']['sink']>, metrics: KeydMetrics, logger: Logger): Promise<SyslogTlsSink> {
  const read = (f: string | undefined, what: string): Promise<Buffer | undefined> =>
    f === undefined ? Promise.resolve(undefined) : readFile(f).catch((e: NodeJS.ErrnoException) => Promise.reject(new Error(`audit.sink.${what}: cannot read ${f} (${e.code ?? 'error'})`)));
  const [ca, cert, key] = await Promise.all([read(c.caFile, 'ca'), read(c.certFile, 'cert'), read(c.keyFile, 'key')]);
  const sink = new SyslogTlsSink({
    host: c.host,
    port: c.port,
    maxQueuedLines: c.maxQueuedLines,
    logger,
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    ...(c.serverName ? { serverName: c.serverName } : {}),
    onStats: (event, n) => {
      if (event === 'sent' || event === 'dropped') metrics.auditSinkLines.inc({ outcome: event }, n);
      else metrics.auditSinkConnected.set(event === 'up' ? 1 : 0);
    },
  });
  key?.fill(0);
  return sink;
}

/**
 * Brings the fleet's ticket keys up to date and keeps rotating them; every change is
 * audited (`ticket-key-rotate`, with the names made and removed), logged and counted.
 */
async function startTicketKeys(settings: TicketKeySettings, store: SealedStore, audit: AuditLog, metrics: KeydMetrics, logger: Logger): Promise<TicketKeyKeeper> {
  const keeper = new TicketKeyKeeper(store, settings, {
    onRotated: (r) => {
      metrics.ticketKeyRotations.inc();
      logger.info({ made: r.made, removed: r.removed }, 'ticket keys rotated');
      const reason = `made ${r.made.length}, removed ${r.removed.length} expired`;
      void audit
        .append({ client: '-', op: 'ticket-key-rotate', outcome: 'ok', ...(r.made.length > 0 ? { ticketKeys: r.made.join(',') } : {}), reason })
        .catch((e: Error) => logger.error({ err: e.message }, 'audit write failed'));
    },
    onError: (e) => logger.error({ err: e.message }, 'ticket key rotation failed; retrying (the keys served stay valid until they expire)'),
  });
  await keeper.start();
  return keeper;
}

function listen(server: NetServer, arg: { port: number; host: string } | { path: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(arg, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/**
 * Starts keyd with a validated configuration. Resolves once every listener is up; rejects
 * (having released what it opened) when the store, the audit log, a key or a listener
 * cannot be opened.
 */
export async function startKeyd(config: KeydConfig, opts: StartKeydOptions = {}): Promise<Keyd> {
  const logger = opts.logger ?? pino({ level: config.log.level, base: { service: 'keyd' } });
  const cleanups: Array<() => Promise<void> | void> = [];
  const cleanup = async (): Promise<void> => {
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
  };
  try {
    const kek = opts.kek ?? (await resolveKekSource(config.store, opts.env));
    const store = await openStore(config, kek, logger);
    cleanups.push(() => store.close());
    const metrics = new KeydMetrics();
    const { file: auditFile, checkpoints, sink: sinkConfig, ...auditOptions } = config.audit;
    const auditKey = checkpoints ? await store.auditKey() : undefined;
    if (auditKey && checkpoints?.publicKeyFile) await writeAuditPublicKey(checkpoints.publicKeyFile, auditKey.publicKey, logger);
    const sink = sinkConfig ? await openAuditSink(sinkConfig, metrics, logger) : undefined;
    // Closed after the audit log (cleanups run in reverse), so that its last lines are shipped.
    if (sink) cleanups.push(() => sink.close());
    const audit = await AuditLog.open(auditFile, {
      ...auditOptions,
      ...(auditKey && checkpoints ? { checkpoints: { signer: auditKey, intervalMs: checkpoints.intervalMs, lines: checkpoints.lines } } : {}),
      ...(sink ? { onWritten: (lines: readonly string[]) => sink.send(lines) } : {}),
    });
    cleanups.push(() => audit.close());
    const registry = new KeyRegistry();

    // Oldest first, so that among keys serving one name the newest wins.
    for (const k of store.keys().sort((a, b) => a.createdAt.localeCompare(b.createdAt))) {
      registerStoredKey(registry, k);
    }
    if (config.pkcs11.length > 0) {
      const { openPkcs11Key } = await import('../keys/pkcs11Key.js');
      for (const p of config.pkcs11) {
        const publicKey = p.certificateFile ? await certificatePublicKey(p.certificateFile) : undefined;
        const key = await openPkcs11Key({ uri: p.uri, module: p.module, ...(p.pinFile ? { pinFile: p.pinFile } : {}), ...(publicKey ? { publicKey } : {}) });
        cleanups.push(() => key.close());
        registry.add({ ops: key, serverNames: p.serverNames, source: 'pkcs11', verifyResults: true });
        logger.info({ keyId: key.keyId, token: key.info.tokenLabel, object: key.info.objectLabel, serverNames: p.serverNames }, 'PKCS#11 key opened');
      }
    }
    for (const k of opts.keys ?? []) registry.add({ ops: k.ops, serverNames: k.serverNames, source: 'embedded', verifyResults: !signaturesVouchedFor(k.ops) });

    // One client may fill a quarter of the queue: the others still find room.
    const queue = new WorkQueue(
      config.limits.maxConcurrentOps,
      config.limits.maxQueuedOps,
      (running, queued) => {
        metrics.inFlight.set(running);
        metrics.queued.set(queued);
      },
      Math.max(1, Math.floor(config.limits.maxQueuedOps / 4)),
    );
    const authz = new Authorizer(config.clients);
    const ticketKeys = config.ticketKeys ? await startTicketKeys(config.ticketKeys, store, audit, metrics, logger) : undefined;
    if (ticketKeys) cleanups.push(() => ticketKeys.close());
    const errorLines = new ErrorLineBudget(config.limits.auditedErrorsPerSecond, (client, count) => {
      const reason = `${count} error answers not audited one by one (over ${config.limits.auditedErrorsPerSecond}/s for this client)`;
      logger.warn({ client, count }, 'error answers beyond the audited rate: counted, not written one by one');
      void audit.append({ client, op: 'errors', outcome: 'suppressed', reason }).catch((e: Error) => logger.error({ err: e.message }, 'audit write failed'));
    });
    // Before the audit log closes: its last summary is written.
    cleanups.push(() => errorLines.close());
    const service = new KeydService({
      errorLines,
      registry,
      store,
      audit,
      authz,
      metrics,
      logger,
      queue,
      unknownPskIdentity: config.psk.unknownIdentity,
      dcMaxValidityMs: config.delegatedCredentials.maxValidityMs,
      ...(ticketKeys ? { ticketKeys } : {}),
    });
    const connections = new Set<KeydConnection>();
    /** The client certificate (DER) of each mutual-TLS connection, for revocations that come later. */
    const tlsCertificates = new Map<KeydConnection, Buffer>();

    const established = { tls: 0, unix: 0 };
    /** Open mutual-TLS connections by client certificate (its sha256 identity). */
    const perCertificate = new Map<string, number>();
    const accept = (socket: Socket, peer: PeerIdentity, transport: 'tls' | 'unix', remote: string, certificate?: Buffer): void => {
      // Slots are for authenticated fronts: one past the budget is closed at once.
      if (established[transport] >= config.limits.maxConnections) {
        metrics.connectionsClosed.inc({ reason: 'connection-limit' });
        logger.warn({ client: peer.display, front: remote, transport, maxConnections: config.limits.maxConnections }, 'closing connection: connection limit reached');
        socket.destroy();
        return;
      }
      // One certificate (a compromised front, or one no rule names) must not take every slot.
      const cert = transport === 'tls' ? (peer.ids.find((i) => i.startsWith('sha256:')) ?? peer.display) : undefined;
      if (cert !== undefined) {
        const n = perCertificate.get(cert) ?? 0;
        if (n >= config.limits.maxConnectionsPerCertificate) {
          metrics.connectionsClosed.inc({ reason: 'certificate-limit' });
          logger.warn({ client: peer.display, front: remote, transport, maxConnectionsPerCertificate: config.limits.maxConnectionsPerCertificate }, 'closing connection: connection limit of this client certificate reached');
          socket.destroy();
          return;
        }
        perCertificate.set(cert, n + 1);
      }
      const session: Session = { peer, grant: authz.resolve(peer), transport, remote };
      const conn = new KeydConnection(socket, session, service, config.limits, logger, (reason) => metrics.connectionsClosed.inc({ reason }));
      connections.add(conn);
      if (certificate) tlsCertificates.set(conn, certificate);
      established[transport] += 1;
      metrics.connections.inc({ transport, state: 'established' });
      logger.info({ client: peer.display, front: remote, transport, authorized: session.grant !== undefined }, 'front connected');
      socket.once('close', () => {
        connections.delete(conn);
        tlsCertificates.delete(conn);
        established[transport] -= 1;
        if (cert !== undefined) {
          const left = (perCertificate.get(cert) ?? 1) - 1;
          if (left > 0) perCertificate.set(cert, left);
          else perCertificate.delete(cert);
        }
        metrics.connections.dec({ transport, state: 'established' });
        logger.info({ client: peer.display, front: remote, transport }, 'front disconnected');
      });
    };

    let tlsListener: NetServer | undefined;
    /** The client CRLs in force (tls.crl): for new handshakes, established connections and /healthz. */
    let crls: ClientCrls | undefined;
    let guard: HandshakeGuard | undefined;
    let tlsAddress: { host: string; port: number } | undefined;
    if (config.listen.tls) {
      if (!config.tls) throw new Error('listen.tls needs the tls section');
      const tlsFiles = config.tls;
      const [cert, key, ca] = await Promise.all([readFile(tlsFiles.certFile), readFile(tlsFiles.keyFile), readFile(tlsFiles.clientCaFile)]);
      if (tlsFiles.crlFile) {
        const loaded = await loadClientCrls(tlsFiles.crlFile, tlsFiles.clientCaFile).catch((e: Error) => Promise.reject(new Error(`tls.crl: ${e.message}`)));
        logCrlsLoaded(loaded, tlsFiles.crlFile, logger);
        crls = loaded;
      }
      // Raw TCP connections pass the handshake guard before the TLS server sees them.
      const hsGuard = new HandshakeGuard(
        { maxPending: config.limits.maxPendingHandshakes, maxPendingPerSource: config.limits.maxPendingPerSource, timeoutMs: config.limits.handshakeTimeoutMs },
        {
          dropped: (source, reason) => {
            metrics.connectionsClosed.inc({ reason });
            logger.debug({ source, reason }, 'closed a connection before its TLS handshake finished');
          },
          counted: (n) => metrics.connections.set({ transport: 'tls', state: 'handshake' }, n),
        },
      );
      guard = hsGuard;
      const srv = createTlsServer(
        {
          cert,
          key,
          ca,
          requestCert: true,
          // Checked in the connection callback below, so that a refused certificate is logged
          // with OpenSSL's reason (node:tls would close it silently before keyd sees it).
          rejectUnauthorized: false,
          minVersion: 'TLSv1.3',
          maxVersion: 'TLSv1.3',
          handshakeTimeout: config.limits.handshakeTimeoutMs,
          // No session tickets: see isSessionReused below.
          secureOptions: tlsConstants.SSL_OP_NO_TICKET,
          ...(crls ? { crl: crls.pem } : {}),
        },
        (socket: TLSSocket) => {
          if (!socket.authorized) {
            // No certificate, another CA, out of its validity period, revoked, or a CRL out of date.
            // node:tls reports a missing certificate as UNABLE_TO_GET_ISSUER_CERT: say what it is.
            const presented = socket.getPeerCertificate().raw !== undefined;
            const reason = !presented ? 'no client certificate' : String(socket.authorizationError ?? 'not authorized');
            logger.warn({ front: `${socket.remoteAddress}:${socket.remotePort}`, reason }, 'closing connection: client certificate refused');
            metrics.connectionsClosed.inc({ reason: 'client-certificate' });
            socket.destroy();
            return;
          }
          hsGuard.authenticated(socket);
          // A resumed session skips the certificate checks (validity, CRL) a full handshake
          // makes; keyd's clients never resume, so only a peer replaying an old session would.
          if (socket.isSessionReused()) {
            logger.warn({ front: `${socket.remoteAddress}:${socket.remotePort}` }, 'closing connection: a resumed TLS session (keyd checks the client certificate in a full handshake only)');
            metrics.connectionsClosed.inc({ reason: 'resumed-session' });
            socket.destroy();
            return;
          }
          const peerCert = socket.getPeerCertificate();
          // A handshake begun under the previous CRL finishes under it: check the one in force now.
          if (crls?.revokes(peerCert.raw)) {
            logger.warn({ front: `${socket.remoteAddress}:${socket.remotePort}` }, 'closing connection: its client certificate is revoked');
            metrics.connectionsClosed.inc({ reason: 'revoked' });
            socket.destroy();
            return;
          }
          accept(socket, identityOfCertificate(peerCert), 'tls', `${socket.remoteAddress}:${socket.remotePort}`, peerCert.raw);
        },
      );
      key.fill(0);
      if (tlsFiles.crlFile && crls) {
        const crlFile = tlsFiles.crlFile;
        let stopClock = keepCrlTime(crls, crlFile, metrics, logger);
        cleanups.push(() => stopClock());
        // A revocation takes effect within seconds, without a restart: new handshakes are
        // checked against the new CRLs, and connections of a revoked certificate are closed.
        const inForce = async (next: ClientCrls): Promise<void> => {
          const older = crlNumberGoesBack(crls, next);
          if (older) throw new Error(older);
          const [c, k, a] = await Promise.all([readFile(tlsFiles.certFile), readFile(tlsFiles.keyFile), readFile(tlsFiles.clientCaFile)]);
          try {
            srv.setSecureContext({ cert: c, key: k, ca: a, crl: next.pem, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', secureOptions: tlsConstants.SSL_OP_NO_TICKET });
          } finally {
            k.fill(0);
          }
          crls = next;
          logCrlsLoaded(next, crlFile, logger);
          stopClock();
          stopClock = keepCrlTime(next, crlFile, metrics, logger);
          for (const [conn, der] of tlsCertificates) {
            if (!next.revokes(der)) continue;
            logger.warn({ client: conn.session.peer.display, front: conn.session.remote }, 'closing connection: its client certificate is revoked');
            metrics.connectionsClosed.inc({ reason: 'revoked' });
            void service.auditRejected(conn.session, 'protocol', 'refused', 'client certificate revoked (tls.crl)');
            conn.destroy();
          }
        };
        const stop = watchClientCrls(crlFile, tlsFiles.clientCaFile, CRL_POLL_MS, inForce, (e) =>
          logger.error({ file: crlFile, err: e.message }, 'client CRL not reloaded; the previous one stays in force'),
        );
        cleanups.push(stop);
      }
      srv.on('tlsClientError', (e: NodeJS.ErrnoException, s: TLSSocket) => {
        // Node reports a handshake timeout here but leaves the socket open: close it.
        s.destroy();
        if (e.code === 'ECONNRESET' || e.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') logger.debug({ front: `${s.remoteAddress}:${s.remotePort}`, err: e.code }, 'TLS handshake with a front failed');
        else logger.warn({ front: `${s.remoteAddress}:${s.remotePort}`, err: e.code ?? e.message }, 'TLS handshake with a front failed');
      });
      const listener = createNetServer({ noDelay: true }, (raw) => {
        raw.on('error', () => undefined);
        if (hsGuard.admit(raw)) srv.emit('connection', raw);
      });
      await listen(listener, { host: config.listen.tls.host, port: config.listen.tls.port });
      tlsListener = listener;
      cleanups.push(() => new Promise<void>((r) => listener.close(() => r())));
      const a = listener.address() as AddressInfo;
      tlsAddress = { host: a.address, port: a.port };
    }

    let unixServer: NetServer | undefined;
    const unix = config.listen.unix;
    if (unix) {
      await clearStaleSocket(unix.path);
      const peer: PeerIdentity = { ids: [unix.identity], display: unix.identity };
      const srv = createNetServer((socket) => accept(socket, peer, 'unix', unix.path));
      // The socket is created by listen(); a tight umask closes the window before chmod.
      const oldMask = process.umask(0o177);
      try {
        await listen(srv, { path: unix.path });
      } finally {
        process.umask(oldMask);
      }
      const { chmod } = await import('node:fs/promises');
      await chmod(unix.path, unix.mode);
      unixServer = srv;
      cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
    }
    if (!tlsListener && !unixServer) throw new Error('keyd needs listen.tls and/or listen.unix');

    let metricsServer: MetricsServer | undefined;
    let draining = false;
    if (config.metrics) {
      metricsServer = await startMetricsServer(metrics, config.metrics.host, config.metrics.port, () => {
        if (draining) return 'shutting down';
        if (audit.failed) return 'audit log unavailable';
        return crlOutOfDate(crls);
      });
      cleanups.push(() => metricsServer?.close());
    }

    await audit.append({ client: '-', op: 'keyd-start', outcome: 'ok', reason: `${registry.size} key(s)` });
    // Signs the chain as found at start, a previous run's unsigned tail included.
    await audit.checkpoint();
    // The head is the one thing a hash chain cannot protect; keep copies of it elsewhere.
    const headTimer = setInterval(() => logger.info({ auditHead: audit.head }, 'audit head'), 60_000);
    headTimer.unref();
    cleanups.push(() => clearInterval(headTimer));

    logger.info(
      {
        tls: tlsAddress ? `${tlsAddress.host}:${tlsAddress.port}` : undefined,
        unix: unix?.path,
        metrics: metricsServer ? `${metricsServer.address.host}:${metricsServer.address.port}` : undefined,
        keys: registry.all().map((k) => ({ keyId: k.keyId, source: k.source, serverNames: k.serverNames })),
        ticketKeys: ticketKeys?.served().keys.map((k) => k.name.toString('hex')),
        auditHead: audit.head,
        auditKey: auditKey?.keyId,
        auditSink: sinkConfig ? `${sinkConfig.host}:${sinkConfig.port}` : undefined,
      },
      'keyd ready',
    );

    let closing: Promise<void> | undefined;
    const close = (): Promise<void> => {
      closing ??= (async () => {
        draining = true;
        service.draining = true;
        logger.info({ inFlight: service.active }, 'keyd shutting down');
        tlsListener?.close();
        guard?.closeAll();
        unixServer?.close();
        let timer: NodeJS.Timeout | undefined;
        const graceOver = new Promise<boolean>((r) => {
          timer = setTimeout(() => r(false), config.limits.shutdownGraceMs);
        });
        const finished = await Promise.race([service.idle().then(() => true), graceOver]);
        clearTimeout(timer);
        if (!finished) {
          logger.warn({ inFlight: service.active }, 'shutdown grace period over; dropping remaining operations');
          for (const c of connections) c.destroy();
          await Promise.race([service.idle(), new Promise((r) => setTimeout(r, 2_000))]);
        }
        for (const c of connections) c.end();
        await audit.append({ client: '-', op: 'keyd-stop', outcome: 'ok' }).catch(() => undefined);
        logger.info({ auditHead: audit.head }, 'keyd stopped');
        await cleanup();
      })();
      return closing;
    };

    return {
      tlsAddress,
      unixPath: unix?.path,
      metricsAddress: metricsServer?.address,
      registry,
      metrics,
      audit,
      logger,
      get connections() {
        return connections.size;
      },
      close,
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}
