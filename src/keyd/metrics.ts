/**
 * keyd's Prometheus metrics, in a registry of their own, and the small HTTP listener that
 * serves them on a separate address (never on the key-operation port).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Label for a key in metrics: the first 16 hex digits of its id (short, and enough to tell keys apart). */
export function keyLabel(keyId: string | undefined): string {
  return keyId ? keyId.slice(0, 16) : 'none';
}

/** Every metric keyd exports. */
export class KeydMetrics {
  readonly registry = new Registry();
  /** Operations by key, operation and outcome ('ok', an error code, 'cancelled'). */
  readonly operations: Counter<'key' | 'op' | 'outcome'>;
  /** Seconds from request to result, by operation. */
  readonly latency: Histogram<'op'>;
  /** Operations running in a key holder now. */
  readonly inFlight: Gauge;
  /** Operations waiting for a free slot. */
  readonly queued: Gauge;
  /** Open front connections by transport and state ('handshake': not authenticated yet; 'established'). */
  readonly connections: Gauge<'transport' | 'state'>;
  /** Connections keyd closed itself, by reason (handshake-timeout, evicted, connection-limit, certificate-limit, revoked, resumed-session, frame-timeout, idle-timeout). */
  readonly connectionsClosed: Counter<'reason'>;
  /** Sign requests refused because the input is not a TLS handshake signature input. */
  readonly refusedSignInputs: Counter;
  /** Requests refused by authorization or rate limit, by reason. */
  readonly refusals: Counter<'reason'>;
  /** Delegated-credential requests refused, by reason (not-permitted, wrong-certificate, no-delegation-usage, validity, ...). */
  readonly dcRefusals: Counter<'reason'>;
  /** Audit lines written, and seconds per batch write + fsync. */
  readonly auditLines: Counter;
  readonly auditBatchSeconds: Histogram;
  /** Audit lines handed to the remote sink ('sent') or dropped while it was unreachable. */
  readonly auditSinkLines: Counter<'outcome'>;
  /** 1 while the remote audit sink's connection is up. */
  readonly auditSinkConnected: Gauge;
  /** Changes of the fleet's ticket key set (keys made or expired ones removed). */
  readonly ticketKeyRotations: Counter;
  /** The earliest nextUpdate of the client CRLs in force; made by the first {@link setClientCrlNextUpdate}, so a keyd without tls.crl has none. */
  #clientCrlNextUpdate: Gauge | undefined;

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.operations = new Counter({ name: 'keyd_operations_total', help: 'Key operations by key, operation and outcome', labelNames: ['key', 'op', 'outcome'], registers });
    this.latency = new Histogram({
      name: 'keyd_operation_duration_seconds',
      help: 'Time from request to result',
      labelNames: ['op'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.inFlight = new Gauge({ name: 'keyd_operations_in_flight', help: 'Operations running in a key holder', registers });
    this.queued = new Gauge({ name: 'keyd_operations_queued', help: 'Operations waiting for a free slot', registers });
    this.connections = new Gauge({ name: 'keyd_connections', help: 'Open front connections, by state (handshake: not authenticated yet)', labelNames: ['transport', 'state'], registers });
    this.connectionsClosed = new Counter({ name: 'keyd_connections_closed_total', help: 'Connections keyd closed itself, by reason', labelNames: ['reason'], registers });
    this.refusedSignInputs = new Counter({ name: 'keyd_sign_input_refused_total', help: 'Sign requests whose input is not a TLS handshake signature input', registers });
    this.refusals = new Counter({ name: 'keyd_refusals_total', help: 'Requests refused by authorization or rate limit', labelNames: ['reason'], registers });
    this.dcRefusals = new Counter({ name: 'keyd_delegated_credentials_refused_total', help: 'Delegated credential requests refused, by reason', labelNames: ['reason'], registers });
    this.auditLines = new Counter({ name: 'keyd_audit_lines_total', help: 'Audit lines written', registers });
    this.auditBatchSeconds = new Histogram({
      name: 'keyd_audit_append_seconds',
      help: 'Time from audit append to the line being written to the log file',
      buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
      registers,
    });
    this.auditSinkLines = new Counter({ name: 'keyd_audit_sink_lines_total', help: 'Audit lines sent to the remote sink, or dropped while it was unreachable', labelNames: ['outcome'], registers });
    this.auditSinkConnected = new Gauge({ name: 'keyd_audit_sink_connected', help: '1 while the remote audit sink is connected', registers });
    this.ticketKeyRotations = new Counter({ name: 'keyd_ticket_key_rotations_total', help: 'Changes of the ticket key set (keys made, expired ones removed)', registers });
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'keyd_' });
  }

  /**
   * Sets keyd_client_crl_next_update_timestamp_seconds: the earliest nextUpdate of the
   * client CRLs in force (Unix seconds), +Inf when none has one. Past it OpenSSL refuses
   * every front of that CA: alert on, say, `keyd_client_crl_next_update_timestamp_seconds - time() < 3 * 86400`.
   */
  setClientCrlNextUpdate(nextUpdate: Date | undefined): void {
    this.#clientCrlNextUpdate ??= new Gauge({
      name: 'keyd_client_crl_next_update_timestamp_seconds',
      help: 'Earliest nextUpdate of the client CRLs in force (tls.crl), Unix time; every front of that CA is refused after it',
      registers: [this.registry],
    });
    this.#clientCrlNextUpdate.set(nextUpdate ? nextUpdate.getTime() / 1000 : Infinity);
  }
}

/** The metrics HTTP listener. */
export interface MetricsServer {
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

/**
 * Serves GET /metrics (Prometheus text) and GET /healthz (200 "ok" or 503 with the
 * reason) on `host:port`.
 */
export async function startMetricsServer(metrics: KeydMetrics, host: string, port: number, health: () => string | undefined): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        () => res.writeHead(500).end('metrics unavailable\n'),
      );
    } else if (path === '/healthz') {
      const problem = health();
      if (problem) res.writeHead(503, { 'content-type': 'text/plain' }).end(problem + '\n');
      else res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  return {
    address: { host: a.address, port: a.port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
