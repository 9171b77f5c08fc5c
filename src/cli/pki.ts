/**
 * Demo and test PKI: a small CA and the server/client certificates it issues.
 *
 * This module generates private keys, so it is a tool for demos and tests, never part
 * of a TLS front: a front that follows the key boundary gets only certificates from here.
 * Certificates are built with @peculiar/x509 on Node's webcrypto and carry the extensions
 * strict verifiers (OpenSSL 3, GnuTLS, Python's ssl, node:tls) expect of a CA and of a
 * TLS server or client certificate.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, createPublicKey, generateKeyPair as generateNodeKeyPair, KeyObject, randomBytes, X509Certificate } from 'node:crypto';
import { promisify } from 'node:util';
import { chmod, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { CRL_NUMBER_OID, crlNumberOf } from '../keyd/clientCrl.js';

/** Key types the PKI can generate, for a CA or a leaf. */
export type KeyType = 'ecdsa-p256' | 'ecdsa-p384' | 'rsa-2048' | 'ed25519';

/** Every KeyType, in a stable order (handy for tests that cover them all). */
export const KEY_TYPES: readonly KeyType[] = ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'ed25519'];

/** A CA that can issue certificates: its certificate and its PKCS#8 private key, both PEM. */
export interface Issuer {
  certPem: string;
  /** PKCS#8 PEM. */
  keyPem: string;
}

/** Options for {@link createCa}. */
export interface CreateCaOptions {
  /** Default "keyward demo CA". */
  commonName?: string;
  /** Default 'ecdsa-p256'. */
  keyType?: KeyType;
  /** Validity in days, default 3650. */
  days?: number;
}

/**
 * Key types of a leaf: every {@link KeyType}, and 'rsa-pss-2048', an RSASSA-PSS key
 * (id-RSASSA-PSS, no parameters: it signs with every rsa_pss_pss_* scheme). A CA cannot
 * be one: webcrypto, which signs the certificates, has no RSASSA-PSS key.
 */
export type LeafKeyType = KeyType | 'rsa-pss-2048';

/** Options for {@link issueCertificate}. */
export interface IssueOptions {
  keyType: LeafKeyType;
  commonName: string;
  /** DNS subjectAltNames; wildcards such as "*.example.test" are allowed. */
  dnsNames?: string[];
  /** IPv4 or IPv6 subjectAltNames. */
  ipAddresses?: string[];
  /** extendedKeyUsage: serverAuth, clientAuth or both. */
  usage: 'server' | 'client' | 'both';
  /** Validity in days, default 365. */
  days?: number;
  /**
   * Add the DelegationUsage extension (RFC 9345 4.2; OID 1.3.6.1.4.1.44363.44, NULL,
   * non-critical) so the key's holder may sign delegated credentials for it.
   */
  delegation?: boolean;
}

/** An issued certificate with its key. */
export interface IssuedCertificate {
  /** The leaf certificate alone, PEM. */
  certPem: string;
  /** The leaf's PKCS#8 private key, PEM. */
  keyPem: string;
  /** Leaf followed by the issuing CA, PEM: what a server sends. */
  chainPem: string;
}

/** Paths and PEM of the demo PKI made by {@link ensureDemoPki}. */
export interface DemoPki {
  caPem: string;
  caPath: string;
  /** Server chain (leaf + CA), PEM file. */
  certPath: string;
  /** Server private key, PKCS#8 PEM file (mode 0600). */
  keyPath: string;
  /** True when this call generated the files, false when it reused them. */
  created: boolean;
}

const DAY_MS = 24 * 60 * 60 * 1000;
// Certificates start an hour in the past so a peer with a slightly slow clock accepts them.
const BACKDATE_MS = 60 * 60 * 1000;

function webcrypto(): Crypto {
  return globalThis.crypto;
}

interface KeyAlgorithms {
  /** For generateKey and importKey. */
  gen: RsaHashedKeyGenParams | EcKeyGenParams | Algorithm;
  /** For signing certificates with this key. */
  sign: Algorithm | EcdsaParams;
}

function algorithmsFor(keyType: KeyType): KeyAlgorithms {
  switch (keyType) {
    case 'ecdsa-p256':
      return { gen: { name: 'ECDSA', namedCurve: 'P-256' } as EcKeyGenParams, sign: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams };
    case 'ecdsa-p384':
      return { gen: { name: 'ECDSA', namedCurve: 'P-384' } as EcKeyGenParams, sign: { name: 'ECDSA', hash: 'SHA-384' } as EcdsaParams };
    case 'rsa-2048':
      return {
        gen: {
          name: 'RSASSA-PKCS1-v1_5',
          modulusLength: 2048,
          publicExponent: new Uint8Array([1, 0, 1]),
          hash: 'SHA-256',
        } as RsaHashedKeyGenParams,
        sign: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as Algorithm,
      };
    case 'ed25519':
      return { gen: { name: 'Ed25519' }, sign: { name: 'Ed25519' } };
    default:
      throw new Error(`unknown key type ${JSON.stringify(keyType as string)}`);
  }
}

/** Which KeyType a private key is, so an Issuer's key can be imported for signing. */
function keyTypeOf(key: KeyObject): KeyType {
  const t = key.asymmetricKeyType;
  if (t === 'ed25519') return 'ed25519';
  if (t === 'rsa') return 'rsa-2048';
  if (t === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') return 'ecdsa-p256';
    if (curve === 'secp384r1') return 'ecdsa-p384';
    throw new Error(`unsupported CA curve ${String(curve)}`);
  }
  throw new Error(`unsupported CA key type ${String(t)}`);
}

async function generateKeyPair(keyType: KeyType): Promise<CryptoKeyPair> {
  const { gen } = algorithmsFor(keyType);
  return (await webcrypto().subtle.generateKey(gen, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto().subtle.exportKey('pkcs8', key));
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }) as string;
}

async function importSigningKey(keyPem: string): Promise<{ key: CryptoKey; keyType: KeyType }> {
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey(keyPem);
  } catch {
    // The parser's message could quote key text; say only what went wrong.
    throw new Error('issuer key is not a readable PEM private key');
  }
  const keyType = keyTypeOf(keyObject);
  const der = keyObject.export({ type: 'pkcs8', format: 'der' });
  const { gen } = algorithmsFor(keyType);
  const key = await webcrypto().subtle.importKey('pkcs8', der, gen, false, ['sign']);
  return { key, keyType };
}

/** A positive, 16-byte serial number that never has a leading zero byte. */
function serialNumber(): string {
  const b = randomBytes(16);
  b[0] = (b[0] & 0x7f) | 0x40;
  return b.toString('hex');
}

function validity(days: number): { notBefore: Date; notAfter: Date } {
  if (!Number.isFinite(days) || days <= 0) throw new RangeError(`days must be a positive number, got ${days}`);
  const now = Date.now();
  return { notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(now + days * DAY_MS) };
}

function pemOf(cert: x509.X509Certificate): string {
  return cert.toString('pem').replace(/\r\n/g, '\n').trimEnd() + '\n';
}

/**
 * Creates a self-signed CA: basicConstraints CA:true (pathlen 0, critical), keyUsage
 * keyCertSign + cRLSign + digitalSignature (critical), subject key identifier.
 */
export async function createCa(opts: CreateCaOptions = {}): Promise<Issuer> {
  const keyType = opts.keyType ?? 'ecdsa-p256';
  const commonName = opts.commonName ?? 'keyward demo CA';
  const { sign } = algorithmsFor(keyType);
  const keys = await generateKeyPair(keyType);
  const crypto = webcrypto();
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serialNumber(),
      name: [{ CN: [commonName] }, { O: ['keyward'] }],
      ...validity(opts.days ?? 3650),
      keys,
      signingAlgorithm: sign,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  return { certPem: pemOf(cert), keyPem: await exportKeyPem(keys.privateKey) };
}

function subjectAltNames(dnsNames: string[], ipAddresses: string[]): x509.JsonGeneralNames {
  const names: x509.JsonGeneralNames = [];
  for (const d of dnsNames) {
    if (!/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(d)) {
      throw new Error(`not a DNS name: ${JSON.stringify(d)}`);
    }
    names.push({ type: 'dns', value: d });
  }
  for (const ip of ipAddresses) {
    if (isIP(ip) === 0) throw new Error(`not an IP address: ${JSON.stringify(ip)}`);
    names.push({ type: 'ip', value: ip });
  }
  return names;
}

/** Options for {@link issueCertificateForKey}: as {@link IssueOptions} without the key type. */
export type IssueForKeyOptions = Omit<IssueOptions, 'keyType'>;

/**
 * Issues a leaf certificate signed by `issuer` for a public key whose private half lives
 * elsewhere (keyd, a token, a CSR's owner): basicConstraints CA:false (critical),
 * keyUsage digitalSignature (+ keyEncipherment for an rsaEncryption key, for TLS 1.2 RSA
 * key exchange; never for an RSASSA-PSS one, RFC 4055 1.2),
 * extendedKeyUsage per `usage`, subjectAltName, subject and authority key identifiers.
 * Returns the leaf PEM and the chain (leaf + CA).
 */
export async function issueCertificateForKey(issuer: Issuer, publicKey: KeyObject, opts: IssueForKeyOptions): Promise<{ certPem: string; chainPem: string }> {
  if (publicKey.type !== 'public') throw new Error('issueCertificateForKey takes a public key');
  return signLeaf(issuer, publicKey, opts);
}

async function signLeaf(issuer: Issuer, publicKey: KeyObject, opts: IssueForKeyOptions): Promise<{ certPem: string; chainPem: string }> {
  const crypto = webcrypto();
  // The SPKI as it is: webcrypto would rewrite an RSASSA-PSS key's OID as rsaEncryption.
  const leafKey = publicKey.export({ type: 'spki', format: 'der' });
  let caCert: x509.X509Certificate;
  try {
    caCert = new x509.X509Certificate(issuer.certPem);
  } catch {
    throw new Error('issuer certificate is not a readable PEM certificate');
  }
  const { key: caKey, keyType: caKeyType } = await importSigningKey(issuer.keyPem);
  const caSki = caCert.getExtension(x509.SubjectKeyIdentifierExtension);
  const aki = caSki
    ? new x509.AuthorityKeyIdentifierExtension(caSki.keyId, false)
    : await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey, false, crypto);

  let usageFlags = x509.KeyUsageFlags.digitalSignature;
  if (publicKey.asymmetricKeyType === 'rsa') usageFlags |= x509.KeyUsageFlags.keyEncipherment;
  const eku: string[] = [];
  if (opts.usage === 'server' || opts.usage === 'both') eku.push(x509.ExtendedKeyUsage.serverAuth);
  if (opts.usage === 'client' || opts.usage === 'both') eku.push(x509.ExtendedKeyUsage.clientAuth);

  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(usageFlags, true),
    new x509.ExtendedKeyUsageExtension(eku, false),
    await x509.SubjectKeyIdentifierExtension.create(leafKey, false, crypto),
    aki,
  ];
  const san = subjectAltNames(opts.dnsNames ?? [], opts.ipAddresses ?? []);
  // A server certificate without a SAN is ignored by every modern verifier.
  if (san.length === 0 && opts.usage !== 'client') throw new Error('a server certificate needs dnsNames or ipAddresses');
  if (san.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(san, false));
  // DelegationUsage: its value is an encoded NULL; non-critical so that clients without DC support accept the certificate.
  if (opts.delegation) extensions.push(new x509.Extension('1.3.6.1.4.1.44363.44', false, Uint8Array.of(0x05, 0x00)));

  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serialNumber(),
      subject: [{ CN: [opts.commonName] }],
      issuer: caCert.subjectName,
      ...validity(opts.days ?? 365),
      publicKey: leafKey,
      signingKey: caKey,
      signingAlgorithm: algorithmsFor(caKeyType).sign,
      extensions,
    },
    crypto,
  );
  const certPem = pemOf(cert);
  const caPem = issuer.certPem.replace(/\r\n/g, '\n').trimEnd() + '\n';
  return { certPem, chainPem: certPem + caPem };
}

/**
 * Issues a leaf certificate signed by `issuer` with a new key of `opts.keyType` (see
 * {@link issueCertificateForKey} for the extensions). The leaf's key type is independent
 * of the CA's (an Ed25519 leaf under an ECDSA CA is fine).
 */
export async function issueCertificate(issuer: Issuer, opts: IssueOptions): Promise<IssuedCertificate> {
  if (opts.keyType === 'rsa-pss-2048') {
    const keys = await promisify(generateNodeKeyPair)('rsa-pss', { modulusLength: 2048 });
    const { certPem, chainPem } = await signLeaf(issuer, keys.publicKey, opts);
    return { certPem, keyPem: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, chainPem };
  }
  const keys = await generateKeyPair(opts.keyType);
  const { certPem, chainPem } = await signLeaf(issuer, KeyObject.from(keys.publicKey), opts);
  return { certPem, keyPem: await exportKeyPem(keys.privateKey), chainPem };
}

const DEMO_FILES = {
  caCert: 'ca-cert.pem',
  caKey: 'ca-key.pem',
  chain: 'server-chain.pem',
  key: 'server-key.pem',
} as const;

/**
 * Writes via a temporary file (flushed to disk) and rename, so a crash never leaves a
 * half-written file; the temporary file is removed when anything fails. `beforeRename`
 * runs last, just before the rename: a check that may still refuse the write.
 */
export async function writeAtomic(path: string, data: string, mode: number, beforeRename?: () => Promise<void>): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const file = await open(tmp, 'wx', mode);
  try {
    try {
      await file.writeFile(data);
      await file.sync();
    } finally {
      await file.close();
    }
    await chmod(tmp, mode);
    await beforeRename?.();
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/** Reuses the demo files only when they are all there, parse, match, and stay valid a while. */
async function loadDemoPki(dir: string): Promise<Omit<DemoPki, 'created'> | undefined> {
  const caPath = join(dir, DEMO_FILES.caCert);
  const certPath = join(dir, DEMO_FILES.chain);
  const keyPath = join(dir, DEMO_FILES.key);
  try {
    const [caPem, chainPem, keyPem] = await Promise.all([
      readFile(caPath, 'utf8'),
      readFile(certPath, 'utf8'),
      readFile(keyPath, 'utf8'),
      readFile(join(dir, DEMO_FILES.caKey), 'utf8'),
    ]);
    const ca = new X509Certificate(caPem);
    const leaf = new X509Certificate(chainPem);
    const soon = Date.now() + DAY_MS;
    if (Date.parse(leaf.validTo) < soon || Date.parse(ca.validTo) < soon) return undefined;
    if (!leaf.checkIssued(ca) || !leaf.verify(ca.publicKey)) return undefined;
    const fromKey = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
    const fromCert = leaf.publicKey.export({ type: 'spki', format: 'der' });
    if (!fromKey.equals(fromCert)) return undefined;
    return { caPem, caPath, certPath, keyPath };
  } catch {
    return undefined;
  }
}

/**
 * Makes sure `dir` holds a demo CA and a `localhost` ECDSA P-256 server certificate
 * (SANs localhost, 127.0.0.1, ::1), creating them on first use and reusing them after.
 * The directory is created with mode 0700 and key files are written with mode 0600.
 * Files: ca-cert.pem, ca-key.pem, server-chain.pem (leaf + CA), server-key.pem.
 */
export async function ensureDemoPki(dir: string): Promise<DemoPki> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const existing = await loadDemoPki(dir);
  if (existing) return { ...existing, created: false };

  const ca = await createCa({ commonName: 'keyward demo CA', keyType: 'ecdsa-p256' });
  const server = await issueCertificate(ca, {
    keyType: 'ecdsa-p256',
    commonName: 'localhost',
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1', '::1'],
    usage: 'server',
    days: 825,
  });
  const caPath = join(dir, DEMO_FILES.caCert);
  const certPath = join(dir, DEMO_FILES.chain);
  const keyPath = join(dir, DEMO_FILES.key);
  // Keys first, certificates last: a half-finished run fails loadDemoPki and is redone.
  await writeAtomic(join(dir, DEMO_FILES.caKey), ca.keyPem, 0o600);
  await writeAtomic(keyPath, server.keyPem, 0o600);
  await writeAtomic(caPath, ca.certPem, 0o644);
  await writeAtomic(certPath, server.chainPem, 0o644);
  return { caPem: ca.certPem, caPath, certPath, keyPath, created: true };
}

/** DER INTEGER of a non-negative number (the CRL number, at most 20 octets by RFC 5280). */
function derInteger(n: bigint): Uint8Array<ArrayBuffer> {
  if (n < 0n) throw new RangeError('a CRL number is not negative');
  let hex = n.toString(16);
  if (hex.length % 2) hex = '0' + hex;
  let body = Buffer.from(hex, 'hex');
  if (body[0] & 0x80) body = Buffer.concat([Buffer.of(0), body]);
  if (body.length > 21) throw new RangeError('a CRL number has at most 20 octets');
  return new Uint8Array(Buffer.concat([Buffer.of(0x02, body.length), body]));
}

/** Options for {@link signCrl}. */
export interface SignCrlOptions {
  /** The revoked certificates: entries of an earlier CRL (kept with their extensions) or new serials. */
  revoked: ReadonlyArray<x509.X509CrlEntry | { serialNumber: string; revocationDate: Date }>;
  /** The CRL number; each CRL a CA issues has a larger one. */
  number: bigint;
  thisUpdate: Date;
  nextUpdate: Date;
}

/**
 * Signs a v2 CRL of the CA `caCertPem` with its private key (the CRL number and authority
 * key identifier extensions), and returns it as PEM with the header OpenSSL writes and
 * reads (`-----BEGIN X509 CRL-----`, where @peculiar/x509 writes "BEGIN CRL").
 */
export async function signCrl(caCertPem: string, caKey: KeyObject, opts: SignCrlOptions): Promise<string> {
  for (const d of [opts.thisUpdate, opts.nextUpdate]) {
    // GeneralizedTime ends at year 9999; an invalid Date has no year at all.
    if (!(d.getUTCFullYear() >= 1950 && d.getUTCFullYear() <= 9999)) throw new RangeError(`a CRL date must fall in the years 1950 to 9999, got ${String(d)}`);
  }
  const crypto = webcrypto();
  const caCert = new x509.X509Certificate(caCertPem);
  const keyType = keyTypeOf(caKey);
  const der = caKey.export({ type: 'pkcs8', format: 'der' });
  let signingKey: CryptoKey;
  try {
    signingKey = await crypto.subtle.importKey('pkcs8', der, algorithmsFor(keyType).gen, false, ['sign']);
  } finally {
    der.fill(0);
  }
  const ski = caCert.getExtension(x509.SubjectKeyIdentifierExtension);
  const aki = ski ? new x509.AuthorityKeyIdentifierExtension(ski.keyId, false) : await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey, false, crypto);
  const crl = await x509.X509CrlGenerator.create(
    {
      issuer: caCert.subjectName,
      thisUpdate: opts.thisUpdate,
      nextUpdate: opts.nextUpdate,
      entries: [...opts.revoked],
      extensions: [new x509.Extension(CRL_NUMBER_OID, false, derInteger(opts.number)), aki],
      signingKey,
      signingAlgorithm: algorithmsFor(keyType).sign,
    },
    crypto,
  );
  const pem = crl.toString('pem').replace(/\r\n/g, '\n').replace(/-----(BEGIN|END) CRL-----/g, '-----$1 X509 CRL-----').trimEnd() + '\n';
  // Read it back: a date the encoder cannot write (past year 9999) comes out malformed, not as an error.
  const second = (d: Date) => Math.floor(d.getTime() / 1000);
  let back: x509.X509Crl | undefined;
  try {
    back = new x509.X509Crl(pem);
  } catch {
    back = undefined;
  }
  if (!back || second(back.thisUpdate) !== second(opts.thisUpdate) || !back.nextUpdate || second(back.nextUpdate) !== second(opts.nextUpdate) || crlNumberOf(back) !== opts.number) {
    throw new Error(`the signed CRL does not read back as written (thisUpdate ${opts.thisUpdate.toISOString()}, nextUpdate ${opts.nextUpdate.toISOString()}, number ${opts.number})`);
  }
  return pem;
}
