/**
 * Client certificate revocation for keyd's mutual-TLS port (`tls.crl`): a PEM file of CRLs
 * issued by the client CA(s). OpenSSL checks every new connection against them; this module
 * reads and checks the file (each CRL signed by a CA of `tls.clientCa`, not past its
 * nextUpdate, which would make OpenSSL refuse every front) and says which established
 * connections hold a certificate a newer CRL revokes, so that keyd can close them. It also
 * keeps time for the CRLs in force: warnings as a nextUpdate nears, an error when it passes.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { unwatchFile, watchFile, type Stats } from 'node:fs';
import { readFile } from 'node:fs/promises';

const PEM_CRL = /-----BEGIN X509 CRL-----[\s\S]+?-----END X509 CRL-----/g;
const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** One CRL of a `tls.crl` file: who issued it, its number and nextUpdate. */
export interface ClientCrlInfo {
  /** The issuer's distinguished name. */
  readonly issuer: string;
  /** The CA of `tls.clientCa` that signed it (its certificate's SHA-256 fingerprint): two CAs may share a name. */
  readonly ca: string;
  /** Its CRL number (RFC 5280 5.2.3), when it has one. */
  readonly number?: bigint;
  readonly nextUpdate?: Date;
}

/** The CRLs of one `tls.crl` file, checked. */
export interface ClientCrls {
  /** The file's CRLs as PEM, for the TLS server's `crl` option. */
  readonly pem: string;
  /** How many CRLs, and how many certificates they revoke, for logs. */
  readonly crls: number;
  readonly revokedCount: number;
  /** The earliest nextUpdate, when any CRL has one. */
  readonly nextUpdate?: Date;
  /** Each CRL that has a nextUpdate: its issuer (a distinguished name) and when it runs out. */
  readonly schedule: ReadonlyArray<{ issuer: string; nextUpdate: Date }>;
  /** Each CRL, in file order. */
  readonly list: readonly ClientCrlInfo[];
  /**
   * The CAs of `tls.clientCa` no CRL of the file is signed by (subject and fingerprint):
   * OpenSSL refuses every front of such a CA (UNABLE_TO_GET_CRL).
   */
  readonly uncovered: readonly string[];
  /** Whether the certificate (DER) is revoked by one of these CRLs (same issuer name and serial). */
  revokes(certDer: Uint8Array): boolean;
}

/** The CRL number extension (RFC 5280 5.2.3). */
export const CRL_NUMBER_OID = '2.5.29.20';

/** A CRL's number (RFC 5280 5.2.3), or undefined when it has none. Throws on a malformed one. */
export function crlNumberOf(crl: x509.X509Crl): bigint | undefined {
  const ext = crl.getExtension(CRL_NUMBER_OID);
  if (!ext) return undefined;
  const v = new Uint8Array(ext.value);
  if (v.length < 3 || v[0] !== 0x02 || v[1] !== v.length - 2 || v[1] > 21 || v[2] & 0x80) throw new Error('the CRL number is not a non-negative DER INTEGER of at most 20 octets');
  return BigInt('0x' + Buffer.from(v.subarray(2)).toString('hex'));
}

/**
 * Why `next` must not replace `inForce`: a CRL whose number is lower than the one in force
 * of the same CA (an older CRL put back, or a lost race between two writers), or undefined.
 */
export function crlNumberGoesBack(inForce: ClientCrls | undefined, next: ClientCrls): string | undefined {
  for (const n of next.list) {
    let was: bigint | undefined;
    for (const c of inForce?.list ?? []) if (c.ca === n.ca && c.number !== undefined && (was === undefined || c.number > was)) was = c.number;
    if (was !== undefined && n.number !== undefined && n.number < was) return `the CRL of ${n.issuer} has number ${n.number}, lower than the ${was} in force: an older CRL`;
  }
  return undefined;
}

/** "33" or "33, 5": the CRL numbers of a file, for logs. */
export function crlNumbers(crls: ClientCrls): string {
  return crls.list.map((c) => (c.number === undefined ? 'none' : c.number.toString())).join(', ');
}

/**
 * Reads `crlFile` and checks each CRL against the CAs of `caFile`. Throws an Error naming
 * the file and the problem: no CRL in it, a CRL no CA of the file signed, or one past its
 * nextUpdate (at `now`).
 */
export async function loadClientCrls(crlFile: string, caFile: string, now = Date.now()): Promise<ClientCrls> {
  const crypto = webcrypto as unknown as Crypto;
  const [crlText, caText] = await Promise.all([readFile(crlFile, 'utf8'), readFile(caFile, 'utf8')]);
  const blocks = crlText.match(PEM_CRL) ?? [];
  if (blocks.length === 0) throw new Error(`${crlFile} holds no PEM CRL ("-----BEGIN X509 CRL-----")`);
  const cas = (caText.match(PEM_CERT) ?? []).map((b) => new x509.X509Certificate(b));
  const fingerprints = await Promise.all(cas.map(async (c) => Buffer.from(await c.getThumbprint('SHA-256', crypto)).toString('hex')));
  const revoked = new Set<string>();
  let nextUpdate: Date | undefined;
  const schedule: Array<{ issuer: string; nextUpdate: Date }> = [];
  const list: ClientCrlInfo[] = [];
  for (const [i, block] of blocks.entries()) {
    let crl: x509.X509Crl;
    let number: bigint | undefined;
    try {
      crl = new x509.X509Crl(block);
      number = crlNumberOf(crl);
    } catch {
      throw new Error(`${crlFile}: CRL ${i + 1} does not parse`);
    }
    const issuer = crl.issuerName.toString();
    // Every CA of that name: two `certs init` CAs share one, and a CA rotation keeps both.
    let signer = -1;
    for (const [j, c] of cas.entries()) {
      if (c.subjectName.toString() === issuer && (await crl.verify({ publicKey: c }, crypto))) {
        signer = j;
        break;
      }
    }
    if (signer < 0) throw new Error(`${crlFile}: CRL ${i + 1} (issuer ${issuer}) is not signed by a CA of ${caFile}`);
    // OpenSSL refuses a CRL not valid yet as it does one out of date: every front of the CA.
    if (crl.thisUpdate.getTime() > now) throw new Error(`${crlFile}: CRL ${i + 1} (issuer ${issuer}) is valid only from ${crl.thisUpdate.toISOString()} (its thisUpdate): every front would be refused until then`);
    if (crl.nextUpdate) {
      if (crl.nextUpdate.getTime() < now) throw new Error(`${crlFile}: CRL ${i + 1} (issuer ${issuer}) is out of date since ${crl.nextUpdate.toISOString()}: every front would be refused`);
      if (!nextUpdate || crl.nextUpdate < nextUpdate) nextUpdate = crl.nextUpdate;
      schedule.push({ issuer, nextUpdate: crl.nextUpdate });
    }
    list.push({ issuer, ca: fingerprints[signer], ...(number !== undefined ? { number } : {}), ...(crl.nextUpdate ? { nextUpdate: crl.nextUpdate } : {}) });
    for (const e of crl.entries) revoked.add(`${issuer}|${e.serialNumber.toLowerCase()}`);
  }
  const uncovered = cas.flatMap((c, j) => (list.some((l) => l.ca === fingerprints[j]) ? [] : [`${c.subjectName.toString()} (SHA-256 ${fingerprints[j]})`]));
  return {
    pem: blocks.join('\n') + '\n',
    crls: blocks.length,
    revokedCount: revoked.size,
    ...(nextUpdate ? { nextUpdate } : {}),
    schedule,
    list,
    uncovered,
    revokes(certDer: Uint8Array): boolean {
      if (revoked.size === 0) return false;
      const cert = new x509.X509Certificate(Uint8Array.from(certDer));
      return revoked.has(`${cert.issuerName.toString()}|${cert.serialNumber.toLowerCase()}`);
    },
  };
}

/**
 * Watches `crlFile` (its status polled every `intervalMs`) and, when it changes, hands the
 * new CRLs to `onLoaded`; `onRejected` gets the reason when loadClientCrls refuses them or
 * `onLoaded` fails. Returns the function that stops watching.
 */
export function watchClientCrls(crlFile: string, caFile: string, intervalMs: number, onLoaded: (crls: ClientCrls) => Promise<void>, onRejected: (e: Error) => void): () => void {
  // Loads run side by side, one per change seen; only the latest is put in force, and in
  // order: a slow load of an older file never lands after a newer one.
  let generation = 0;
  let applying: Promise<void> = Promise.resolve();
  const listener = (now: Stats, before: Stats): void => {
    if (now.mtimeMs === before.mtimeMs && now.size === before.size && now.ino === before.ino) return;
    const mine = ++generation;
    const loaded = loadClientCrls(crlFile, caFile);
    loaded.catch(() => undefined); // handled in turn below; not an unhandled rejection meanwhile
    applying = applying.then(async () => {
      try {
        const crls = await loaded;
        if (mine === generation) await onLoaded(crls);
      } catch (e) {
        if (mine === generation) onRejected(e as Error);
      }
    });
  };
  watchFile(crlFile, { interval: intervalMs, persistent: false }, listener);
  return () => {
    generation++;
    unwatchFile(crlFile, listener);
  };
}

const HOUR_MS = 3_600_000;
/** How long before a CRL's nextUpdate keyd warns: 7 days, then again 24 h and 1 h before. */
export const CRL_WARNINGS_MS: readonly number[] = [7 * 24 * HOUR_MS, 24 * HOUR_MS, HOUR_MS];
/**
 * The longest single wait: timers run on the monotonic clock, which a wall-clock jump or a
 * suspend leaves behind, so each wait is short and fire() looks at the wall clock again.
 * (It also stays far below setTimeout's limit, 2^31 - 1 ms, past which a timer fires at once.)
 */
const MAX_WAIT_MS = HOUR_MS;

/** What {@link watchCrlExpiry} reports, per CRL (its issuer). */
export interface CrlExpiryEvents {
  /** The CRL of `issuer` runs out in `leftMs` (at `nextUpdate`). */
  nearing(issuer: string, nextUpdate: Date, leftMs: number): void;
  /** It ran out: OpenSSL refuses every client certificate of `issuer` until a new CRL is in force. */
  expired(issuer: string, nextUpdate: Date): void;
}

/**
 * Keeps time for the CRLs in force: `nearing` at once for each CRL within the first of
 * `warningsMs` of its nextUpdate, then as each later mark (and the first, for one further
 * off) is reached; `expired` when the nextUpdate passes. Its timers never keep the process
 * alive. Returns the function that clears them (call it on reload and on stop).
 */
export function watchCrlExpiry(crls: Pick<ClientCrls, 'schedule'>, events: CrlExpiryEvents, warningsMs: readonly number[] = CRL_WARNINGS_MS): () => void {
  // Every mark still ahead; one already behind is covered by the warning at load.
  const marks: Array<{ at: number; issuer: string; nextUpdate: Date; expiry: boolean }> = [];
  const now = Date.now();
  for (const { issuer, nextUpdate } of crls.schedule) {
    const end = nextUpdate.getTime();
    if (end - now <= Math.max(...warningsMs)) events.nearing(issuer, nextUpdate, end - now);
    for (const w of warningsMs) if (end - w > now) marks.push({ at: end - w, issuer, nextUpdate, expiry: false });
    marks.push({ at: end, issuer, nextUpdate, expiry: true });
  }
  marks.sort((a, b) => a.at - b.at);
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    const next = marks[0];
    if (!next) return;
    timer = setTimeout(fire, Math.min(Math.max(0, next.at - Date.now()), MAX_WAIT_MS));
    timer.unref();
  };
  const fire = (): void => {
    const t = Date.now();
    while (marks.length > 0 && marks[0].at <= t) {
      const m = marks.shift()!;
      if (m.expiry) events.expired(m.issuer, m.nextUpdate);
      else events.nearing(m.issuer, m.nextUpdate, m.nextUpdate.getTime() - t);
    }
    arm();
  };
  arm();
  return () => {
    clearTimeout(timer);
    marks.length = 0;
  };
}

/** "6 d 23 h", "23 h 59 min", "59 min", "42 s": how long is left, for logs and --check. */
export function timeLeft(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const [d, h, m] = [Math.floor(s / 86_400), Math.floor((s % 86_400) / 3600), Math.floor((s % 3600) / 60)];
  if (d > 0) return `${d} d ${h} h`;
  if (h > 0) return `${h} h ${m} min`;
  return m > 0 ? `${m} min` : `${s} s`;
}
