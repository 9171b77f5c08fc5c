/**
 * `keyward proxy`: TLS termination in front of a TCP or Unix-socket application, the
 * private keys in key holders (key process, keyd, PKCS#11). Logs are pino JSON lines on
 * stdout: one access line per connection, and start, reload and stop events.
 *
 * Client mode (`--client --target HOST:PORT`, ghostunnel's client): plaintext accepted
 * locally, TLS out to the target, the client certificate's key in a key holder.
 */
import { Command, Option } from 'commander';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { pino, stdTimeFunctions, type DestinationStream, type Logger } from 'pino';
import { formatEndpoint, parseEndpoint, type Endpoint } from '../proxy/endpoint.js';
import { KeywardProxy, type ProxyClientGeneration, type ProxyGeneration } from '../proxy/proxyServer.js';
import { clientPskOffer, openClientCredentials } from './clientCredentials.js';
import { dropFrontPrivileges } from './frontUser.js';
import {
  addFrontOptions,
  addTls13PskServerOptions,
  definedFields,
  certificateSpecs,
  delegationSettings,
  frontSettingsFromFlags,
  keySourceOptions,
  nonNegativeInt,
  positiveInt,
  pskSettings,
  resolveSettings,
  serverTlsChoices,
  ticketKeysFromKeyd,
  type FrontFlagValues,
  type KeySpecList,
} from './frontOptions.js';
import type { DelegationLog } from './delegation.js';
import { CliError, KeySources } from './keySources.js';
import type { ProxySettings } from './roleConfig.js';
import { loadCertificates } from './serve.js';
import { stopOnSignals } from './signals.js';

const PROXY_HELP = `
Keys: the same flags as "keyward serve" (see keyward serve --help): --key-process
--key, --keyd ..., --pkcs11 ..., or --key alone (in this process, a baseline).
PSKs: --psk-keyd (with --keyd), --psk-process --psk-file F, or --psk-file F alone
(in this process, a baseline); TLS 1.2 PSK suites, and TLS 1.3 external PSKs with
--tls13-psk (the holder runs their key schedule: docs/tls13-psk.md).

Examples:
  keyward proxy --listen 0.0.0.0:443 --upstream 127.0.0.1:8080 \\
                --cert site.pem --keyd tls://keyd:7443 --keyd-ca ca.pem \\
                --keyd-cert front-cert.pem --keyd-key front-key.pem
  keyward proxy --config front.json          (docs/configuration.md)
  keyward proxy --listen 127.0.0.1:8443 --upstream unix:/run/app.sock \\
                --cert a.pem --cert b.pem --keyd unix:/run/keyward/keyd.sock \\
                --route b.example.com=127.0.0.1:9000 --proxy-protocol
  keyward proxy --listen 0.0.0.0:8883 --upstream 127.0.0.1:1883 \\
                --psk-process --psk-file psks.txt --tls13-psk
                (PSK-only, e.g. an MQTT broker: TLS 1.3 and TLS 1.2 PSK)

Client mode (plaintext in, TLS out; ghostunnel's client):
  keyward proxy --client --listen 127.0.0.1:8080 --target api.example.com:443 \\
                --ca ca.pem --cert client.pem --key-process --key client-key.pem
  keyward proxy --client --listen 127.0.0.1:1883 --target broker:8883 \\
                --psk-identity sensor-7 --psk-keyd --keyd unix:/run/keyward/keyd.sock
  The client certificate's key and the PSK (--psk-identity) use the key flags
  above; --servername, --ca, --alpn, --min-version, --max-version, --groups,
  --cipher, --psk-hash, --tls13-psk-ke set the TLS toward the target.

Signals: SIGHUP reloads the configuration file and the certificates (new
connections get them; open ones keep theirs; a reload that fails keeps the
running configuration and logs why). SIGTERM or SIGINT stop accepting, let open
connections finish within --shutdown-grace, and exit 0.

Logs: pino JSON on stdout; one "connection" line per connection with time,
client, sni, version, cipher, keyHolder, pskIdentity, outcome, durationMs and
bytes (docs/proxy.md). No key, PIN or PSK is ever logged.`;

interface ProxyFlagValues extends FrontFlagValues {
  upstream?: string;
  route?: string[];
  proxyProtocol?: boolean;
  clientCa?: string;
  clientAuth?: 'required' | 'optional';
  handshakeTimeout?: number;
  idleTimeout?: number;
  maxConnections?: number;
  maxConnectionsPerSource?: number;
  maxPendingKeyOps?: number;
  maxQueuedKeyOps?: number;
  upstreamConnectTimeout?: number;
  shutdownGrace?: number;
  metricsListen?: string;
  logLevel?: string;
  client?: boolean;
  target?: string;
  servername?: string;
  ca?: string;
  pskIdentity?: string;
  insecure?: boolean;
}

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

/** The proxy settings the command line gave. */
function proxySettingsFromFlags(o: ProxyFlagValues, keySpecs: KeySpecList): ProxySettings {
  const s: ProxySettings = frontSettingsFromFlags(o, keySpecs);
  const client = { target: o.target, servername: o.servername, ca: o.ca, pskIdentity: o.pskIdentity, insecure: o.insecure };
  // --target, --servername, --ca, --psk-identity and --insecure only exist in client mode: they imply it.
  if (o.client || definedFields(client)) s.client = definedFields(client) ?? {};
  if (o.upstream !== undefined) s.upstream = o.upstream;
  if (o.route !== undefined) {
    s.routes = {};
    for (const r of o.route) {
      const eq = r.indexOf('=');
      if (eq <= 0) throw new CliError(`--route ${r}: expected SERVERNAME=HOST:PORT or SERVERNAME=unix:/path`);
      s.routes[r.slice(0, eq)] = r.slice(eq + 1);
    }
  }
  if (o.proxyProtocol) s.proxyProtocol = true;
  s.clientAuth = definedFields({ ca: o.clientCa, required: o.clientAuth === undefined ? undefined : o.clientAuth === 'required' });
  s.limits = definedFields({
    handshakeTimeoutMs: o.handshakeTimeout,
    idleTimeoutMs: o.idleTimeout,
    maxConnections: o.maxConnections,
    maxConnectionsPerSource: o.maxConnectionsPerSource,
    maxPendingKeyOps: o.maxPendingKeyOps,
    maxQueuedKeyOps: o.maxQueuedKeyOps,
    upstreamConnectTimeoutMs: o.upstreamConnectTimeout,
    shutdownGraceMs: o.shutdownGrace,
  });
  if (o.metricsListen !== undefined) s.metrics = { listen: o.metricsListen };
  if (o.logLevel !== undefined) s.log = { level: o.logLevel };
  return s;
}

function endpointOf(text: string, what: string, allowPortZero = false): Endpoint {
  try {
    return parseEndpoint(text, what, allowPortZero);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
}

/** What one generation serves, for the start and reload log lines. */
interface OpenedGeneration {
  generation: ProxyGeneration | ProxyClientGeneration;
  /** Where it relays to: the upstream, or the target in client mode. */
  to: string;
  certificates: { cert: string; key: string; delegatedCredentials?: string }[];
  /** Where the PSKs are, and the versions they are used in. */
  psk?: { holder: string; tls12: boolean; tls13: boolean; identity?: string };
}

/**
 * Opens the key holders of `s` and builds a proxy generation; closes what it opened on
 * failure. `log` gets delegated-credential renewal failures and expiries.
 */
export async function openProxyGeneration(s: ProxySettings, log?: Logger): Promise<OpenedGeneration> {
  if (s.client) return openClientGeneration(s, s.client, log);
  if (s.upstream === undefined) throw new CliError('--upstream (upstream) is required: HOST:PORT or unix:/path of the application behind the proxy');
  const upstream = endpointOf(s.upstream, '--upstream');
  const routes: Record<string, Endpoint> = {};
  for (const [name, target] of Object.entries(s.routes ?? {})) routes[name] = endpointOf(target, `--route ${name}`);
  let clientCa: string | undefined;
  if (s.clientAuth) {
    if (s.clientAuth.ca === undefined) throw new CliError('mutual TLS toward clients needs --client-ca (clientAuth.ca): the CA that issues client certificates');
    try {
      clientCa = readFileSync(s.clientAuth.ca, 'utf8');
    } catch (err) {
      throw new CliError(`cannot read --client-ca file ${s.clientAuth.ca}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (!clientCa.includes('-----BEGIN CERTIFICATE-----')) throw new CliError(`--client-ca ${s.clientAuth.ca} holds no PEM certificate`);
  }
  const sources = new KeySources(keySourceOptions(s));
  const psk = pskSettings(s);
  try {
    if (psk?.identityHint !== undefined && Buffer.byteLength(psk.identityHint, 'utf8') > 0xffff) throw new CliError('--psk-hint is longer than 65535 bytes');
    const { certs, keys } = certificateSpecs(s);
    const dc = delegationSettings(s);
    const dcLog: DelegationLog | undefined = log && ((level, message, fields) => log[level](fields, message));
    const loaded = await loadCertificates(
      { listen: '', certs, keys, sources: keySourceOptions(s), ...(psk ? { psk } : {}), ...(dc ? { delegatedCredentials: { ...dc, ...(dcLog ? { log: dcLog } : {}) } } : {}) },
      sources,
    );
    const openedPsk = psk ? await sources.openPsk(psk.source, psk.unknownIdentity) : undefined;
    // Each generation fetches anew: the keys are keyd's, so tickets outlive a reload.
    const ticketKeys = ticketKeysFromKeyd(s) ? await sources.openTicketKeys() : undefined;
    const generation: ProxyGeneration = {
      certificates: loaded.certificates.map((c, i) => ({
        cert: c.cert,
        key: c.key,
        holder: loaded.served[i].backend,
        ...(c.delegatedCredentials ? { delegatedCredentials: c.delegatedCredentials } : {}),
      })),
      ...(openedPsk
        ? {
            psk: {
              holder: openedPsk.holder,
              label: openedPsk.backend,
              ...(psk?.identityHint !== undefined ? { identityHint: psk.identityHint } : {}),
              ...(psk?.tls13 ? { tls13: psk.tls13 } : {}),
            },
          }
        : {}),
      tls: {
        ...(s.tls?.alpn && s.tls.alpn.length > 0 ? { ALPNProtocols: s.tls.alpn } : {}),
        ...serverTlsChoices(s.tls),
        ...(s.tls?.rsaKeyExchange ? { rsaKeyExchange: true } : {}),
        // Mutual TLS: required (default) refuses clients without a certificate from the CA; optional lets them in unauthorized.
        ...(clientCa !== undefined ? { requestCert: true, rejectUnauthorized: s.clientAuth?.required !== false, ca: clientCa } : {}),
        ...(ticketKeys ? { ticketKeys: ticketKeys.ring } : {}),
      },
      upstream,
      routes,
      proxyProtocol: s.proxyProtocol === true,
      limits: s.limits ?? {},
      release: () => sources.close(),
    };
    return {
      generation,
      to: formatEndpoint(upstream),
      certificates: loaded.served.map((c) => ({ cert: c.certPath, key: c.describe(), ...(c.delegation ? { delegatedCredentials: c.delegation } : {}) })),
      ...(openedPsk ? { psk: { holder: openedPsk.describe(), tls12: true, tls13: psk?.tls13 !== undefined } } : {}),
    };
  } catch (err) {
    await sources.close();
    throw err;
  }
}

/** Client mode: the target, the TLS toward it, the client certificate's key and the PSK in their holders. */
async function openClientGeneration(s: ProxySettings, c: NonNullable<ProxySettings['client']>, log?: Logger): Promise<OpenedGeneration> {
  const serverOnly: [unknown, string][] = [
    [s.upstream, '--upstream (upstream)'],
    [s.routes, '--route (routes)'],
    [s.proxyProtocol, '--proxy-protocol (proxyProtocol)'],
    [s.clientAuth, '--client-ca, --client-auth (clientAuth)'],
    [s.tls?.rsaKeyExchange, '--rsa-key-exchange (tls.rsaKeyExchange)'],
    [s.keyd?.ticketKeys || undefined, '--ticket-keys-keyd (keyd.ticketKeys)'],
    [s.delegatedCredentials?.enabled || undefined, '--delegated-credentials (delegatedCredentials)'],
    [s.psk?.tls13 || undefined, '--tls13-psk (psk.tls13)'],
    [s.psk?.tls13Identities, '--tls13-psk-identity (psk.tls13Identities)'],
    [s.psk?.hint, '--psk-hint (psk.hint)'],
    [s.psk?.unknown, '--psk-unknown (psk.unknown)'],
  ];
  const given = serverOnly.filter(([v]) => v !== undefined).map(([, name]) => name);
  if (given.length > 0) throw new CliError(`client mode relays to --target: ${given.join(', ')} belong to server mode`);
  if (c.target === undefined) throw new CliError('client mode needs --target HOST:PORT (client.target): the TLS server to connect to');
  const target = endpointOf(c.target, '--target');
  if (target.kind !== 'tcp') throw new CliError('--target must be HOST:PORT');
  let ca: string | undefined;
  if (c.ca !== undefined) {
    try {
      ca = readFileSync(c.ca, 'utf8');
    } catch (err) {
      throw new CliError(`cannot read --ca file ${c.ca}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw new CliError(`--ca ${c.ca} holds no PEM certificate`);
  }
  const sources = new KeySources(keySourceOptions(s));
  try {
    const t = s.tls;
    // Checked before any holder opens: a bad combination is an error, not a half-started client.
    const offer = clientPskOffer(c.pskIdentity !== undefined, { ...t, cipherSuites: t?.ciphers, hash: s.psk?.hash, pskKe: s.psk?.tls13PskKe }, { cipher: '--cipher (tls.ciphers)' });
    const { certificate, psk } = await openClientCredentials(s, c.pskIdentity, sources);
    if (c.insecure) log?.warn({ target: formatEndpoint(target) }, "client.insecure (--insecure): the target's certificate is NOT verified; anyone on the path can pose as the target. For tests only");
    const generation: ProxyClientGeneration = {
      target: { host: target.host, port: target.port },
      tls: {
        ...(c.servername !== undefined ? { servername: c.servername } : {}),
        ...(ca !== undefined ? { ca } : {}),
        ...(c.insecure ? { rejectUnauthorized: false } : {}),
        ...(t?.alpn && t.alpn.length > 0 ? { ALPNProtocols: t.alpn } : {}),
        ...(t?.minVersion ? { minVersion: t.minVersion } : {}),
        ...(t?.maxVersion ? { maxVersion: t.maxVersion } : {}),
        ...(t?.groups ? { groups: t.groups } : {}),
        ...(t?.ciphers ? { cipherSuites: t.ciphers } : {}),
      },
      ...(certificate ? { certificate: { cert: certificate.cert, key: certificate.key, holder: certificate.backend } } : {}),
      ...(psk && offer ? { psk: { holder: psk.holder, label: psk.backend, identity: psk.identity, tls12: offer.tls12, ...(offer.tls13 ? { tls13: offer.tls13 } : {}) } } : {}),
      limits: s.limits ?? {},
      release: () => sources.close(),
    };
    return {
      generation,
      to: formatEndpoint(target),
      certificates: certificate ? [{ cert: certificate.certPath, key: certificate.describe() }] : [],
      ...(psk && offer ? { psk: { holder: psk.describe(), tls12: offer.tls12, tls13: offer.tls13 !== undefined, identity: psk.identity } } : {}),
    };
  } catch (err) {
    await sources.close();
    throw err;
  }
}

/** The proxy's pino logger: JSON lines with an ISO 8601 time, to stdout or `destination`. */
export function proxyLogger(level: string, destination?: DestinationStream): Logger {
  const options = { level, base: { pid: process.pid, role: 'proxy' }, timestamp: stdTimeFunctions.isoTime };
  return destination ? pino(options, destination) : pino(options);
}

/** A running `keyward proxy`. */
export interface RunningProxy {
  proxy: KeywardProxy;
  logger: Logger;
  address: AddressInfo | string;
  /** Re-reads the configuration and certificates; resolves false (logged) when that fails. */
  reload(): Promise<boolean>;
  stop(): Promise<void>;
}

/** Starts a proxy from settings; `reread` gives fresh settings on reload. */
export async function startProxy(settings: ProxySettings, reread: () => ProxySettings, logger?: Logger): Promise<RunningProxy> {
  const log = logger ?? proxyLogger(settings.log?.level ?? 'info');
  const listen = endpointOf(settings.listen ?? '127.0.0.1:8443', '--listen', true);
  const metricsListen = settings.metrics?.listen !== undefined ? endpointOf(settings.metrics.listen, '--metrics-listen', true) : undefined;
  if (metricsListen?.kind === 'unix') throw new CliError('--metrics-listen must be HOST:PORT');
  const opened = await openProxyGeneration(settings, log);
  let proxy: KeywardProxy;
  try {
    proxy = new KeywardProxy({ listen, logger: log, ...(metricsListen?.kind === 'tcp' ? { metricsListen: { host: metricsListen.host, port: metricsListen.port } } : {}) }, opened.generation);
  } catch (err) {
    await opened.generation.release?.();
    throw new CliError(`invalid TLS settings: ${(err as Error).message}`);
  }
  let addresses;
  try {
    addresses = await proxy.listen();
  } catch (err) {
    await opened.generation.release?.();
    throw new CliError(`cannot listen on ${formatEndpoint(listen)}${metricsListen ? ` or ${formatEndpoint(metricsListen)}` : ''}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let runsAs;
  try {
    runsAs = dropFrontPrivileges(settings.user);
  } catch (err) {
    await proxy.stop(0);
    throw err;
  }
  const where = typeof addresses.address === 'string' ? `unix:${addresses.address}` : formatEndpoint({ kind: 'tcp', host: addresses.address.address, port: addresses.address.port });
  log.info(
    {
      listen: where,
      ...(settings.client ? { mode: 'client', target: opened.to } : { upstream: opened.to }),
      runsAs,
      ...(addresses.metrics ? { metrics: `http://${formatEndpoint({ kind: 'tcp', host: addresses.metrics.address, port: addresses.metrics.port })}/metrics` } : {}),
      certificates: opened.certificates,
      ...(opened.psk ? { psk: opened.psk } : {}),
    },
    'keyward proxy listening',
  );
  let reloading: Promise<boolean> | undefined;
  const reload = (): Promise<boolean> => {
    reloading ??= (async () => {
      try {
        const next = reread();
        if ((next.client === undefined) !== (settings.client === undefined)) {
          throw new Error(`a reload cannot switch to ${next.client ? 'client' : 'server'} mode (the file's client section): restart the proxy`);
        }
        if (next.listen !== undefined && next.listen !== (settings.listen ?? '127.0.0.1:8443')) log.warn({ listen: next.listen }, 'reload: a new listen address needs a restart; keeping the old one');
        const g = await openProxyGeneration(next, log);
        try {
          proxy.reload(g.generation);
        } catch (err) {
          await g.generation.release?.();
          throw new Error(`invalid TLS settings: ${(err as Error).message}`, { cause: err });
        }
        log.info({ [next.client ? 'target' : 'upstream']: g.to, certificates: g.certificates, ...(g.psk ? { psk: g.psk } : {}) }, 'configuration reloaded: new connections use it');
        return true;
      } catch (err) {
        proxy.metrics.reloads.inc({ outcome: 'refused' });
        log.error({ reason: (err as Error).message }, 'reload refused: keeping the running configuration');
        return false;
      } finally {
        reloading = undefined;
      }
    })();
    return reloading;
  };
  return {
    proxy,
    logger: log,
    address: addresses.address,
    reload,
    stop: async () => {
      log.info({ open: proxy.connectionCount }, 'stopping: no new connections; open ones may finish');
      await proxy.stop();
      log.info({}, 'stopped');
    },
  };
}

/** Adds `proxy` to the program. */
export function registerProxyCommand(program: Command): void {
  const keySpecs: KeySpecList = [];
  const cmd = program
    .command('proxy')
    .description('terminate TLS (the key in a key process, keyd or a PKCS#11 token) and relay the plaintext to a TCP or Unix-socket upstream; with --client, accept plaintext and connect out with TLS')
    .option('--listen <addr>', 'address to listen on: HOST:PORT (port 0: any free port) or unix:/path (default 127.0.0.1:8443)')
    .option('--upstream <addr>', 'where to relay: HOST:PORT or unix:/path')
    .addOption(new Option('--route <name=addr>', 'connections whose SNI is NAME (or matches *.domain) go to ADDR instead (repeat)').argParser(collect))
    .option('--proxy-protocol', "send a PROXY protocol v2 header (client address, SNI, ALPN, TLS version, cipher, the client certificate's CN or the PSK identity) first on each upstream connection");
  addTls13PskServerOptions(addFrontOptions(cmd, keySpecs, { clientMode: true }), true);
  cmd
    .option('--client-ca <ca.pem>', 'ask clients for a certificate issued by this CA (mutual TLS); its CN goes upstream in the PROXY v2 header')
    .addOption(new Option('--client-auth <mode>', 'with --client-ca: refuse clients without a valid certificate (required, the default) or let them in unauthenticated (optional)').choices(['required', 'optional']))
    .addOption(new Option('--handshake-timeout <ms>', 'time the TLS handshake may take: with a client, or in client mode with the target (default 10000)').argParser(positiveInt))
    .addOption(new Option('--idle-timeout <ms>', 'close a connection idle this long; 0: never (default 300000)').argParser(nonNegativeInt))
    .addOption(new Option('--max-connections <n>', 'client connections open at once; more are closed at accept (default 10000)').argParser(positiveInt))
    .addOption(new Option('--max-connections-per-source <n>', 'client connections open at once from one IP address (default: no such limit)').argParser(positiveInt))
    .addOption(new Option('--max-pending-key-ops <n>', 'key operations running in key holders at once (default 64)').argParser(positiveInt))
    .addOption(new Option('--max-queued-key-ops <n>', 'key operations waiting for a slot; more fail their handshake (default 1024)').argParser(nonNegativeInt))
    .addOption(new Option('--upstream-connect-timeout <ms>', 'time to connect to the upstream, or in client mode to the target (default 5000)').argParser(positiveInt))
    .addOption(new Option('--shutdown-grace <ms>', 'on SIGTERM, time open connections get to finish (default 10000)').argParser(nonNegativeInt))
    .option('--metrics-listen <addr>', 'serve Prometheus metrics on HOST:PORT/metrics')
    .addOption(new Option('--log-level <level>', 'log level (default info)').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .option('--client', 'client mode: accept plaintext on --listen and connect out with TLS to --target')
    .option('--target <host:port>', 'client mode: the TLS server to connect to')
    .option('--servername <name>', "client mode: SNI and the name the target's certificate must carry (default: the target's host, when a name)")
    .option('--ca <ca.pem>', "client mode: trust anchors for the target's certificate (default: Node's root store)")
    .option('--psk-identity <identity>', 'client mode: the PSK identity to use, as a TLS 1.3 external PSK and with TLS 1.2 PSK suites (--min-version/--max-version for one), the PSK from --psk-keyd, --psk-process --psk-file or --psk-file')
    .option('--insecure', "client mode: do NOT verify the target's certificate (for tests only: anyone on the path can pose as the target; logged as a warning)")
    .addHelpText('after', PROXY_HELP)
    .action(async (o: ProxyFlagValues) => {
      const flags = proxySettingsFromFlags(o, keySpecs);
      const settings = resolveSettings('proxy', o.config, flags);
      const running = await startProxy(settings, () => resolveSettings('proxy', o.config, flags));
      process.on('SIGHUP', () => void running.reload());
      stopOnSignals(() => running.stop());
    });
}
