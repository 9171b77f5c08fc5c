/**
 * keyd.json: loading and validation. Every problem is reported with its JSON path, all at
 * once, and relative paths are resolved against the config file's folder. Secrets are
 * never in the config itself: it names where the passphrase or key file is.
 */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { dirname, isAbsolute, resolve } from 'node:path';
import { DEFAULT_DC_MAX_VALIDITY_MS, MIN_DC_MAX_VALIDITY_MS } from '../keys/delegatedCredentialIssuer.js';
import { MAX_DELEGATED_CREDENTIAL_VALIDITY_MS } from '../tls/wire/delegatedCredential.js';
import type { ClientRule, RateLimit } from './authz.js';
import { DEFAULT_MAX_FRAME_BYTES } from './protocol.js';
import type { KekSource, ScryptParams } from './store.js';

/** Operational limits, all with defaults. */
export interface KeydLimits {
  /** Largest frame accepted (the `length` field), default 1 MiB. */
  maxFrameBytes: number;
  /** Requests one connection may have outstanding, default 4096. */
  maxInFlightPerConnection: number;
  /** Key operations running at once; more wait in a queue (where CANCEL drops them). Default 64. */
  maxConcurrentOps: number;
  /** Queued operations beyond which requests are refused with 'unavailable'. Default 100000. */
  maxQueuedOps: number;
  /** Open authenticated connections per listener, default 1024. Pre-handshake connections have their own budget. */
  maxConnections: number;
  /**
   * Open mutual-TLS connections per client certificate, default 64: one certificate (a
   * compromised front, or one no rule names) cannot take every slot of `maxConnections`.
   */
  maxConnectionsPerCertificate: number;
  /**
   * Error answers (refusals, malformed or unsupported requests) per client identity and
   * second that get audit and log lines of their own, default 100; beyond it they are
   * counted in one summary line per second (errorLineBudget.ts).
   */
  auditedErrorsPerSecond: number;
  /** Connections still in their TLS handshake, default 256; when full, the oldest of the busiest source is closed. */
  maxPendingHandshakes: number;
  /** Connections still in their TLS handshake from one source address, default 16; when full, that source's oldest is closed. */
  maxPendingPerSource: number;
  /** Time from accept to an authenticated TLS session, default 5000 ms; then the connection is closed. */
  handshakeTimeoutMs: number;
  /** Time a frame may take from its first byte to its last, default 10000 ms; then the connection is closed. */
  frameTimeoutMs: number;
  /** A connection with nothing in flight and no bytes for this long is closed; default 120000 ms, 0 never. */
  idleTimeoutMs: number;
  /** How long shutdown waits for in-flight operations, default 10000 ms. */
  shutdownGraceMs: number;
}

/** A token key keyd serves. */
export interface Pkcs11KeyConfig {
  /** Path of the PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so). */
  module: string;
  /** RFC 7512 URI of the private key. */
  uri: string;
  /** File holding the user PIN (or put pin-value / pin-source in the URI). */
  pinFile?: string;
  /**
   * PEM file of the certificate the key serves: its public key is used when the token holds
   * none, must match the token's otherwise, and an RSASSA-PSS one makes the token's RSA key
   * an rsa_pss_pss_* key (PKCS#11 has no RSASSA-PSS key type; see openPkcs11Key).
   */
  certificateFile?: string;
  serverNames: string[];
}

/** A validated configuration with absolute paths. */
export interface KeydConfig {
  /** Folder relative paths were resolved against. */
  baseDir: string;
  listen: {
    tls?: { host: string; port: number };
    unix?: { path: string; mode: number; identity: string };
  };
  /** `crlFile`: CRLs of the client CA(s) (PEM), re-read when it changes. */
  tls?: { certFile: string; keyFile: string; clientCaFile: string; crlFile?: string };
  store: {
    dir: string;
    passphraseEnv?: string;
    passphraseFile?: string;
    keyFile?: string;
    /** An AES key in a PKCS#11 token that wraps the store key. */
    pkcs11Kek?: { module: string; uri: string; pinFile?: string };
    /** Create the store when its folder is missing or empty (default true). */
    create: boolean;
    scrypt?: ScryptParams;
  };
  /** `sync`: 'batch' (line written before the result, fsync every syncIntervalMs / syncLines) or 'always' (fsync before each result). */
  audit: {
    file: string;
    durable: boolean;
    sync: 'batch' | 'always';
    syncIntervalMs: number;
    syncLines: number;
    /** Signed checkpoints (on unless `checkpoints: false`); the key is sealed in the store. */
    checkpoints?: { intervalMs: number; lines: number; publicKeyFile?: string };
    /** Ship each line to a syslog receiver over TLS (RFC 5425). */
    sink?: { host: string; port: number; caFile?: string; certFile?: string; keyFile?: string; serverName?: string; maxQueuedLines: number };
  };
  metrics?: { host: string; port: number };
  log: { level: string };
  clients: ClientRule[];
  pkcs11: Pkcs11KeyConfig[];
  limits: KeydLimits;
  psk: { unknownIdentity: 'random' | 'reject' };
  /** Delegated credentials (RFC 9345): the longest validity keyd signs, ms. */
  delegatedCredentials: { maxValidityMs: number };
  /**
   * Session ticket keys keyd makes, rotates and serves to fronts whose rule says
   * `ticketKeys`: present when some rule does. `rotateMs`: a new sealing key this often;
   * `lifetimeSeconds`: the ticket lifetime the fronts use (a key is served until it last
   * sealed that long ago).
   */
  ticketKeys?: { rotateMs: number; lifetimeSeconds: number };
}

/** The config is invalid; `problems` lists each with its JSON path. */
export class KeydConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`${source}: invalid keyd configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'KeydConfigError';
  }
}

const DEFAULT_LIMITS: KeydLimits = {
  maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
  maxInFlightPerConnection: 4096,
  maxConcurrentOps: 64,
  maxQueuedOps: 100_000,
  maxConnections: 1024,
  maxConnectionsPerCertificate: 64,
  auditedErrorsPerSecond: 100,
  maxPendingHandshakes: 256,
  maxPendingPerSource: 16,
  handshakeTimeoutMs: 5_000,
  frameTimeoutMs: 10_000,
  idleTimeoutMs: 120_000,
  shutdownGraceMs: 10_000,
};

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

type Json = Record<string, unknown>;

class Checker {
  readonly problems: string[] = [];

  constructor(readonly baseDir: string) {}

  fail(path: string, msg: string): undefined {
    this.problems.push(`${path}: ${msg}`);
    return undefined;
  }

  obj(v: unknown, path: string, allowed: readonly string[]): Json | undefined {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return this.fail(path, 'expected an object');
    for (const k of Object.keys(v)) if (!allowed.includes(k)) this.fail(`${path}.${k}`, `unknown setting (allowed: ${allowed.join(', ')})`);
    return v as Json;
  }

  str(v: unknown, path: string): string | undefined {
    if (typeof v !== 'string' || v.length === 0) return this.fail(path, 'expected a non-empty string');
    return v;
  }

  file(v: unknown, path: string): string | undefined {
    const s = this.str(v, path);
    return s === undefined ? undefined : isAbsolute(s) ? s : resolve(this.baseDir, s);
  }

  bool(v: unknown, path: string, dflt: boolean): boolean {
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') this.fail(path, 'expected true or false');
    return v === true;
  }

  int(v: unknown, path: string, min: number, max: number, dflt?: number): number | undefined {
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) return this.fail(path, `expected an integer from ${min} to ${max}`);
    return v;
  }

  num(v: unknown, path: string, min: number, max: number): number | undefined {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) return this.fail(path, `expected a number from ${min} to ${max}`);
    return v;
  }

  strings(v: unknown, path: string): string[] | undefined {
    if (v === undefined) return [];
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string' && s.length > 0)) return this.fail(path, 'expected a list of non-empty strings');
    return v as string[];
  }

  address(v: unknown, path: string): { host: string; port: number } | undefined {
    const s = this.str(v, path);
    if (s === undefined) return undefined;
    const a = parseHostPort(s);
    if (!a) return this.fail(path, `expected "HOST:PORT" (e.g. "127.0.0.1:7443" or "[::1]:7443"), got ${JSON.stringify(s)}`);
    return a;
  }
}

/** Parses "host:port" or "[v6]:port"; undefined when malformed. */
export function parseHostPort(s: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(s);
  if (!m) return undefined;
  const host = m[1] ?? m[2];
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  if (m[1] !== undefined && isIP(host) !== 6) return undefined;
  return { host, port };
}

function checkRateLimit(c: Checker, v: unknown, path: string): RateLimit | undefined {
  if (v === undefined) return undefined;
  const o = c.obj(v, path, ['perSecond', 'burst']);
  if (!o) return undefined;
  const perSecond = c.num(o.perSecond, `${path}.perSecond`, 0.001, 1e7);
  const burst = o.burst === undefined ? Math.max(1, Math.ceil(perSecond ?? 1)) : c.int(o.burst, `${path}.burst`, 1, 1e7);
  return perSecond !== undefined && burst !== undefined ? { perSecond, burst } : undefined;
}

function checkClients(c: Checker, v: unknown): ClientRule[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) {
    c.fail('clients', 'expected a list of client rules');
    return [];
  }
  const out: ClientRule[] = [];
  v.forEach((raw, i) => {
    const p = `clients[${i}]`;
    const o = c.obj(raw, p, ['id', 'keys', 'psks', 'admin', 'bound', 'delegatedCredentials', 'ticketKeys', 'rateLimit']);
    if (!o) return;
    const id = c.str(o.id, `${p}.id`);
    if (id !== undefined && /^sha256:/i.test(id) && !/^sha256:([0-9a-fA-F]{2}:?){31}[0-9a-fA-F]{2}$/.test(id)) {
      c.fail(`${p}.id`, 'a sha256: identity needs the 32-byte certificate fingerprint in hex');
    }
    const keys = c.strings(o.keys, `${p}.keys`);
    const psks = c.strings(o.psks, `${p}.psks`);
    const admin = c.bool(o.admin, `${p}.admin`, false);
    const bound = c.bool(o.bound, `${p}.bound`, false);
    const delegatedCredentials = c.bool(o.delegatedCredentials, `${p}.delegatedCredentials`, false);
    const ticketKeys = c.bool(o.ticketKeys, `${p}.ticketKeys`, false);
    const rateLimit = checkRateLimit(c, o.rateLimit, `${p}.rateLimit`);
    if (id !== undefined && keys && psks) {
      out.push({
        id,
        keys,
        psks,
        admin,
        ...(bound ? { bound } : {}),
        ...(delegatedCredentials ? { delegatedCredentials } : {}),
        ...(ticketKeys ? { ticketKeys } : {}),
        ...(rateLimit ? { rateLimit } : {}),
      });
    }
  });
  return out;
}

function checkPkcs11(c: Checker, v: unknown): Pkcs11KeyConfig[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) {
    c.fail('pkcs11', 'expected a list of token keys');
    return [];
  }
  const out: Pkcs11KeyConfig[] = [];
  v.forEach((raw, i) => {
    const p = `pkcs11[${i}]`;
    const o = c.obj(raw, p, ['module', 'uri', 'pinFile', 'certificate', 'serverNames']);
    if (!o) return;
    const module = c.file(o.module, `${p}.module`);
    const uri = c.str(o.uri, `${p}.uri`);
    if (uri !== undefined && !uri.startsWith('pkcs11:')) c.fail(`${p}.uri`, 'expected an RFC 7512 URI starting with "pkcs11:"');
    const pinFile = o.pinFile === undefined ? undefined : c.file(o.pinFile, `${p}.pinFile`);
    const certificateFile = o.certificate === undefined ? undefined : c.file(o.certificate, `${p}.certificate`);
    const serverNames = c.strings(o.serverNames, `${p}.serverNames`);
    if (module && uri && serverNames) out.push({ module, uri, serverNames, ...(pinFile ? { pinFile } : {}), ...(certificateFile ? { certificateFile } : {}) });
  });
  return out;
}

/** Rotation bounds of ticket keys, seconds: a short period only churns the store; a long one keeps a stolen key useful longer. */
const TICKET_ROTATE_SECONDS = { min: 2, max: 7 * 86_400, dflt: 3_600 };

/**
 * ticketKeys: `{ "rotateSeconds", "ticketLifetimeSeconds" }`; on when a client rule grants
 * `ticketKeys` (a section no rule uses is a mistake: nobody could fetch the keys).
 */
function checkTicketKeys(c: Checker, v: unknown, clients: readonly ClientRule[]): KeydConfig['ticketKeys'] {
  const granted = clients.some((r) => r.ticketKeys === true);
  if (v === undefined) return granted ? { rotateMs: TICKET_ROTATE_SECONDS.dflt * 1000, lifetimeSeconds: 7_200 } : undefined;
  const o = c.obj(v, 'ticketKeys', ['rotateSeconds', 'ticketLifetimeSeconds']);
  if (!o) return undefined;
  const rotate = c.int(o.rotateSeconds, 'ticketKeys.rotateSeconds', TICKET_ROTATE_SECONDS.min, TICKET_ROTATE_SECONDS.max, TICKET_ROTATE_SECONDS.dflt);
  // RFC 8446 4.6.1: a ticket lives at most seven days.
  const lifetime = c.int(o.ticketLifetimeSeconds, 'ticketKeys.ticketLifetimeSeconds', 1, 604_800, 7_200);
  if (!granted) c.fail('ticketKeys', 'no client rule has "ticketKeys": true, so no front could fetch them');
  return rotate !== undefined && lifetime !== undefined ? { rotateMs: rotate * 1000, lifetimeSeconds: lifetime } : undefined;
}

/** audit.checkpoints: on by default; `false` turns them off. */
function checkCheckpoints(c: Checker, v: unknown): KeydConfig['audit']['checkpoints'] {
  if (v === false) return undefined;
  if (v === undefined || v === true) return { intervalMs: 10_000, lines: 10_000 };
  const o = c.obj(v, 'audit.checkpoints', ['intervalMs', 'lines', 'publicKeyFile']);
  if (!o) return undefined;
  const intervalMs = c.int(o.intervalMs, 'audit.checkpoints.intervalMs', 100, 3_600_000, 10_000) ?? 10_000;
  const lines = c.int(o.lines, 'audit.checkpoints.lines', 1, 10_000_000, 10_000) ?? 10_000;
  const publicKeyFile = o.publicKeyFile === undefined ? undefined : c.file(o.publicKeyFile, 'audit.checkpoints.publicKeyFile');
  return { intervalMs, lines, ...(publicKeyFile ? { publicKeyFile } : {}) };
}

/** audit.sink: `{ "syslogTls": "HOST:PORT", "ca", "cert", "key", "serverName", "maxQueuedLines" }`. */
function checkSink(c: Checker, v: unknown): KeydConfig['audit']['sink'] {
  if (v === undefined) return undefined;
  const o = c.obj(v, 'audit.sink', ['syslogTls', 'ca', 'cert', 'key', 'serverName', 'maxQueuedLines']);
  if (!o) return undefined;
  const addr = c.address(o.syslogTls, 'audit.sink.syslogTls');
  const caFile = o.ca === undefined ? undefined : c.file(o.ca, 'audit.sink.ca');
  const certFile = o.cert === undefined ? undefined : c.file(o.cert, 'audit.sink.cert');
  const keyFile = o.key === undefined ? undefined : c.file(o.key, 'audit.sink.key');
  if ((certFile === undefined) !== (keyFile === undefined)) c.fail('audit.sink', 'give both "cert" and "key" (the client certificate), or neither');
  const serverName = o.serverName === undefined ? undefined : c.str(o.serverName, 'audit.sink.serverName');
  const maxQueuedLines = c.int(o.maxQueuedLines, 'audit.sink.maxQueuedLines', 1, 10_000_000, 100_000) ?? 100_000;
  if (!addr) return undefined;
  return { ...addr, maxQueuedLines, ...(caFile ? { caFile } : {}), ...(certFile ? { certFile } : {}), ...(keyFile ? { keyFile } : {}), ...(serverName ? { serverName } : {}) };
}

/**
 * Validates parsed keyd.json content. `source` names it in messages; relative paths are
 * resolved against `baseDir`. Throws KeydConfigError listing every problem.
 */
export function parseKeydConfig(raw: unknown, baseDir: string, source = 'keyd.json'): KeydConfig {
  const c = new Checker(baseDir);
  const top = c.obj(raw, '(top)', ['listen', 'tls', 'store', 'audit', 'metrics', 'log', 'clients', 'pkcs11', 'limits', 'psk', 'delegatedCredentials', 'ticketKeys']);
  if (!top) throw new KeydConfigError(source, c.problems);

  const listen: KeydConfig['listen'] = {};
  const l = c.obj(top.listen, 'listen', ['tls', 'unix', 'unixMode', 'unixIdentity']);
  if (l) {
    if (l.tls !== undefined) listen.tls = c.address(l.tls, 'listen.tls');
    if (l.unix !== undefined) {
      const path = c.file(l.unix, 'listen.unix');
      let mode = 0o600;
      if (l.unixMode !== undefined) {
        if (typeof l.unixMode !== 'string' || !/^0?[0-7]{3}$/.test(l.unixMode)) c.fail('listen.unixMode', 'expected an octal mode string such as "0600" or "0660"');
        else mode = parseInt(l.unixMode, 8);
        if (mode & 0o007) c.fail('listen.unixMode', 'the socket must not be open to "other" users');
      }
      const identity = l.unixIdentity === undefined ? 'unix' : c.str(l.unixIdentity, 'listen.unixIdentity');
      if (path && identity) listen.unix = { path, mode, identity };
    } else if (l.unixMode !== undefined || l.unixIdentity !== undefined) {
      c.fail('listen', 'unixMode and unixIdentity need listen.unix');
    }
    if (l.tls === undefined && l.unix === undefined) c.fail('listen', 'give "tls" (HOST:PORT) and/or "unix" (socket path)');
  }

  let tls: KeydConfig['tls'];
  if (top.tls !== undefined) {
    const t = c.obj(top.tls, 'tls', ['cert', 'key', 'clientCa', 'crl']);
    if (t) {
      const certFile = c.file(t.cert, 'tls.cert');
      const keyFile = c.file(t.key, 'tls.key');
      const clientCaFile = c.file(t.clientCa, 'tls.clientCa');
      const crlFile = t.crl === undefined ? undefined : c.file(t.crl, 'tls.crl');
      if (certFile && keyFile && clientCaFile) tls = { certFile, keyFile, clientCaFile, ...(crlFile ? { crlFile } : {}) };
    }
  } else if (l?.tls !== undefined) {
    c.fail('tls', 'listen.tls needs tls.cert, tls.key and tls.clientCa (mutual TLS is mandatory)');
  }

  let store: KeydConfig['store'] | undefined;
  const s = c.obj(top.store, 'store', ['dir', 'passphraseEnv', 'passphraseFile', 'keyFile', 'pkcs11Kek', 'create', 'scrypt']);
  if (s) {
    const dir = c.file(s.dir, 'store.dir');
    const sources = ['passphraseEnv', 'passphraseFile', 'keyFile', 'pkcs11Kek'].filter((k) => s[k] !== undefined);
    if (sources.length !== 1) c.fail('store', 'give exactly one of "passphraseEnv" (environment variable name), "passphraseFile", "keyFile" or "pkcs11Kek"');
    let pkcs11Kek: { module: string; uri: string; pinFile?: string } | undefined;
    if (s.pkcs11Kek !== undefined) {
      const o = c.obj(s.pkcs11Kek, 'store.pkcs11Kek', ['module', 'uri', 'pinFile']);
      if (o) {
        const module = c.file(o.module, 'store.pkcs11Kek.module');
        const uri = c.str(o.uri, 'store.pkcs11Kek.uri');
        if (uri !== undefined && !uri.startsWith('pkcs11:')) c.fail('store.pkcs11Kek.uri', 'expected an RFC 7512 URI starting with "pkcs11:"');
        const pinFile = o.pinFile === undefined ? undefined : c.file(o.pinFile, 'store.pkcs11Kek.pinFile');
        if (module && uri) pkcs11Kek = { module, uri, ...(pinFile ? { pinFile } : {}) };
      }
    }
    const passphraseEnv = s.passphraseEnv === undefined ? undefined : c.str(s.passphraseEnv, 'store.passphraseEnv');
    const passphraseFile = s.passphraseFile === undefined ? undefined : c.file(s.passphraseFile, 'store.passphraseFile');
    const keyFile = s.keyFile === undefined ? undefined : c.file(s.keyFile, 'store.keyFile');
    let scrypt: ScryptParams | undefined;
    if (s.scrypt !== undefined) {
      const o = c.obj(s.scrypt, 'store.scrypt', ['N', 'r', 'p']);
      if (o) {
        const N = c.int(o.N, 'store.scrypt.N', 1024, 1 << 22);
        if (N !== undefined && (N & (N - 1)) !== 0) c.fail('store.scrypt.N', 'must be a power of two');
        const r = c.int(o.r, 'store.scrypt.r', 1, 32, 8);
        const p = c.int(o.p, 'store.scrypt.p', 1, 16, 1);
        if (N !== undefined && r !== undefined && p !== undefined) scrypt = { N, r, p };
      }
    }
    const create = c.bool(s.create, 'store.create', true);
    if (dir) {
      store = {
        dir,
        create,
        ...(passphraseEnv ? { passphraseEnv } : {}),
        ...(passphraseFile ? { passphraseFile } : {}),
        ...(keyFile ? { keyFile } : {}),
        ...(pkcs11Kek ? { pkcs11Kek } : {}),
        ...(scrypt ? { scrypt } : {}),
      };
    }
  }

  let audit: KeydConfig['audit'] | undefined;
  const a = c.obj(top.audit, 'audit', ['file', 'durable', 'sync', 'syncIntervalMs', 'syncLines', 'checkpoints', 'sink']);
  if (a) {
    const file = c.file(a.file, 'audit.file');
    const durable = c.bool(a.durable, 'audit.durable', true);
    const sync = a.sync === undefined ? 'batch' : a.sync;
    if (sync !== 'batch' && sync !== 'always') c.fail('audit.sync', "expected 'batch' or 'always'");
    const syncIntervalMs = c.int(a.syncIntervalMs, 'audit.syncIntervalMs', 1, 60_000, 10) ?? 10;
    const syncLines = c.int(a.syncLines, 'audit.syncLines', 1, 1_000_000, 64) ?? 64;
    const checkpoints = checkCheckpoints(c, a.checkpoints);
    const sink = checkSink(c, a.sink);
    if (file) audit = { file, durable, sync: sync === 'always' ? 'always' : 'batch', syncIntervalMs, syncLines, ...(checkpoints ? { checkpoints } : {}), ...(sink ? { sink } : {}) };
  }

  let metrics: KeydConfig['metrics'];
  if (top.metrics !== undefined) {
    const m = c.obj(top.metrics, 'metrics', ['listen']);
    if (m) metrics = c.address(m.listen, 'metrics.listen');
  }

  let level = 'info';
  if (top.log !== undefined) {
    const lg = c.obj(top.log, 'log', ['level']);
    if (lg?.level !== undefined) {
      if (typeof lg.level !== 'string' || !LOG_LEVELS.includes(lg.level)) c.fail('log.level', `expected one of ${LOG_LEVELS.join(', ')}`);
      else level = lg.level;
    }
  }

  const clients = checkClients(c, top.clients);
  if (clients.length === 0 && !c.problems.some((p) => p.startsWith('clients'))) c.fail('clients', 'no client rules: nobody could use keyd');
  const pkcs11 = checkPkcs11(c, top.pkcs11);

  const limits: KeydLimits = { ...DEFAULT_LIMITS };
  if (top.limits !== undefined) {
    const o = c.obj(top.limits, 'limits', Object.keys(DEFAULT_LIMITS));
    if (o) {
      limits.maxFrameBytes = c.int(o.maxFrameBytes, 'limits.maxFrameBytes', 4096, 64 << 20, DEFAULT_LIMITS.maxFrameBytes) ?? DEFAULT_LIMITS.maxFrameBytes;
      limits.maxInFlightPerConnection = c.int(o.maxInFlightPerConnection, 'limits.maxInFlightPerConnection', 1, 1 << 20, DEFAULT_LIMITS.maxInFlightPerConnection) ?? 0;
      limits.maxConcurrentOps = c.int(o.maxConcurrentOps, 'limits.maxConcurrentOps', 1, 65536, DEFAULT_LIMITS.maxConcurrentOps) ?? 0;
      limits.maxQueuedOps = c.int(o.maxQueuedOps, 'limits.maxQueuedOps', 0, 1e7, DEFAULT_LIMITS.maxQueuedOps) ?? 0;
      limits.maxConnections = c.int(o.maxConnections, 'limits.maxConnections', 1, 1e6, DEFAULT_LIMITS.maxConnections) ?? 0;
      limits.maxConnectionsPerCertificate = c.int(o.maxConnectionsPerCertificate, 'limits.maxConnectionsPerCertificate', 1, 1e6, DEFAULT_LIMITS.maxConnectionsPerCertificate) ?? 0;
      limits.auditedErrorsPerSecond = c.int(o.auditedErrorsPerSecond, 'limits.auditedErrorsPerSecond', 1, 1e6, DEFAULT_LIMITS.auditedErrorsPerSecond) ?? 0;
      limits.maxPendingHandshakes = c.int(o.maxPendingHandshakes, 'limits.maxPendingHandshakes', 1, 1e6, DEFAULT_LIMITS.maxPendingHandshakes) ?? 0;
      limits.maxPendingPerSource = c.int(o.maxPendingPerSource, 'limits.maxPendingPerSource', 1, 1e6, DEFAULT_LIMITS.maxPendingPerSource) ?? 0;
      limits.handshakeTimeoutMs = c.int(o.handshakeTimeoutMs, 'limits.handshakeTimeoutMs', 100, 600_000, DEFAULT_LIMITS.handshakeTimeoutMs) ?? 0;
      limits.frameTimeoutMs = c.int(o.frameTimeoutMs, 'limits.frameTimeoutMs', 100, 600_000, DEFAULT_LIMITS.frameTimeoutMs) ?? 0;
      limits.idleTimeoutMs = c.int(o.idleTimeoutMs, 'limits.idleTimeoutMs', 0, 86_400_000, DEFAULT_LIMITS.idleTimeoutMs) ?? 0;
      if (limits.idleTimeoutMs > 0 && limits.idleTimeoutMs < 1000) c.fail('limits.idleTimeoutMs', 'expected 0 (never) or at least 1000 ms');
      limits.shutdownGraceMs = c.int(o.shutdownGraceMs, 'limits.shutdownGraceMs', 0, 3_600_000, DEFAULT_LIMITS.shutdownGraceMs) ?? 0;
    }
  }

  let unknownIdentity: 'random' | 'reject' = 'random';
  if (top.psk !== undefined) {
    const o = c.obj(top.psk, 'psk', ['unknownIdentity']);
    if (o?.unknownIdentity !== undefined) {
      if (o.unknownIdentity !== 'random' && o.unknownIdentity !== 'reject') c.fail('psk.unknownIdentity', 'expected "random" or "reject"');
      else unknownIdentity = o.unknownIdentity;
    }
  }

  let dcMaxValidityMs = DEFAULT_DC_MAX_VALIDITY_MS;
  if (top.delegatedCredentials !== undefined) {
    const o = c.obj(top.delegatedCredentials, 'delegatedCredentials', ['maxValiditySeconds']);
    const max = o && c.int(o.maxValiditySeconds, 'delegatedCredentials.maxValiditySeconds', MIN_DC_MAX_VALIDITY_MS / 1000, MAX_DELEGATED_CREDENTIAL_VALIDITY_MS / 1000, DEFAULT_DC_MAX_VALIDITY_MS / 1000);
    if (max !== undefined) dcMaxValidityMs = max * 1000;
  }

  const ticketKeys = checkTicketKeys(c, top.ticketKeys, clients);

  if (c.problems.length > 0 || !store || !audit) throw new KeydConfigError(source, c.problems);
  return {
    baseDir,
    listen,
    ...(tls ? { tls } : {}),
    store,
    audit,
    ...(metrics ? { metrics } : {}),
    log: { level },
    clients,
    pkcs11,
    limits,
    psk: { unknownIdentity },
    delegatedCredentials: { maxValidityMs: dcMaxValidityMs },
    ...(ticketKeys ? { ticketKeys } : {}),
  };
}

/** Reads and validates a keyd.json file. */
export async function loadKeydConfig(path: string): Promise<KeydConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new KeydConfigError(path, [`cannot read the file (${(e as NodeJS.ErrnoException).code ?? 'error'})`]);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    // V8's message quotes a stretch of the text, and a pkcs11 URI here may carry pin-value:
    // name only the place.
    const at = /position (\d+)/.exec((e as Error).message);
    throw new KeydConfigError(path, [`not valid JSON${at ? ` (at character ${at[1]})` : ''}`]);
  }
  return parseKeydConfig(raw, dirname(resolve(path)), path);
}

/**
 * Where the store's key-encryption key comes from, read now: the passphrase from its
 * environment variable or file (one trailing newline dropped), the key file's path, or
 * the token key's location.
 */
export async function resolveKekSource(store: KeydConfig['store'], env: NodeJS.ProcessEnv = process.env): Promise<KekSource> {
  if (store.keyFile) return { type: 'keyfile', path: store.keyFile };
  if (store.pkcs11Kek) return { type: 'pkcs11', ...store.pkcs11Kek };
  if (store.passphraseEnv) {
    const v = env[store.passphraseEnv];
    if (v === undefined || v.length === 0) throw new Error(`store.passphraseEnv: the environment variable ${store.passphraseEnv} is not set`);
    return { type: 'passphrase', passphrase: v };
  }
  if (store.passphraseFile) {
    let b: Buffer;
    try {
      b = await readFile(store.passphraseFile);
    } catch (e) {
      throw new Error(`store.passphraseFile: cannot read ${store.passphraseFile} (${(e as NodeJS.ErrnoException).code ?? 'error'})`, { cause: e });
    }
    let end = b.length;
    if (end > 0 && b[end - 1] === 0x0a) end--;
    if (end > 0 && b[end - 1] === 0x0d) end--;
    const pass = Buffer.from(b.subarray(0, end));
    b.fill(0);
    if (pass.length === 0) throw new Error(`store.passphraseFile: ${store.passphraseFile} is empty`);
    return { type: 'passphrase', passphrase: pass };
  }
  throw new Error('store: no passphrase source');
}
