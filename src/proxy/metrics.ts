/**
 * The proxy's Prometheus metrics, in a registry of their own, served on an opt-in
 * listener of their own (never on the TLS port). Labels carry public facts only.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { KeyOperationReport } from './keyGate.js';

/** Labels of one handshake. */
export interface HandshakeLabels {
  version: string;
  suite: string;
  group: string;
  key_holder: string;
  /** 'ok' or the failure code (ERR_TLS_HANDSHAKE_TIMEOUT, ERR_TLS_ALERT_SENT_..., ...). */
  outcome: string;
}

/** Every metric the proxy exports. */
export class ProxyMetrics {
  readonly registry = new Registry();
  readonly handshakes: Counter<keyof HandshakeLabels>;
  readonly keyOperationSeconds: Histogram<'key_holder' | 'operation' | 'outcome'>;
  readonly openConnections: Gauge;
  readonly connectionsRefused: Counter<'reason'>;
  readonly bytes: Counter<'direction'>;
  readonly upstreamErrors: Counter<'upstream' | 'reason'>;
  readonly keyOperationsPending: Gauge<'state'>;
  readonly reloads: Counter<'outcome'>;

  constructor(opts: { defaultMetrics?: boolean; keyGateState?: () => { running: number; queued: number } } = {}) {
    const registers = [this.registry];
    this.handshakes = new Counter({
      name: 'keyward_proxy_handshakes_total',
      help: 'TLS handshakes by version, cipher suite, key-exchange group, key holder and outcome',
      labelNames: ['version', 'suite', 'group', 'key_holder', 'outcome'],
      registers,
    });
    this.keyOperationSeconds = new Histogram({
      name: 'keyward_proxy_key_operation_seconds',
      help: 'Time from a key operation request to its answer, queueing for a slot included',
      labelNames: ['key_holder', 'operation', 'outcome'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.openConnections = new Gauge({ name: 'keyward_proxy_open_connections', help: 'Client connections open (handshaking or relaying)', registers });
    this.connectionsRefused = new Counter({ name: 'keyward_proxy_connections_refused_total', help: 'Client connections closed at accept, by reason', labelNames: ['reason'], registers });
    this.bytes = new Counter({ name: 'keyward_proxy_bytes_total', help: 'Plaintext bytes relayed: from_client (to the upstream) and to_client', labelNames: ['direction'], registers });
    this.upstreamErrors = new Counter({ name: 'keyward_proxy_upstream_errors_total', help: 'Upstream connections that failed, by upstream and reason', labelNames: ['upstream', 'reason'], registers });
    const gate = opts.keyGateState;
    this.keyOperationsPending = new Gauge({
      name: 'keyward_proxy_key_operations',
      help: 'Key operations running in key holders (running) or waiting for a slot (queued)',
      labelNames: ['state'],
      registers,
      collect() {
        if (!gate) return;
        const s = gate();
        this.set({ state: 'running' }, s.running);
        this.set({ state: 'queued' }, s.queued);
      },
    });
    this.reloads = new Counter({ name: 'keyward_proxy_reloads_total', help: 'Configuration reloads (SIGHUP) by outcome', labelNames: ['outcome'], registers });
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'keyward_proxy_' });
  }

  /** Records a settled key operation (the KeyOperationGate's report callback). */
  keyOperation(r: KeyOperationReport): void {
    this.keyOperationSeconds.observe({ key_holder: r.holder, operation: r.operation, outcome: r.outcome }, r.seconds);
  }
}

/** Serves `GET /metrics` from `registry`; resolves once listening. */
export async function startMetricsListener(registry: Registry, host: string, port: number): Promise<{ server: Server; address: AddressInfo }> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      () => res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n'),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return { server, address: server.address() as AddressInfo };
}
