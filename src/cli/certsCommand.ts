/**
 * `keyward certs`: the private PKI of a keyward deployment without any openssl command.
 *
 *   keyward certs init DIR      a CA, keyd's server certificate, a front and an admin client certificate
 *   keyward certs issue ...     a certificate for a public key whose private half lives elsewhere:
 *                               a CSR (--csr), a public key file (--public-key), or a key inside keyd (--keyd-key ID)
 *   keyward certs revoke ...    the CA's CRL (keyd's tls.crl): revokes certificates, or signs it again with a new nextUpdate
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { Command, Option } from 'commander';
import { createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { access, mkdir, open, readFile, realpath, stat, unlink, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { keyIdOf } from '../keys/keyId.js';
import { connectKeydAdmin } from '../keys/remoteKey.js';
import { CliError } from './keySources.js';
import { crlNumberOf, timeLeft } from '../keyd/clientCrl.js';
import { createCa, issueCertificate, issueCertificateForKey, signCrl, writeAtomic, type Issuer, type KeyType } from './pki.js';

/** The files `certs init` writes, by role. */
export const PKI_FILES = {
  caCert: 'ca-cert.pem',
  caKey: 'ca-key.pem',
  keydCert: 'keyd-cert.pem',
  keydKey: 'keyd-key.pem',
  frontCert: 'front-cert.pem',
  frontKey: 'front-key.pem',
  adminCert: 'admin-cert.pem',
  adminKey: 'admin-key.pem',
} as const;

/** The CRL `certs revoke` writes by default, in the `certs init` folder. */
export const CRL_FILE = 'crl.pem';

/** Options of {@link initPki}. */
export interface InitPkiOptions {
  /** Names (DNS or IP) keyd's certificate carries; default localhost, 127.0.0.1, ::1. */
  keydNames?: string[];
  /** CN of the front's client certificate (keyd identity "cn:NAME"); default "front". */
  frontName?: string;
  /** CN of the admin's client certificate; default "admin". */
  adminName?: string;
  keyType?: KeyType;
  /** Validity of the CA, in days (default 3650); leaves get 825. */
  caDays?: number;
}

/** What `certs init` made: absolute paths by role, and the keyd client identities. */
export interface InitializedPki {
  dir: string;
  files: { [K in keyof typeof PKI_FILES]: string };
  frontIdentity: string;
  adminIdentity: string;
}

function splitNames(names: string[]): { dnsNames: string[]; ipAddresses: string[] } {
  return { dnsNames: names.filter((n) => isIP(n) === 0), ipAddresses: names.filter((n) => isIP(n) !== 0) };
}

/** Whether `path` exists (any kind of file). */
export async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Creates a private CA and the certificates of a keyd link in `dir` (created 0700; keys
 * written 0600). Refuses to overwrite any file it would write.
 */
export async function initPki(dir: string, opts: InitPkiOptions = {}): Promise<InitializedPki> {
  const files = Object.fromEntries(Object.entries(PKI_FILES).map(([k, f]) => [k, join(dir, f)])) as InitializedPki['files'];
  for (const f of Object.values(files)) if (await exists(f)) throw new CliError(`${f} exists already: certs init never overwrites; choose an empty folder`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const keyType = opts.keyType ?? 'ecdsa-p256';
  const frontName = opts.frontName ?? 'front';
  const adminName = opts.adminName ?? 'admin';
  let ca, keyd, front, admin;
  try {
    ca = await createCa({ commonName: 'keyward private CA', keyType, days: opts.caDays ?? 3650 });
    keyd = await issueCertificate(ca, { keyType, commonName: 'keyd', ...splitNames(opts.keydNames ?? ['localhost', '127.0.0.1', '::1']), usage: 'server', days: 825 });
    front = await issueCertificate(ca, { keyType, commonName: frontName, usage: 'client', days: 825 });
    admin = await issueCertificate(ca, { keyType, commonName: adminName, usage: 'client', days: 825 });
  } catch (err) {
    throw new CliError(`certs init: ${(err as Error).message}`);
  }
  // Keys first, certificates last, each written whole (temporary file, then rename).
  await writeAtomic(files.caKey, ca.keyPem, 0o600);
  await writeAtomic(files.keydKey, keyd.keyPem, 0o600);
  await writeAtomic(files.frontKey, front.keyPem, 0o600);
  await writeAtomic(files.adminKey, admin.keyPem, 0o600);
  await writeAtomic(files.caCert, ca.certPem, 0o644);
  await writeAtomic(files.keydCert, keyd.certPem, 0o644);
  await writeAtomic(files.frontCert, front.certPem, 0o644);
  await writeAtomic(files.adminCert, admin.certPem, 0o644);
  return { dir, files, frontIdentity: `cn:${frontName}`, adminIdentity: `cn:${adminName}` };
}

/** Reads the CA of `certs init` (or any CA certificate and key pair). */
export async function readIssuer(certPath: string, keyPath: string): Promise<Issuer> {
  const read = async (p: string, what: string) => {
    try {
      return await readFile(p, 'utf8');
    } catch (err) {
      throw new CliError(`cannot read the ${what} ${p}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const issuer = { certPem: await read(certPath, 'CA certificate'), keyPem: await read(keyPath, 'CA key') };
  let ca;
  try {
    ca = new X509Certificate(issuer.certPem);
  } catch {
    throw new CliError(`${certPath} holds no readable PEM certificate`);
  }
  let pub;
  try {
    pub = createPublicKey(issuer.keyPem);
  } catch {
    throw new CliError(`${keyPath} is not a readable PEM private key`);
  }
  if (!pub.export({ type: 'spki', format: 'der' }).equals(ca.publicKey.export({ type: 'spki', format: 'der' }))) {
    throw new CliError(`the CA certificate ${certPath} and the key ${keyPath} do not match`);
  }
  return issuer;
}

/** The public key and requested names of a PKCS#10 request, after checking its self-signature. */
export async function readCsr(path: string): Promise<{ publicKey: KeyObject; commonName?: string; names: string[] }> {
  let text;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read the CSR ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(text);
  } catch {
    throw new CliError(`${path} is not a PEM certificate request (PKCS#10)`);
  }
  if (!(await csr.verify(globalThis.crypto))) throw new CliError(`${path}: the request's signature does not verify (it was not made with the key it carries)`);
  const publicKey = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
  const ext = csr.extensions.find((e) => e.type === '2.5.29.17');
  const san = ext ? new x509.SubjectAlternativeNameExtension(ext.rawData) : undefined;
  const names = san ? san.names.items.filter((n) => n.type === 'dns' || n.type === 'ip').map((n) => n.value) : [];
  const commonName = csr.subjectName.getField('CN')[0];
  return { publicKey, ...(commonName ? { commonName } : {}), names };
}

async function readPublicKey(path: string): Promise<KeyObject> {
  let data;
  try {
    data = await readFile(path);
  } catch (err) {
    throw new CliError(`cannot read the public key ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (data.includes('PRIVATE KEY-----')) {
    data.fill(0);
    throw new CliError(`${path} holds a private key: give the public key alone (e.g. keyward keys generate --public-out)`);
  }
  try {
    return createPublicKey(data.toString('latin1').includes('-----BEGIN') ? data.toString('latin1') : { key: data, format: 'der', type: 'spki' });
  } catch {
    throw new CliError(`${path} is not a public key (PEM or DER SubjectPublicKeyInfo)`);
  }
}

interface IssueFlags {
  dir: string;
  ca?: string;
  caKey?: string;
  csr?: string;
  publicKey?: string;
  keydKey?: string;
  keyd?: string;
  keydCa?: string;
  adminCert?: string;
  adminKey?: string;
  name: string[];
  cn?: string;
  client?: boolean;
  days: number;
  delegation?: boolean;
  out?: string;
}

/** The public key a `certs issue` names, and names from a CSR. */
async function subjectKey(o: IssueFlags): Promise<{ publicKey: KeyObject; commonName?: string; names: string[] }> {
  const given = [o.csr, o.publicKey, o.keydKey].filter((x) => x !== undefined).length;
  if (given !== 1) throw new CliError('give exactly one of --csr FILE, --public-key FILE, --keyd-key ID');
  if (o.csr !== undefined) return readCsr(o.csr);
  if (o.publicKey !== undefined) return { publicKey: await readPublicKey(o.publicKey), names: [] };
  const keyId = o.keydKey!.toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(keyId)) throw new CliError(`--keyd-key ${o.keydKey}: expected the 64 hex digits of a key id (keyward keys list)`);
  if (o.keyd === undefined) throw new CliError('--keyd-key needs --keyd ADDRESS (and an admin identity: --admin-cert/--admin-key, default from --dir)');
  const tls = o.keyd.startsWith('tls://');
  const read = async (p: string | undefined) => (p === undefined ? undefined : readFile(p));
  const [ca, cert, key] = await Promise.all([
    read(tls ? (o.keydCa ?? join(o.dir, 'ca-cert.pem')) : undefined),
    read(tls ? (o.adminCert ?? join(o.dir, 'admin-cert.pem')) : undefined),
    read(tls ? (o.adminKey ?? join(o.dir, 'admin-key.pem')) : undefined),
  ]).catch((err: NodeJS.ErrnoException) => {
    throw new CliError(`cannot read the keyd admin credentials: ${err.path ?? ''} ${err.code ?? err.message}`);
  });
  let admin;
  try {
    admin = await connectKeydAdmin({ addresses: [o.keyd], ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}), deadlineMs: 10_000 });
  } catch (err) {
    throw new CliError(`cannot reach keyd at ${o.keyd}: ${(err as Error).message}`);
  }
  try {
    const found = (await admin.listKeys()).keys.find((k) => k.keyId === keyId);
    if (!found) throw new CliError(`keyd at ${o.keyd} has no key ${keyId} (keyward keys list shows what it holds)`);
    return { publicKey: createPublicKey({ key: Buffer.from(found.spki), format: 'der', type: 'spki' }), names: found.serverNames.filter((n) => !n.includes('*') || /^\*\.[^*]+$/.test(n)) };
  } finally {
    admin.close();
  }
}

async function issueCommand(o: IssueFlags): Promise<void> {
  const issuer = await readIssuer(o.ca ?? join(o.dir, PKI_FILES.caCert), o.caKey ?? join(o.dir, PKI_FILES.caKey));
  const subject = await subjectKey(o);
  const names = o.name.length > 0 ? o.name : subject.names;
  const usage = o.client ? 'client' : 'server';
  if (usage === 'server' && names.length === 0) throw new CliError('a server certificate needs --name (a DNS name or IP address; repeat for several)');
  const commonName = o.cn ?? subject.commonName ?? names[0];
  if (!commonName) throw new CliError('a client certificate needs --cn NAME (keyd sees it as the identity "cn:NAME")');
  let issued;
  try {
    issued = await issueCertificateForKey(issuer, subject.publicKey, { commonName, ...splitNames(names), usage, days: o.days, delegation: o.delegation === true });
  } catch (err) {
    throw new CliError(`certs issue: ${(err as Error).message}`);
  }
  const what = `certificate for key ${keyIdOf(subject.publicKey)} (${usage}, CN ${commonName}${names.length ? `, names ${names.join(', ')}` : ''}${o.delegation ? ', DelegationUsage' : ''})`;
  if (o.out === undefined) {
    process.stdout.write(issued.chainPem);
    process.stderr.write(`keyward certs issue: ${what}\n`);
    return;
  }
  await writeFile(o.out, issued.chainPem, { mode: 0o644 });
  process.stdout.write(`wrote ${o.out}: ${what}, chain leaf + CA\n`);
}

const collect = (value: string, previous: string[]) => [...previous, value];

/** The longest --days: ten years, as the CA of certs init (and far from the encodable dates' end). */
export const MAX_DAYS = 3650;

function positiveDays(v: string): number {
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!(n >= 1 && n <= MAX_DAYS)) throw new CliError(`--days ${v}: expected a whole number of days from 1 to ${MAX_DAYS}`);
  return n;
}

const DAY_MS = 86_400_000;
// As certificates are: a keyd whose clock is a little behind would take a CRL "not valid yet" for one that does not apply.
const CRL_BACKDATE_MS = 3_600_000;
const PEM_CRL = /-----BEGIN (?:X509 )?CRL-----[\s\S]+?-----END (?:X509 )?CRL-----/g;

interface RevokeFlags {
  dir: string;
  ca?: string;
  caKey?: string;
  out?: string;
  serial: string[];
  days: number;
}

/** A serial number as @peculiar/x509 shows one (lower-case hex, no leading zero octet), from the hex an operator types. */
function normalSerial(given: string): string {
  // Leading zeros go first: tools that print the DER INTEGER show a 00 sign octet before a 20-octet serial.
  const hex = given.replace(/:/g, '').toLowerCase().replace(/^0+(?=[0-9a-f])/, '');
  if (!/^[0-9a-f]{1,40}$/.test(hex)) throw new CliError(`--serial ${given}: expected the certificate's serial number in hex (at most 20 octets)`);
  const bytes = Buffer.from(hex.length % 2 ? '0' + hex : hex, 'hex');
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  return bytes.subarray(i).toString('hex');
}

/** The CA certificate and its private key (the key file's bytes wiped once parsed). */
async function readCaForSigning(certPath: string, keyPath: string): Promise<{ certPem: string; cert: X509Certificate; key: KeyObject }> {
  let certPem;
  try {
    certPem = await readFile(certPath, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read the CA certificate ${certPath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let cert;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    throw new CliError(`${certPath} holds no readable PEM certificate`);
  }
  let raw;
  try {
    raw = await readFile(keyPath);
  } catch (err) {
    throw new CliError(`cannot read the CA key ${keyPath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let key;
  try {
    key = createPrivateKey(raw);
  } catch {
    // The parser's message could quote key text: say only what went wrong.
    throw new CliError(`${keyPath} is not a readable PEM private key`);
  } finally {
    raw.fill(0);
  }
  if (!createPublicKey(key).export({ type: 'spki', format: 'der' }).equals(cert.publicKey.export({ type: 'spki', format: 'der' }))) {
    throw new CliError(`the CA certificate ${certPath} and the key ${keyPath} do not match`);
  }
  return { certPem, cert, key };
}

/** The serial of the certificate in `file` (its first one: a chain's leaf), which `ca` must have issued. */
async function serialToRevoke(file: string, ca: X509Certificate, caPath: string): Promise<{ serial: string; subject: string }> {
  let text;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read the certificate ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(text)?.[0];
  let cert;
  try {
    cert = new X509Certificate(pem ?? '');
  } catch {
    throw new CliError(`${file} holds no readable PEM certificate`);
  }
  const subject = cert.subject.replace(/\n/g, ', ');
  if (cert.fingerprint256 === ca.fingerprint256) throw new CliError(`${file} is the CA certificate itself: a CA does not revoke itself (make a new CA instead)`);
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) {
    const issuer = cert.issuer.replace(/\n/g, ', ');
    const who = cert.issuer === ca.subject ? `another CA of the same name, ${issuer}` : issuer;
    throw new CliError(`${file} (${subject}) was not issued by the CA ${caPath} but by ${who}: this CA's CRL cannot revoke it`);
  }
  return { serial: new x509.X509Certificate(pem!).serialNumber.toLowerCase(), subject };
}

/** The CRL at `out` when there is one: it must be this CA's (its entries are kept, its number raised). */
async function existingCrl(out: string, ca: x509.X509Certificate): Promise<{ entries: x509.X509CrlEntry[]; number?: bigint } | undefined> {
  let text;
  try {
    text = await readFile(out, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CliError(`cannot read the CRL ${out}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const blocks = text.match(PEM_CRL) ?? [];
  if (blocks.length === 0) throw new CliError(`${out} exists and holds no PEM CRL: give another --out, or move it away`);
  const entries: x509.X509CrlEntry[] = [];
  let number: bigint | undefined;
  for (const [i, block] of blocks.entries()) {
    let crl;
    let n;
    try {
      crl = new x509.X509Crl(block.replace(/(BEGIN|END) X509 CRL/g, '$1 CRL'));
      n = crlNumberOf(crl);
    } catch (err) {
      throw new CliError(`${out}: CRL ${i + 1} does not parse${err instanceof Error && err.message.startsWith('the CRL number') ? ` (${err.message})` : ''}`);
    }
    const issuer = crl.issuerName.toString();
    if (issuer !== ca.subjectName.toString() || !(await crl.verify({ publicKey: ca }, globalThis.crypto))) {
      const who = issuer === ca.subjectName.toString() ? `another CA of the same name, ${issuer}` : issuer;
      throw new CliError(`${out} holds a CRL signed by ${who}, not by this CA: certs revoke writes only its own CA's CRL; give another --out`);
    }
    entries.push(...crl.entries);
    if (n !== undefined && (number === undefined || n > number)) number = n;
  }
  return { entries, ...(number !== undefined ? { number } : {}) };
}

/** How long certs revoke waits for another run's lock on the CRL, and when a lock is stale. */
const CRL_LOCK_WAIT_MS = 3000;
const CRL_LOCK_STALE_MS = 60_000;

/**
 * Takes the lock file next to the CRL (created exclusively; two runs at once would each
 * read the same CRL and one revocation would be lost), waiting a little for another run.
 * A lock older than CRL_LOCK_STALE_MS is left by a run that died: taken over, with a warning.
 * Returns the function that removes it.
 */
async function lockCrl(out: string): Promise<() => Promise<void>> {
  const lock = `${out}.lock`;
  const deadline = Date.now() + CRL_LOCK_WAIT_MS;
  for (;;) {
    try {
      const file = await open(lock, 'wx', 0o644);
      await file.writeFile(`${process.pid}\n`);
      await file.close();
      return () => unlink(lock).catch(() => undefined);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new CliError(`--out ${out}: the folder ${dirname(out)} does not exist`);
      if (code !== 'EEXIST') throw new CliError(`cannot create the lock file ${lock}: ${code ?? (err as Error).message}`);
    }
    const age = await stat(lock).then((s) => Date.now() - s.mtimeMs, () => 0);
    if (age > CRL_LOCK_STALE_MS) {
      process.stderr.write(`keyward certs revoke: warning: taking over the lock file ${lock}, left ${Math.round(age / 1000)} s ago by a run that did not finish\n`);
      await unlink(lock).catch(() => undefined);
      continue;
    }
    if (Date.now() > deadline) throw new CliError(`the CRL ${out} is locked by another run (${lock}); try again, or remove that file if no certs revoke is running`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Where the CRL goes: --out, else next to the CA certificate; through a symbolic link to its target. */
async function crlPath(o: RevokeFlags, caPath: string): Promise<string> {
  const out = resolve(o.out ?? join(dirname(caPath), CRL_FILE));
  return realpath(out).catch(() => out);
}

async function revokeCommand(files: string[], o: RevokeFlags): Promise<void> {
  const caPath = resolve(o.ca ?? join(o.dir, PKI_FILES.caCert));
  const caKeyPath = resolve(o.caKey ?? join(o.dir, PKI_FILES.caKey));
  const out = await crlPath(o, caPath);
  const serials = o.serial.map(normalSerial);
  const { certPem, cert: ca, key } = await readCaForSigning(caPath, caKeyPath);
  const named = new Map<string, string>();
  for (const f of files) {
    const { serial, subject } = await serialToRevoke(f, ca, caPath);
    named.set(serial, `${subject}, ${f}`);
  }
  for (const s of serials) if (!named.has(s)) named.set(s, '--serial');
  const caX509 = new x509.X509Certificate(certPem);
  const unlock = await lockCrl(out);
  try {
    // From reading the CRL to the rename, under the lock.
    const before = await existingCrl(out, caX509);
    const entries = new Map<string, x509.X509CrlEntry | { serialNumber: string; revocationDate: Date }>();
    for (const e of before?.entries ?? []) entries.set(e.serialNumber.toLowerCase(), e);
    const now = Date.now();
    const lines: string[] = [];
    for (const [serial, what] of named) {
      const had = entries.get(serial);
      if (had) {
        lines.push(`  already revoked (since ${had.revocationDate.toISOString()}): ${serial} (${what})`);
        continue;
      }
      entries.set(serial, { serialNumber: serial, revocationDate: new Date(now) });
      lines.push(`  revoked: ${serial} (${what})`);
    }
    const number = (before?.number ?? 0n) + 1n;
    const nextUpdate = new Date(now + o.days * DAY_MS);
    let pem;
    try {
      pem = await signCrl(certPem, key, { revoked: [...entries.values()], number, thisUpdate: new Date(now - CRL_BACKDATE_MS), nextUpdate });
    } catch (err) {
      throw new CliError(`certs revoke: ${(err as Error).message}`);
    }
    // A writer that does not take the lock (an editor, another tool) may still have replaced it.
    const stillTheSame = async (): Promise<void> => {
      const nowThere = await existingCrl(out, caX509);
      if (nowThere?.number !== before?.number || (nowThere === undefined) !== (before === undefined)) {
        throw new CliError(`${out} changed while certs revoke ran (CRL number ${nowThere?.number ?? 'none'}, read as ${before?.number ?? 'none'}): nothing written; run it again`);
      }
    };
    try {
      await writeAtomic(out, pem, 0o644, stillTheSame);
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw new CliError(`cannot write --out ${out}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const caFlags = o.ca === undefined && o.caKey === undefined ? `--dir ${resolve(o.dir)}` : `--ca ${caPath} --ca-key ${caKeyPath}`;
    process.stdout.write(
      [
        `wrote ${out}: CRL number ${number} of ${caX509.subjectName.toString()}, ${entries.size} certificate(s) revoked in all${before ? '' : ' (a new CRL)'}`,
        ...lines,
        `  next update: ${nextUpdate.toISOString()} (in ${timeLeft(nextUpdate.getTime() - now)}); sign it again before then (keyward certs revoke ${caFlags} --out ${out} --days ${o.days}): past it keyd refuses every front of this CA`,
        'keyd.json, in "tls":',
        `  "crl": ${JSON.stringify(out)}`,
        '',
      ].join('\n'),
    );
  } finally {
    await unlock();
  }
}

/** Adds `certs init`, `certs issue` and `certs revoke` to the program. */
export function registerCertsCommands(program: Command): void {
  const certs = program.command('certs').description('a private PKI for keyd and its fronts, without openssl');
  certs
    .command('init <dir>')
    .description('create a CA, keyd\'s server certificate, and front and admin client certificates in DIR')
    .addOption(new Option('--keyd-name <name>', 'DNS name or IP in keyd\'s certificate (repeat; default localhost, 127.0.0.1, ::1)').argParser(collect))
    .option('--front-name <cn>', 'CN of the front\'s client certificate (keyd identity cn:NAME)', 'front')
    .option('--admin-name <cn>', 'CN of the admin\'s client certificate', 'admin')
    .addOption(new Option('--key-type <type>', 'key type of every certificate').choices(['ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'ed25519']).default('ecdsa-p256'))
    .action(async (dir: string, o: { keydName?: string[]; frontName: string; adminName: string; keyType: KeyType }) => {
      const pki = await initPki(dir, { ...(o.keydName ? { keydNames: o.keydName } : {}), frontName: o.frontName, adminName: o.adminName, keyType: o.keyType });
      const f = pki.files;
      process.stdout.write(
        [
          `created in ${dir}:`,
          `  ${PKI_FILES.caCert}, ${PKI_FILES.caKey}       the private CA (keep ${PKI_FILES.caKey} offline; its CRL: docs/pki.md)`,
          `  ${PKI_FILES.keydCert}, ${PKI_FILES.keydKey}   keyd's server certificate`,
          `  ${PKI_FILES.frontCert}, ${PKI_FILES.frontKey} the front's client certificate, identity ${pki.frontIdentity}`,
          `  ${PKI_FILES.adminCert}, ${PKI_FILES.adminKey} the admin's client certificate, identity ${pki.adminIdentity}`,
          'keyd.json:',
          `  "tls": { "cert": "${f.keydCert}", "key": "${f.keydKey}", "clientCa": "${f.caCert}" },`,
          `  "clients": [ { "id": "${pki.frontIdentity}", "keys": ["*"] }, { "id": "${pki.adminIdentity}", "admin": true } ]`,
          'front:',
          `  --keyd tls://localhost:7443 --keyd-ca ${f.caCert} --keyd-cert ${f.frontCert} --keyd-key ${f.frontKey}`,
          'a site certificate for a key made inside keyd:',
          `  keyward keys generate --name example.com --keyd tls://localhost:7443 --ca ${f.caCert} --cert ${f.adminCert} --key ${f.adminKey}`,
          `  keyward certs issue --dir ${dir} --keyd tls://localhost:7443 --keyd-key KEYID --name example.com --out site.pem`,
          'to revoke a front later (keyd.json "tls": "crl" names the CRL; sign it again within --days, 30):',
          `  keyward certs revoke --dir ${resolve(dir)} --out ${resolve(dir, CRL_FILE)} ${resolve(f.frontCert)}`,
          '',
        ].join('\n'),
      );
    });
  certs
    .command('issue')
    .description('issue a certificate from the CA for a key held elsewhere: a CSR, a public key file, or a key inside keyd')
    .option('--dir <dir>', 'folder made by certs init (its CA, and its admin certificate for --keyd-key)', '.')
    .option('--ca <ca-cert.pem>', 'CA certificate (default DIR/ca-cert.pem)')
    .option('--ca-key <ca-key.pem>', 'CA private key (default DIR/ca-key.pem)')
    .option('--csr <file>', 'a PKCS#10 request (PEM); its names are used unless --name is given')
    .option('--public-key <file>', 'a public key (PEM or DER SubjectPublicKeyInfo), e.g. from keyward keys generate --public-out')
    .option('--keyd-key <id>', 'the id of a key inside keyd (keyward keys list); its public key is fetched with an admin identity')
    .option('--keyd <address>', 'keyd address for --keyd-key: tls://HOST:PORT or unix:/path')
    .option('--keyd-ca <ca.pem>', 'CA of keyd\'s certificate (default DIR/ca-cert.pem)')
    .option('--admin-cert <file>', 'admin client certificate for keyd (default DIR/admin-cert.pem)')
    .option('--admin-key <file>', 'its key (default DIR/admin-key.pem)')
    .addOption(new Option('--name <name>', 'DNS name or IP address (repeat)').argParser(collect).default([]))
    .option('--cn <name>', 'subject CN (default: the CSR\'s, else the first --name)')
    .option('--client', 'a client certificate (clientAuth) instead of a server one')
    .addOption(new Option('--days <n>', 'validity in days').argParser(positiveDays).default(365))
    .option('--delegation', 'add DelegationUsage (RFC 9345) so the key holder may sign delegated credentials for it')
    .option('--out <file>', 'write the chain (leaf + CA) here instead of stdout')
    .action(async (o: IssueFlags) => issueCommand(o));
  certs
    .command('revoke')
    .description("revoke certificates of the CA in its CRL (keyd's tls.crl), keeping those revoked before; with none given, sign the CRL again with a new next update")
    .argument('[cert...]', 'PEM certificates of this CA to revoke (a chain: its leaf)')
    .option('--dir <dir>', 'folder made by certs init (its CA; the CRL is written next to the CA certificate)', '.')
    .option('--ca <ca-cert.pem>', 'CA certificate (default DIR/ca-cert.pem)')
    .option('--ca-key <ca-key.pem>', 'CA private key (default DIR/ca-key.pem)')
    .addOption(new Option('--serial <hex>', 'revoke a certificate by its serial number, in hex (repeat)').argParser(collect).default([]))
    .addOption(new Option('--days <n>', 'days until the CRL\'s next update; keyd refuses every front of the CA after it').argParser(positiveDays).default(30))
    .option('--out <file>', `the CRL to update or create (default ${CRL_FILE} in the CA certificate's folder: DIR, or that of --ca)`)
    .action(async (files: string[], o: RevokeFlags) => revokeCommand(files, o));
}
