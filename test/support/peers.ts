/**
 * Real TLS peers for interop tests, each bounded in time: openssl s_client, curl,
 * gnutls-cli, Python's ssl module, and node:tls in-process. They all connect to
 * 127.0.0.1:PORT. A run that exceeds its timeout is killed by pid and reported with
 * `timedOut: true`; nothing here can hang a test.
 *
 * Versions on the test machines (Debian bookworm): OpenSSL 3.0, GnuTLS 3.7.9, curl 7.88
 * (OpenSSL backend, nghttp2), Python 3.11 (OpenSSL 3.0). Their quirks are noted on each helper.
 */
import tls from 'node:tls';
import { runProcess, type RunResult } from './processes.js';

export { type RunResult } from './processes.js';

/** Where every peer connects. */
export const LOOPBACK = '127.0.0.1';

const DEFAULT_TIMEOUT_MS = 15_000;
/** Printed by s_client after a handshake (also a failed one: "New, (NONE), Cipher is (NONE)"). */
const OPENSSL_HANDSHAKE_DONE = /^(?:New|Reused), /m;
/** Printed by gnutls-cli once the handshake is done and it starts relaying stdin. */
const GNUTLS_HANDSHAKE_DONE = /^- Simple Client Mode:/m;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** runProcess options for when to close stdin after the input. */
function stdinClosing(waitFor: string | RegExp | undefined, keepOpenMs: number | undefined): { closeWhen?: RegExp; keepOpenMs?: number } {
  if (waitFor === undefined) return { keepOpenMs: keepOpenMs ?? 300 };
  const closeWhen = typeof waitFor === 'string' ? new RegExp(escapeRegExp(waitFor)) : waitFor;
  return { closeWhen, keepOpenMs };
}

// ---------------------------------------------------------------------------------------
// openssl s_client

/** Options for {@link opensslClient}. */
export interface OpensslClientOptions {
  /** Extra s_client arguments, e.g. `['-tls1_2']`, `['-groups', 'P-256']`. */
  args?: string[];
  /**
   * Sent on stdin after the handshake. An array is sent one line per read, 200 ms apart:
   * s_client acts on a command letter only when it begins a read ("k\n" = KeyUpdate,
   * "K\n" = KeyUpdate requesting the peer's, "Q\n" = quit, "R\n" = renegotiate, TLS 1.2),
   * and ignores the rest of that read.
   */
  input?: string | string[];
  /**
   * Keep stdin open after the input until the output matches this (e.g. the server's reply),
   * then close at once. Bounded by `keepOpenMs` if given, else by the hard timeout.
   */
  waitFor?: string | RegExp;
  /** How long stdin stays open after the input (default 300 ms without `waitFor`); EOF makes s_client close. */
  keepOpenMs?: number;
  /** SNI to send; without it `-noservername` is passed, so no SNI is sent. */
  servername?: string;
  /** CA file to verify the server with (`-CAfile`); verification failures only show in the output. */
  cafile?: string;
  /** Hard limit, default 15000 ms. */
  timeoutMs?: number;
}

/**
 * Runs `openssl s_client -connect 127.0.0.1:PORT`.
 *
 * The input is written once the handshake is done, and stdin stays open until `waitFor`
 * matches (or `keepOpenMs` passes); then EOF makes s_client send close_notify and exit.
 * `-ign_eof` is not used: in OpenSSL 3.0 it also turns off the command letters.
 *
 * Useful OpenSSL 3.0 arguments:
 * - versions: `-tls1_3`, `-tls1_2`, `-no_tls1_3`.
 * - TLS 1.3 suites: `-ciphersuites TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256`.
 * - TLS 1.2 suites: `-cipher ECDHE-ECDSA-AES128-GCM-SHA256` (OpenSSL names), `-cipher AES128-GCM-SHA256` for RSA kx.
 * - groups: `-groups X25519:P-256:P-384:P-521:X448:ffdhe2048` (TLS 1.2 also uses them for the ECDSA cert curve).
 * - signature algorithms: `-sigalgs ecdsa_secp256r1_sha256:rsa_pss_rsae_sha256:ed25519`
 *   (TLS 1.3 names; also `RSA+SHA256` style), `-client_sigalgs` for the client's own.
 * - ALPN `-alpn h2,http/1.1`; client auth `-cert chain.pem -key key.pem`;
 *   resumption `-sess_out f` / `-sess_in f`; early data `-early_data f`;
 *   `-verify_return_error` to abort on a bad chain; `-verify_hostname name`.
 * OpenSSL 3.0 prints the TLS 1.3 group as "Server Temp Key" (3.2+ adds "Negotiated TLS1.3 group").
 */
export function opensslClient(port: number, opts: OpensslClientOptions = {}): Promise<RunResult> {
  const args = ['s_client', '-connect', `${LOOPBACK}:${port}`];
  if (opts.servername) args.push('-servername', opts.servername);
  else args.push('-noservername');
  if (opts.cafile) args.push('-CAfile', opts.cafile);
  args.push(...(opts.args ?? []));
  return runProcess('openssl', args, {
    input: opts.input,
    // s_client reads stdin only once the handshake is done, but several lines already
    // waiting would arrive in one read and a command letter among them would be lost.
    inputAfter: OPENSSL_HANDSHAKE_DONE,
    ...stdinClosing(opts.waitFor, opts.keepOpenMs),
    timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
  });
}

/** What s_client printed about the session, parsed. Absent fields were not printed. */
export interface OpensslSummary {
  /** e.g. "TLSv1.3"; undefined when no session was established. */
  protocol?: string;
  /** OpenSSL name, e.g. "TLS_AES_256_GCM_SHA384" or "ECDHE-ECDSA-AES256-GCM-SHA384". */
  cipher?: string;
  /** Key-exchange group normalised: "X25519", "X448", "P-256", "P-384", "P-521", "ffdhe2048"... */
  group?: string;
  /** The raw "Server Temp Key" text, e.g. "ECDH, prime256v1, 256 bits". */
  serverTempKey?: string;
  /** "Verify return code", 0 = ok. */
  verifyCode?: number;
  verifyMessage?: string;
  /** e.g. "ECDSA", "RSA-PSS", "RSA", "Ed25519". */
  peerSignatureType?: string;
  /** e.g. "SHA256"; absent for Ed25519. */
  peerSigningDigest?: string;
  alpn?: string;
  /** Count of "KEYUPDATE" lines (one per "k"/"K" command acted on). */
  keyUpdates: number;
  /** True if s_client reports a reused session. */
  reused: boolean;
  /**
   * True if the handshake completed: a cipher was negotiated (in TLS 1.3 s_client prints
   * one as soon as it reads the ServerHello) and the server's certificate arrived.
   */
  handshakeOk: boolean;
}

const OPENSSL_CURVES: Record<string, string> = {
  prime256v1: 'P-256',
  secp384r1: 'P-384',
  secp521r1: 'P-521',
};

function normaliseGroup(raw: string): string {
  const name = raw.trim();
  if (OPENSSL_CURVES[name]) return OPENSSL_CURVES[name];
  return name;
}

/**
 * Parses s_client's output. Give it the run (or stdout + stderr): some lines, such as
 * "KEYUPDATE" and connection errors, go to stderr.
 */
export function parseOpensslOutput(output: string | RunResult): OpensslSummary {
  const stdout = typeof output === 'string' ? output : `${output.stdout}\n${output.stderr}`;
  const s: OpensslSummary = { keyUpdates: 0, reused: false, handshakeOk: false };
  const session = /^(New|Reused), (\S+), Cipher is (\S+)/m.exec(stdout);
  if (session) {
    s.reused = session[1] === 'Reused';
    if (session[2] !== '(NONE)') s.protocol = session[2];
    if (session[3] !== '(NONE)') s.cipher = session[3];
  }
  s.handshakeOk = s.cipher !== undefined && !/^no peer certificate available/m.test(stdout);
  const negotiated = /^Negotiated TLS1\.3 group: (\S+)/m.exec(stdout);
  const temp = /^Server Temp Key: (.+)$/m.exec(stdout);
  if (temp) {
    s.serverTempKey = temp[1].trim();
    const parts = s.serverTempKey.split(',').map((p) => p.trim());
    // "X25519, 253 bits" | "ECDH, prime256v1, 256 bits" | "DH, 2048 bits"
    if (parts[0] === 'ECDH' && parts.length >= 2) s.group = normaliseGroup(parts[1]);
    else if (parts[0] === 'DH' && parts.length >= 2) s.group = `ffdhe${parts[1].replace(/ bits$/, '')}`;
    else s.group = normaliseGroup(parts[0]);
  }
  if (negotiated) s.group = normaliseGroup(negotiated[1]);
  const verify = /Verify return code: (\d+) \(([^)]*)\)/.exec(stdout);
  if (verify) {
    s.verifyCode = Number(verify[1]);
    s.verifyMessage = verify[2];
  }
  const sigType = /^Peer signature type: (\S+)/m.exec(stdout);
  if (sigType) s.peerSignatureType = sigType[1];
  const digest = /^Peer signing digest: (\S+)/m.exec(stdout);
  if (digest) s.peerSigningDigest = digest[1];
  const alpn = /^ALPN protocol: (\S+)/m.exec(stdout);
  if (alpn) s.alpn = alpn[1];
  s.keyUpdates = (stdout.match(/^KEYUPDATE$/gm) ?? []).length;
  return s;
}

// ---------------------------------------------------------------------------------------
// curl

/** Options for {@link curl}. */
export interface CurlOptions {
  /** `--cacert`. Without it curl verifies against the system store (and fails on test certs). */
  cacert?: string;
  /** `--resolve` entries "host:port:addr"; see {@link curlResolve}. */
  resolve?: string[];
  /** `--http2` (ALPN h2, falls back to 1.1) or `--http1.1`. */
  http?: '1.1' | '2';
  /** Extra arguments, e.g. `['--tls-max', '1.2']`, `['-d', 'body']`. */
  args?: string[];
  /** Hard limit, default 15000 ms. */
  timeoutMs?: number;
}

/** curl's result: the raw run plus what was parsed from it. */
export interface CurlResult extends RunResult {
  /** Response body (stdout without the trailer curl was asked to print). */
  body: string;
  /** `%{http_version}`: "1.1", "2", or "0" when no response. */
  httpVersion?: string;
  /** HTTP status, 0 when no response. */
  status?: number;
  /** From the verbose log: "TLSv1.3", "TLSv1.2". */
  tlsVersion?: string;
  /** OpenSSL cipher name from the verbose log. */
  cipher?: string;
  /** ALPN the server accepted, e.g. "h2". */
  alpn?: string;
}

const CURL_TRAILER = '\n@@keyward-curl@@ %{http_version} %{http_code}\n';
const CURL_TRAILER_RE = /\n@@keyward-curl@@ (\S+) (\d+)\n$/;

/** `--resolve` argument that points `host:port` at 127.0.0.1. */
export function curlResolve(host: string, port: number): string {
  return `${host}:${port}:${LOOPBACK}`;
}

/**
 * Runs `curl -sS -v` against `url`, printing the HTTP version and status after the body.
 *
 * curl 7.88 with OpenSSL: `--tlsv1.2 --tls-max 1.2` / `--tlsv1.3`; `--tls13-ciphers
 * TLS_AES_128_GCM_SHA256`; `--ciphers ECDHE-ECDSA-AES128-GCM-SHA256` (TLS 1.2);
 * `--curves X25519:P-256`; `--cert chain.pem --key key.pem` for client auth; `--http2`
 * offers h2 over ALPN (`--http2-prior-knowledge` skips ALPN). Use a hostname with
 * `--resolve` (see {@link curlResolve}) to send SNI; an IP URL sends none.
 */
export async function curl(url: string, opts: CurlOptions = {}): Promise<CurlResult> {
  const args = ['-sS', '-v', '-w', CURL_TRAILER];
  if (opts.cacert) args.push('--cacert', opts.cacert);
  for (const r of opts.resolve ?? []) args.push('--resolve', r);
  if (opts.http === '2') args.push('--http2');
  else if (opts.http === '1.1') args.push('--http1.1');
  args.push(...(opts.args ?? []), url);
  const run = await runProcess('curl', args, { timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS });
  const result: CurlResult = { ...run, body: run.stdout };
  const trailer = CURL_TRAILER_RE.exec(run.stdout);
  if (trailer) {
    result.body = run.stdout.slice(0, trailer.index);
    result.httpVersion = trailer[1];
    result.status = Number(trailer[2]);
  }
  const conn = /^\* SSL connection using (\S+) \/ (\S+)/m.exec(run.stderr);
  if (conn) {
    result.tlsVersion = conn[1];
    result.cipher = conn[2];
  }
  const alpn = /^\* ALPN: server accepted (\S+)/m.exec(run.stderr) ?? /^\* ALPN, server accepted to use (\S+)/m.exec(run.stderr);
  if (alpn) result.alpn = alpn[1];
  return result;
}

// ---------------------------------------------------------------------------------------
// gnutls-cli

/** Options for {@link gnutlsCli}. */
export interface GnutlsCliOptions {
  /**
   * `--priority` string. GnuTLS 3.7.9 forms:
   * - versions: `NORMAL:-VERS-ALL:+VERS-TLS1.3` or `...:+VERS-TLS1.2`.
   * - TLS 1.3 groups: `NORMAL:-GROUP-ALL:+GROUP-X25519` (also GROUP-SECP256R1, -SECP384R1,
   *   -SECP521R1, -X448, -FFDHE2048...). In TLS 1.2 groups also limit the ECDSA cert curve.
   * - ciphers: `NORMAL:-CIPHER-ALL:+AES-128-GCM` (AES-256-GCM, CHACHA20-POLY1305, AES-128-CCM).
   * - signatures: `NORMAL:-SIGN-ALL:+SIGN-ECDSA-SECP256R1-SHA256` (SIGN-ECDSA-SECP384R1-SHA384,
   *   SIGN-RSA-PSS-RSAE-SHA256, SIGN-RSA-SHA256 (1.2 only), SIGN-EDDSA-ED25519).
   * - TLS 1.2 key exchange: `NORMAL:-KX-ALL:+ECDHE-ECDSA` (ECDHE-RSA, RSA, DHE-RSA).
   */
  priority?: string;
  /** `--x509cafile`; without it `--insecure` is passed (handshake details still print). */
  cafile?: string;
  /** Sent as SNI (`--sni-hostname`) and checked (`--verify-hostname`); else 127.0.0.1 is checked and no SNI sent. */
  servername?: string;
  /** Sent on stdin after the handshake. With `--inline-commands` in args, `^rekey^` sends a KeyUpdate, `^rekey1^` asks for the peer's, `^resume^` reconnects resuming. */
  input?: string | string[];
  /** Like {@link OpensslClientOptions.waitFor}: close stdin as soon as the output matches. */
  waitFor?: string | RegExp;
  /** stdin stays open this long after the input (default 300 ms without `waitFor`); EOF makes gnutls-cli send close_notify. */
  keepOpenMs?: number;
  /** Extra arguments: `--alpn h2`, `--x509certfile f --x509keyfile f`, `--resume`, `--recordsize 512`. */
  args?: string[];
  /** Hard limit, default 15000 ms. */
  timeoutMs?: number;
}

/**
 * Runs `gnutls-cli --port PORT 127.0.0.1`. Its "- Description:" line names version, key
 * exchange, signature and cipher; see {@link parseGnutlsOutput}.
 */
export function gnutlsCli(port: number, opts: GnutlsCliOptions = {}): Promise<RunResult> {
  const args = ['--port', String(port)];
  if (opts.cafile) args.push('--x509cafile', opts.cafile);
  else args.push('--insecure');
  if (opts.servername) args.push('--sni-hostname', opts.servername, '--verify-hostname', opts.servername);
  else args.push('--disable-sni');
  if (opts.priority) args.push('--priority', opts.priority);
  args.push(...(opts.args ?? []), LOOPBACK);
  return runProcess('gnutls-cli', args, {
    input: opts.input,
    inputAfter: GNUTLS_HANDSHAKE_DONE,
    ...stdinClosing(opts.waitFor, opts.keepOpenMs),
    timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
  });
}

/** What gnutls-cli printed, parsed. */
export interface GnutlsSummary {
  /** Normalised to OpenSSL style: "TLSv1.3", "TLSv1.2". */
  protocol?: string;
  /** Key exchange as printed, e.g. "ECDHE-X25519", "ECDHE-SECP256R1", "RSA". */
  keyExchange?: string;
  /** Group normalised like {@link OpensslSummary.group}: "X25519", "P-256"... */
  group?: string;
  /** Signature as printed, e.g. "ECDSA-SECP256R1-SHA256", "RSA-PSS-RSAE-SHA256", "EdDSA-Ed25519". */
  signature?: string;
  /** GnuTLS cipher name, e.g. "AES-256-GCM", "CHACHA20-POLY1305". */
  cipher?: string;
  alpn?: string;
  /** "The certificate is trusted." was printed. */
  trusted: boolean;
  handshakeCompleted: boolean;
  resumed: boolean;
  /** "Received alert [40]: Handshake failed" -> 40. */
  alert?: number;
  /** Lines beginning "*** " (fatal errors and notices). */
  errors: string[];
}

const GNUTLS_GROUPS: Record<string, string> = {
  SECP256R1: 'P-256',
  SECP384R1: 'P-384',
  SECP521R1: 'P-521',
  X25519: 'X25519',
  X448: 'X448',
};

/** Parses gnutls-cli's output: give it the run, or stdout + stderr (errors and alerts go to stderr). */
export function parseGnutlsOutput(run: string | RunResult): GnutlsSummary {
  const output = typeof run === 'string' ? run : `${run.stdout}\n${run.stderr}`;
  const s: GnutlsSummary = { trusted: false, handshakeCompleted: false, resumed: false, errors: [] };
  const desc = /^- Description: (.+)$/m.exec(output);
  if (desc) {
    // "(TLS1.3-X.509)-(ECDHE-X25519)-(ECDSA-SECP256R1-SHA256)-(AES-256-GCM)"; TLS 1.2
    // RSA key exchange has no signature part: "(TLS1.2-X.509)-(RSA)-(AES-128-GCM)".
    const parts = [...desc[1].matchAll(/\(([^)]*)\)/g)].map((m) => m[1]);
    const version = /^TLS(\d\.\d)/.exec(parts[0] ?? '');
    if (version) s.protocol = `TLSv${version[1]}`;
    s.keyExchange = parts[1];
    if (parts.length >= 4) {
      s.signature = parts[2];
      s.cipher = parts[3];
    } else {
      s.cipher = parts[2];
    }
    const kx = /^(?:ECDHE|DHE)-(\S+)$/.exec(s.keyExchange ?? '');
    if (kx) s.group = GNUTLS_GROUPS[kx[1]] ?? kx[1].toLowerCase();
  }
  const alpn = /^- Application protocol: (\S+)/m.exec(output);
  if (alpn) s.alpn = alpn[1];
  s.trusted = /^- Status: The certificate is trusted\./m.test(output);
  s.handshakeCompleted = /^- Handshake was completed/m.test(output);
  s.resumed = /This is a resumed session/.test(output);
  const alert = /Received alert \[(\d+)\]/.exec(output);
  if (alert) s.alert = Number(alert[1]);
  s.errors = output.split('\n').filter((l) => l.startsWith('*** '));
  return s;
}

// ---------------------------------------------------------------------------------------
// Python ssl

/** Options for {@link pythonSsl}. */
export interface PythonSslOptions {
  /** CA file; without it verification is off. */
  cafile?: string;
  /** server_hostname: sent as SNI and checked. Default 127.0.0.1 (checked against IP SANs, no SNI sent). */
  servername?: string;
  minVersion?: 'TLSv1_2' | 'TLSv1_3';
  maxVersion?: 'TLSv1_2' | 'TLSv1_3';
  /**
   * `set_ciphers` (OpenSSL names). Affects TLS 1.2 only: Python 3.11 cannot choose TLS 1.3
   * suites (they stay OpenSSL's defaults).
   */
  ciphers?: string;
  /** `set_ecdh_curve`, e.g. "prime256v1": limits the key-exchange groups to that one curve. */
  ecdhCurve?: string;
  alpn?: string[];
  /** Client certificate chain and key (`load_cert_chain`). */
  certfile?: string;
  keyfile?: string;
  /** Sent after the handshake. */
  send?: string;
  /** Stop reading once the received text contains this. */
  until?: string;
  /** Stop reading after this long without data (default 1500 ms); EOF stops it too. */
  readMs?: number;
  /** Hard limit, default 15000 ms. */
  timeoutMs?: number;
}

/** The JSON line the Python script prints. */
export interface PythonSslReport {
  ok: boolean;
  /** `SSLSocket.version()`, e.g. "TLSv1.3". */
  version?: string;
  /** `cipher()[0]`, OpenSSL name. */
  cipher?: string;
  /** `cipher()[2]`, secret bits. */
  bits?: number;
  alpn?: string | null;
  received?: string;
  /** True when reading stopped because of `readMs` rather than EOF or `until`. */
  readTimedOut?: boolean;
  /** "ExceptionType: message" when ok is false. */
  error?: string;
  /** For SSLError: the library reason, e.g. "CERTIFICATE_VERIFY_FAILED". */
  reason?: string;
}

export interface PythonSslResult extends RunResult {
  /** Parsed from the last JSON line; undefined when the script printed none (killed). */
  report?: PythonSslReport;
}

const PYTHON_CLIENT = String.raw`
import json, socket, ssl, sys
a = json.loads(sys.argv[1])
out = {"ok": False}
try:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if a.get("cafile"):
        ctx.load_verify_locations(a["cafile"])
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if a.get("minVersion"):
        ctx.minimum_version = getattr(ssl.TLSVersion, a["minVersion"])
    if a.get("maxVersion"):
        ctx.maximum_version = getattr(ssl.TLSVersion, a["maxVersion"])
    if a.get("ciphers"):
        ctx.set_ciphers(a["ciphers"])
    if a.get("ecdhCurve"):
        ctx.set_ecdh_curve(a["ecdhCurve"])
    if a.get("alpn"):
        ctx.set_alpn_protocols(a["alpn"])
    if a.get("certfile"):
        ctx.load_cert_chain(a["certfile"], a.get("keyfile"))
    raw = socket.create_connection(("127.0.0.1", a["port"]), timeout=a["ioTimeout"])
    s = ctx.wrap_socket(raw, server_hostname=a.get("servername") or "127.0.0.1")
    c = s.cipher()
    out.update(version=s.version(), cipher=c[0], bits=c[2], alpn=s.selected_alpn_protocol())
    if a.get("send"):
        s.sendall(a["send"].encode())
    data = b""
    s.settimeout(a["readMs"] / 1000.0)
    until = a.get("until")
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if until and until.encode() in data:
                break
    except (socket.timeout, TimeoutError):
        out["readTimedOut"] = True
    except ssl.SSLZeroReturnError:
        pass
    out["received"] = data.decode("utf-8", "replace")
    try:
        s.close()
    except Exception:
        pass
    out["ok"] = True
except Exception as e:
    out["error"] = "%s: %s" % (type(e).__name__, e)
    if isinstance(e, ssl.SSLError) and getattr(e, "reason", None):
        out["reason"] = e.reason
print(json.dumps(out), flush=True)
sys.exit(0 if out["ok"] else 1)
`;

/**
 * Connects with Python's `ssl` (python3 -c, one JSON line out). Python 3.11 on OpenSSL 3.0:
 * versions via minimum_version/maximum_version; TLS 1.2 suites via `ciphers`; groups only
 * through `ecdhCurve` (one curve); no TLS 1.3 suite or signature-algorithm control.
 */
export async function pythonSsl(port: number, opts: PythonSslOptions = {}): Promise<PythonSslResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const params = {
    port,
    cafile: opts.cafile,
    servername: opts.servername,
    minVersion: opts.minVersion,
    maxVersion: opts.maxVersion,
    ciphers: opts.ciphers,
    ecdhCurve: opts.ecdhCurve,
    alpn: opts.alpn,
    certfile: opts.certfile,
    keyfile: opts.keyfile,
    send: opts.send,
    until: opts.until,
    readMs: opts.readMs ?? 1500,
    // Socket operations give up before the hard kill, so a slow server yields a report.
    // Leave python time to start (slow on a loaded machine) before the hard limit.
    ioTimeout: Math.max(1, (timeoutMs - Math.min(2000, timeoutMs / 2)) / 1000),
  };
  const run = await runProcess('python3', ['-c', PYTHON_CLIENT, JSON.stringify(params)], { timeoutMs });
  const result: PythonSslResult = { ...run };
  const lastLine = run.stdout.trim().split('\n').pop();
  if (lastLine?.startsWith('{')) {
    try {
      result.report = JSON.parse(lastLine) as PythonSslReport;
    } catch {
      // Leave report undefined; the raw stdout is in the result.
    }
  }
  return result;
}

// ---------------------------------------------------------------------------------------
// node:tls in-process

/** Options for {@link nodeTlsClient}: any tls.ConnectionOptions plus these. */
export type NodeTlsClientOptions = tls.ConnectionOptions & {
  /** Written once the handshake completes. */
  send?: string | Buffer;
  /** End our side once the received text contains this (default: wait for the server to end). */
  until?: string;
  /** End our side this long after the handshake (and the send), if still open. */
  closeAfterMs?: number;
  /** Hard limit, default 15000 ms: the socket is destroyed and `timedOut` set. */
  timeoutMs?: number;
};

export interface NodeTlsClientResult {
  /** True if the handshake completed. */
  connected: boolean;
  /** `getProtocol()`, e.g. "TLSv1.3". */
  protocol?: string;
  /** `getCipher().standardName`, e.g. "TLS_AES_128_GCM_SHA256". */
  cipher?: string;
  /** `getCipher().name`, OpenSSL's name. */
  cipherOpenssl?: string;
  alpn?: string | false;
  authorized: boolean;
  authorizationError?: string;
  /** Subject CN of the server certificate. */
  peerCommonName?: string;
  /** `getEphemeralKeyInfo()` name, e.g. "X25519", "prime256v1". */
  ephemeralKey?: string;
  sessionReused: boolean;
  received: string;
  /** Socket error, e.g. an alert from the server or a verification failure. */
  error?: string;
  /** OpenSSL error code, e.g. "ERR_SSL_TLSV1_ALERT_HANDSHAKE_FAILURE". */
  errorCode?: string;
  timedOut: boolean;
}

/**
 * Connects with node:tls to 127.0.0.1:PORT and resolves once the connection is closed
 * (or `until` / `closeAfterMs` / `timeoutMs` ended it). Never rejects.
 * `servername` sends SNI and sets the name checked; with no servername, node sends no SNI
 * and checks the certificate against 127.0.0.1.
 */
export function nodeTlsClient(port: number, opts: NodeTlsClientOptions = {}): Promise<NodeTlsClientResult> {
  const { send, until, closeAfterMs, timeoutMs = DEFAULT_TIMEOUT_MS, ...connectOpts } = opts;
  return new Promise((resolve) => {
    const result: NodeTlsClientResult = { connected: false, authorized: false, sessionReused: false, received: '', timedOut: false };
    const chunks: Buffer[] = [];
    let done = false;
    let closeTimer: NodeJS.Timeout | undefined;
    const socket = tls.connect({ host: LOOPBACK, port, ...connectOpts });

    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(hardTimer);
      if (closeTimer) clearTimeout(closeTimer);
      result.received = Buffer.concat(chunks).toString('utf8');
      socket.destroy();
      resolve(result);
    };
    const hardTimer = setTimeout(() => {
      result.timedOut = true;
      finish();
    }, timeoutMs);

    socket.on('secureConnect', () => {
      result.connected = true;
      result.protocol = socket.getProtocol() ?? undefined;
      const c = socket.getCipher();
      result.cipher = c.standardName;
      result.cipherOpenssl = c.name;
      result.alpn = socket.alpnProtocol ?? undefined;
      result.authorized = socket.authorized;
      if (socket.authorizationError) result.authorizationError = String(socket.authorizationError);
      const cn = socket.getPeerCertificate()?.subject?.CN;
      if (cn) result.peerCommonName = Array.isArray(cn) ? cn[0] : cn;
      const eph = socket.getEphemeralKeyInfo();
      if (eph && 'name' in eph && eph.name) result.ephemeralKey = eph.name;
      result.sessionReused = socket.isSessionReused();
      if (send !== undefined) socket.write(send);
      if (closeAfterMs !== undefined) closeTimer = setTimeout(() => socket.end(), closeAfterMs);
    });
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      if (until !== undefined && Buffer.concat(chunks).toString('utf8').includes(until)) socket.end();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      result.error ??= e.message;
      if (e.code) result.errorCode ??= e.code;
    });
    socket.on('end', () => socket.end());
    socket.on('close', finish);
  });
}
