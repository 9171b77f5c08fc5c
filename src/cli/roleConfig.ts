/**
 * The configuration file of a front (`keyward proxy --config front.json`, `keyward serve
 * --config serve.json`): the same settings as the command-line flags, validated at start.
 * Every problem is reported at once, each naming the file, the line and the field; relative
 * paths are resolved against the file's folder. Flags given on the command line override
 * the file's values. The file never holds a secret: it names where keys and PINs are.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { groupByName, suiteByName } from '../node/clientSocket.js';
import { parseEndpoint } from '../proxy/endpoint.js';
import { parseDcValidity } from './delegation.js';
import { childPath, JsonSyntaxError, parseJsonWithLines } from './jsonLines.js';

/** A certificate chain and where its key is (at most one of key, pkcs11, keydKeyId; none: keyd by the certificate's key id). */
export interface CertificateEntry {
  cert: string;
  /** Key file: read by a key process with keyProcess, else by this process. */
  key?: string;
  pkcs11?: string;
  keydKeyId?: string;
}

/** Settings shared by `serve` and `proxy`. */
export interface FrontSettings {
  listen?: string;
  certificates?: CertificateEntry[];
  keyProcess?: boolean;
  keyUser?: string;
  /** `ticketKeys`: the session ticket keys come from keyd (--ticket-keys-keyd). */
  keyd?: { addresses?: string[]; ca?: string; cert?: string; key?: string; bound?: boolean; deadlineMs?: number; ticketKeys?: boolean };
  pkcs11?: { module?: string; pinFile?: string };
  /**
   * Where the PSKs are and how a server uses them. `tls13`, `hash`, `tls13Identities` and
   * `tls13PskKe`: TLS 1.3 external PSKs from the same source (--tls13-psk ...); a client
   * (proxy client mode) reads `hash` and `tls13PskKe` (offer psk_ke only) as connect does.
   */
  psk?: {
    keyd?: boolean;
    file?: string;
    process?: boolean;
    hint?: string;
    unknown?: 'random' | 'reject';
    tls13?: boolean;
    hash?: 'sha256' | 'sha384';
    tls13Identities?: string[];
    tls13PskKe?: boolean;
  };
  /** Versions, ALPN, key-exchange `groups` (groupByName's names) and `ciphers` (IANA names), in preference order. */
  tls?: { alpn?: string[]; minVersion?: 'TLSv1.2' | 'TLSv1.3'; maxVersion?: 'TLSv1.2' | 'TLSv1.3'; rsaKeyExchange?: boolean; groups?: string[]; ciphers?: string[] };
  /** Mutual TLS toward clients: `ca` of client certificates; `required` refuses clients without one (default: true for proxy, false for serve). */
  clientAuth?: { ca?: string; required?: boolean };
  /** Drop from root to this user once listening and the key processes are started. */
  user?: string;
  /**
   * Delegated credentials (RFC 9345; --delegated-credentials, --dc-validity): on with
   * `enabled`, each valid for `validity` (30m, 1h, 2d; default 1h). In the file: true, or
   * { "validity": "2h" } (on), or { "enabled": false }.
   */
  delegatedCredentials?: { enabled?: boolean; validity?: string };
  limits?: FrontLimitSettings;
  log?: { level?: string };
}

/** Limits every front has (serve and proxy): what keeps idle or slow connections from starving real clients. */
export interface FrontLimitSettings {
  handshakeTimeoutMs?: number;
  maxConnections?: number;
  maxConnectionsPerSource?: number;
}

/** Limits of the proxy, as the file names them (milliseconds and counts). */
export interface ProxyLimitSettings extends FrontLimitSettings {
  idleTimeoutMs?: number;
  maxPendingKeyOps?: number;
  maxQueuedKeyOps?: number;
  upstreamConnectTimeoutMs?: number;
  shutdownGraceMs?: number;
}

/** Client mode of the proxy (`--client`): plaintext in, TLS out to `target`. */
export interface ProxyClientSettings {
  target?: string;
  servername?: string;
  /** Trust anchors for the target's certificate (default: Node's root store). */
  ca?: string;
  pskIdentity?: string;
  /** Do not verify the target's certificate (--insecure): for tests only. */
  insecure?: boolean;
}

/** Settings of `proxy` beyond the shared ones. */
export interface ProxySettings extends FrontSettings {
  /** Present: client mode. */
  client?: ProxyClientSettings;
  upstream?: string;
  routes?: Record<string, string>;
  proxyProtocol?: boolean;
  limits?: ProxyLimitSettings;
  metrics?: { listen?: string };
}

export type Role = 'serve' | 'proxy';

/** One problem: the field's path, its line (when known) and what is wrong. */
export interface ConfigProblem {
  field: string;
  line?: number;
  message: string;
}

/** The file is invalid; the message lists every problem as "FILE:LINE: FIELD: message". */
export class RoleConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: ConfigProblem[],
  ) {
    super(problems.map((p) => `${file}${p.line !== undefined ? `:${p.line}` : ''}: ${p.field || '(top level)'}: ${p.message}`).join('\n'));
    this.name = 'RoleConfigError';
  }
}

type Check = (v: unknown, path: string, ctx: Ctx) => unknown;

interface Ctx {
  problems: ConfigProblem[];
  lineOf(path: string): number | undefined;
  baseDir: string;
}

function problem(ctx: Ctx, path: string, message: string): undefined {
  // A missing field has no line of its own: name the line of the object it belongs in.
  let line: number | undefined;
  for (let p = path; line === undefined && p !== ''; p = p.replace(/(\.[^.[\]]*|\[\d+\])$/, '')) {
    line = ctx.lineOf(p);
    if (!/(\.[^.[\]]*|\[\d+\])$/.test(p)) break;
  }
  ctx.problems.push({ field: path, line: line ?? ctx.lineOf(''), message });
  return undefined;
}

const str: Check = (v, p, ctx) => (typeof v === 'string' && v.length > 0 ? v : problem(ctx, p, `expected a non-empty string, got ${describe(v)}`));
const bool: Check = (v, p, ctx) => (typeof v === 'boolean' ? v : problem(ctx, p, `expected true or false, got ${describe(v)}`));
const file: Check = (v, p, ctx) => {
  const s = str(v, p, ctx) as string | undefined;
  return s === undefined ? undefined : isAbsolute(s) ? s : resolve(ctx.baseDir, s);
};
const int =
  (min: number, max = 2 ** 31 - 1): Check =>
  (v, p, ctx) =>
    typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? v : problem(ctx, p, `expected an integer from ${min} to ${max}, got ${describe(v)}`);
const oneOf =
  (...allowed: string[]): Check =>
  (v, p, ctx) =>
    typeof v === 'string' && allowed.includes(v) ? v : problem(ctx, p, `expected one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${describe(v)}`);
const endpoint =
  (allowPortZero: boolean, unix = true): Check =>
  (v, p, ctx) => {
    const s = str(v, p, ctx) as string | undefined;
    if (s === undefined) return undefined;
    try {
      const e = parseEndpoint(s, p, allowPortZero);
      if (e.kind === 'unix' && !unix) return problem(ctx, p, 'expected HOST:PORT (a Unix socket is not possible here)');
      return e.kind === 'unix' && !isAbsolute(e.path) ? `unix:${resolve(ctx.baseDir, e.path)}` : s;
    } catch (err) {
      return problem(ctx, p, (err as Error).message.replace(`${p}: `, '').replace(`${p} `, ''));
    }
  };
const list =
  (item: Check, nonEmpty = false): Check =>
  (v, p, ctx) => {
    if (!Array.isArray(v)) return problem(ctx, p, `expected a list, got ${describe(v)}`);
    if (nonEmpty && v.length === 0) return problem(ctx, p, 'expected at least one entry');
    return v.map((x, i) => item(x, childPath(p, i), ctx));
  };
const object =
  (fields: Record<string, Check>, extra?: (o: Record<string, unknown>, p: string, ctx: Ctx) => void): Check =>
  (v, p, ctx) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return problem(ctx, p, `expected an object, got ${describe(v)}`);
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const check = fields[k];
      if (!check) {
        problem(ctx, childPath(p, k), `unknown field (known here: ${Object.keys(fields).join(', ')})`);
        continue;
      }
      const r = check(x, childPath(p, k), ctx);
      if (r !== undefined) out[k] = r;
    }
    extra?.(out, p, ctx);
    return out;
  };

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  return typeof v === 'string' ? JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v) : String(v);
}

const certificateEntry = object(
  { cert: file, key: file, pkcs11: str, keydKeyId: str },
  (o, p, ctx) => {
    if (o.cert === undefined && ctx.problems.every((x) => !x.field.startsWith(p))) problem(ctx, childPath(p, 'cert'), 'required: the certificate chain file');
    const sources = ['key', 'pkcs11', 'keydKeyId'].filter((k) => o[k] !== undefined);
    if (sources.length > 1) problem(ctx, childPath(p, sources[1]), `give one of key, pkcs11, keydKeyId (this entry has ${sources.join(' and ')})`);
    if (typeof o.keydKeyId === 'string' && !/^[0-9a-fA-F]{64}$/.test(o.keydKeyId)) problem(ctx, childPath(p, 'keydKeyId'), 'expected the 64 hex digits of the key id');
  },
);

const dcValidity: Check = (v, p, ctx) => {
  const s = str(v, p, ctx) as string | undefined;
  if (s === undefined) return undefined;
  try {
    parseDcValidity(s, p);
    return s;
  } catch (err) {
    return problem(ctx, p, (err as Error).message.replace(`${p} ${s}: `, ''));
  }
};

/** true, false, or an object whose presence means on unless it says `"enabled": false`. */
const delegatedCredentials: Check = (v, p, ctx) => {
  if (typeof v === 'boolean') return { enabled: v };
  const o = object({ enabled: bool, validity: dcValidity })(v, p, ctx) as { enabled?: boolean; validity?: string } | undefined;
  return o && { enabled: true, ...o };
};

const pskFields: Record<string, Check> = {
  keyd: bool,
  file,
  process: bool,
  hint: str,
  unknown: oneOf('random', 'reject'),
  tls13: bool,
  hash: oneOf('sha256', 'sha384'),
  tls13Identities: list(str, true),
  tls13PskKe: bool,
};

/** A list of names each `byName` knows (groups, cipher suites): an unknown one is named with the field. */
const namesOf =
  (byName: (name: string) => unknown): Check =>
  (v, p, ctx) => {
    const names = list(str, true)(v, p, ctx) as (string | undefined)[] | undefined;
    names?.forEach((name, i) => {
      if (name === undefined) return;
      try {
        byName(name);
      } catch (err) {
        problem(ctx, childPath(p, i), (err as Error).message);
      }
    });
    return names;
  };

const frontFields: Record<string, Check> = {
  listen: endpoint(true),
  certificates: list(certificateEntry),
  keyProcess: bool,
  keyUser: str,
  keyd: object({
    addresses: list((v, p, ctx) => {
      const s = str(v, p, ctx) as string | undefined;
      if (s !== undefined && !/^(tls:\/\/.+:\d+|unix:.+)$/.test(s)) return problem(ctx, p, `expected tls://HOST:PORT or unix:/path, got ${describe(s)}`);
      return s !== undefined && s.startsWith('unix:') && !isAbsolute(s.slice(5)) ? `unix:${resolve(ctx.baseDir, s.slice(5))}` : s;
    }, true),
    ca: file,
    cert: file,
    key: file,
    bound: bool,
    deadlineMs: int(1),
    ticketKeys: bool,
  }),
  pkcs11: object({ module: file, pinFile: file }),
  psk: object(pskFields),
  tls: object({
    alpn: list(str),
    minVersion: oneOf('TLSv1.2', 'TLSv1.3'),
    maxVersion: oneOf('TLSv1.2', 'TLSv1.3'),
    rsaKeyExchange: bool,
    groups: namesOf(groupByName),
    ciphers: namesOf(suiteByName),
  }),
  clientAuth: object({ ca: file, required: bool }),
  user: str,
  delegatedCredentials,
  limits: object({ handshakeTimeoutMs: int(1), maxConnections: int(1), maxConnectionsPerSource: int(1) }),
  log: object({ level: oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent') }),
};

const proxyFields: Record<string, Check> = {
  ...frontFields,
  upstream: endpoint(false),
  routes: (v, p, ctx) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return problem(ctx, p, `expected an object of server name to upstream, got ${describe(v)}`);
    const out: Record<string, string> = {};
    for (const [name, target] of Object.entries(v as Record<string, unknown>)) {
      const fp = childPath(p, name);
      if (!/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/.test(name)) problem(ctx, fp, 'expected a server name (exact, or *.domain) as the key');
      const e = endpoint(false)(target, fp, ctx) as string | undefined;
      if (e !== undefined) out[name] = e;
    }
    return out;
  },
  proxyProtocol: bool,
  client: object({ target: endpoint(false, false), servername: str, ca: file, pskIdentity: str, insecure: bool }),
  limits: object({
    handshakeTimeoutMs: int(1),
    idleTimeoutMs: int(0),
    maxConnections: int(1),
    maxConnectionsPerSource: int(1),
    maxPendingKeyOps: int(1),
    maxQueuedKeyOps: int(0),
    upstreamConnectTimeoutMs: int(1),
    shutdownGraceMs: int(0),
  }),
  metrics: object({ listen: endpoint(true, false) }),
};

/** Validates a parsed configuration object for `role`; `lineOf` gives a path's line. */
export function validateRoleConfig<R extends Role>(role: R, value: unknown, source: string, baseDir: string, lineOf: (path: string) => number | undefined = () => undefined): R extends 'proxy' ? ProxySettings : FrontSettings {
  const ctx: Ctx = { problems: [], lineOf, baseDir };
  const out = object(role === 'proxy' ? proxyFields : frontFields)(value, '', ctx);
  if (ctx.problems.length > 0) throw new RoleConfigError(source, ctx.problems);
  return out as R extends 'proxy' ? ProxySettings : FrontSettings;
}

/** Reads and validates `path` for `role`. Throws RoleConfigError naming the file, line and field. */
export function loadRoleConfig<R extends Role>(role: R, path: string): R extends 'proxy' ? ProxySettings : FrontSettings {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new RoleConfigError(path, [{ field: '', message: `cannot read the file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }]);
  }
  let parsed;
  try {
    parsed = parseJsonWithLines(text);
  } catch (err) {
    if (err instanceof JsonSyntaxError) throw new RoleConfigError(path, [{ field: '', line: err.line, message: `not valid JSON: ${err.reason} (column ${err.column})` }]);
    throw err;
  }
  return validateRoleConfig(role, parsed.value, path, dirname(resolve(path)), parsed.lineOf);
}

/**
 * The file's settings with the command line's on top: a field given as a flag replaces the
 * file's; nested groups (keyd, pkcs11, psk, tls, limits, metrics, log) merge field by field.
 */
export function mergeSettings<T extends FrontSettings>(fromFile: T, fromFlags: T): T {
  const out: Record<string, unknown> = { ...(fromFile as Record<string, unknown>) };
  for (const [k, v] of Object.entries(fromFlags)) {
    if (v === undefined) continue;
    const base = out[k];
    out[k] = typeof v === 'object' && v !== null && !Array.isArray(v) && typeof base === 'object' && base !== null && !Array.isArray(base) ? { ...base, ...stripUndefined(v as Record<string, unknown>) } : v;
  }
  return out as T;
}

function stripUndefined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}
