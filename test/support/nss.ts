/**
 * NSS peers (Debian's libnss3-tools, NSS 3.87 on bookworm): a throwaway certificate
 * database that trusts the test CA (`certutil`), and `tstclnt` runs bounded in time with
 * what they negotiated parsed from their output.
 *
 * tstclnt's quirks: with stdin at EOF before the handshake ends it spins on poll() and never
 * exits, and without `-Q` it never exits after the handshake either; so every run here
 * passes `-Q` (exit after the handshake) and closes stdin only once the handshake summary
 * is printed (or the process exits). `-v` adds the negotiated parameters to that summary.
 */
import { LOOPBACK } from './peers.js';
import { runProcess, type RunResult } from './processes.js';

const DEFAULT_TIMEOUT_MS = 15_000;

/** A CA certificate to trust, by file. */
export interface TrustedCa {
  /** The database's name for it (certutil -n). */
  nickname: string;
  /** PEM or DER file. */
  certPath: string;
}

async function certutil(args: readonly string[]): Promise<void> {
  const r = await runProcess('certutil', args, { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`certutil ${args.join(' ')} failed (exit ${String(r.code)}${r.timedOut ? ', timed out' : ''}): ${r.stderr.trim() || r.stdout.trim()}`);
}

/**
 * Makes an NSS database (cert9.db, key4.db: the `sql:` format) in the existing directory
 * `dir`, with an empty password, trusting each CA for TLS servers ("C,,"). Returns the
 * `sql:DIR` form tstclnt's `-d` takes.
 */
export async function createNssDb(dir: string, cas: readonly TrustedCa[]): Promise<string> {
  const db = `sql:${dir}`;
  await certutil(['-N', '-d', db, '--empty-password']);
  for (const ca of cas) await certutil(['-A', '-d', db, '-n', ca.nickname, '-t', 'C,,', '-i', ca.certPath]);
  return db;
}

/** Options for {@link tstclnt}. */
export interface TstclntOptions {
  /** The database from {@link createNssDb} (`sql:DIR`). */
  db: string;
  /** Host to connect to and check the certificate against (default 127.0.0.1, which sends no SNI). */
  host?: string;
  /** `-V min:max`, default `tls1.3:tls1.3`. */
  versions?: string;
  /** `-B`: offer delegated_credential (RFC 9345) with NSS's schemes. */
  delegatedCredentials?: boolean;
  /** `-I`: groups, e.g. `['x25519', 'P256']` (NSS 3.87 has no hybrid group). */
  groups?: readonly string[];
  /** `-J`: signature schemes in preference order, e.g. `['ecdsa_secp256r1_sha256']`. */
  schemes?: readonly string[];
  /** Further arguments. */
  args?: readonly string[];
  /** Hard limit, default 15000 ms. */
  timeoutMs?: number;
}

/** What tstclnt printed about its handshake. Absent fields were not printed. */
export interface TstclntSummary {
  /** The handshake completed and the certificate verified (exit 0 and a summary printed). */
  handshakeOk: boolean;
  /** "TLSv1.3" / "TLSv1.2", from "SSL version 3.4" / "3.3". */
  protocol?: string;
  /** e.g. "128-bit AES-GCM". */
  cipher?: string;
  /** Key-exchange size: 255 for x25519, 256/384/521 for the NIST curves. */
  keyExchangeBits?: number;
  /** Size of the key that signed CertificateVerify (the certificate's, or a delegated credential's). */
  serverAuthBits?: number;
  /** NSS's name, e.g. "ecdsa_secp256r1_sha256". */
  signatureScheme?: string;
  /** The server certificate's subject, e.g. "CN=localhost". */
  subject?: string;
  issuer?: string;
  /** "Received a Delegated Credential": the server signed with a DC that NSS accepted. */
  delegatedCredential: boolean;
  /** The first NSS error name printed (SEC_ERROR_..., SSL_ERROR_..., PR_..._ERROR), if any. */
  error?: string;
}

const PROTOCOLS: Record<string, string> = { '3.4': 'TLSv1.3', '3.3': 'TLSv1.2', '3.2': 'TLSv1.1', '3.1': 'TLSv1' };
/** Printed last in every handshake summary (all on stderr). */
const SUMMARY_END = /^\d+ stateless resumes$/m;

/** Parses tstclnt's stderr (with `-v`). */
export function parseTstclntOutput(run: RunResult): TstclntSummary {
  const out = `${run.stderr}\n${run.stdout}`;
  const version = /^tstclnt: SSL version (\d\.\d) using (\d+-bit \S+) with/m.exec(out);
  const auth = /^tstclnt: Server Auth: (\d+)-bit [^,]*, Key Exchange: (\d+)-bit/m.exec(out);
  const s: TstclntSummary = {
    handshakeOk: run.code === 0 && SUMMARY_END.test(out),
    protocol: version ? (PROTOCOLS[version[1]] ?? version[1]) : undefined,
    cipher: version?.[2],
    serverAuthBits: auth ? Number(auth[1]) : undefined,
    keyExchangeBits: auth ? Number(auth[2]) : undefined,
    signatureScheme: /^\s+Signature Scheme: (\S+)$/m.exec(out)?.[1],
    subject: /^subject DN: (.+)$/m.exec(out)?.[1],
    issuer: /^issuer {2}DN: (.+)$/m.exec(out)?.[1],
    delegatedCredential: /^Received a Delegated Credential$/m.test(out),
    // -v prints PR_IN_PROGRESS_ERROR for every non-blocking connect: not a failure.
    error: [...out.matchAll(/\b((?:SEC_ERROR|SSL_ERROR)_[A-Z0-9_]+|PR_[A-Z_]+_ERROR)\b/g)].map((m) => m[1]).find((e) => e !== 'PR_IN_PROGRESS_ERROR'),
  };
  return s;
}

/**
 * Runs `tstclnt -h HOST -p PORT -d DB -V tls1.3:tls1.3 -Q -v [-B] ...` once, bounded by
 * `timeoutMs` (killed by pid after it), and returns the run with its parsed summary.
 */
export async function tstclnt(port: number, opts: TstclntOptions): Promise<RunResult & { summary: TstclntSummary }> {
  const args = ['-h', opts.host ?? LOOPBACK, '-p', String(port), '-d', opts.db, '-V', opts.versions ?? 'tls1.3:tls1.3', '-Q', '-v'];
  if (opts.host === 'localhost') args.push('-4');
  if (opts.delegatedCredentials) args.push('-B');
  if (opts.groups) args.push('-I', opts.groups.join(','));
  if (opts.schemes) args.push('-J', opts.schemes.join(','));
  args.push(...(opts.args ?? []));
  // Nothing to send: the empty input only marks when stdin may close (see the module comment).
  const run = await runProcess('tstclnt', args, { input: '', inputAfter: SUMMARY_END, timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS });
  return { ...run, summary: parseTstclntOutput(run) };
}
