/**
 * Certificates for delegated-credential tests: self-signed leaves whose DelegationUsage
 * and keyUsage extensions and validity are chosen by the test, built with @peculiar/x509
 * apart from the code under test (which reads them with its own DER walker).
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { KeyObject, X509Certificate, generateKeyPairSync, randomBytes, verify } from 'node:crypto';
import type { DelegatedCredentialRequest } from '../../src/keys/delegatedCredentialIssuer.js';

export interface DelegationCertOptions {
  /** 'ok': NULL, non-critical (default); 'none'; 'critical'; 'bad-value' (not NULL). */
  delegation?: 'ok' | 'none' | 'critical' | 'bad-value';
  /** Default 'digitalSignature'. */
  keyUsage?: 'digitalSignature' | 'keyEncipherment' | 'none';
  keyType?: 'ec-p256' | 'ed25519' | 'rsa';
  notBefore?: Date;
  notAfter?: Date;
  /** Use this key pair instead of a new one. */
  keys?: CryptoKeyPair;
}

export interface DelegationCert {
  der: Buffer;
  pem: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  keys: CryptoKeyPair;
}

const ALGS = {
  'ec-p256': { gen: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } },
  ed25519: { gen: { name: 'Ed25519' }, sign: { name: 'Ed25519' } },
  rsa: { gen: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, sign: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } },
} as const;

/** A self-signed certificate for `localhost` with the chosen extensions (default: one that can delegate, valid from an hour ago for 30 days). */
export async function delegationCert(opts: DelegationCertOptions = {}): Promise<DelegationCert> {
  const crypto = globalThis.crypto;
  const alg = ALGS[opts.keyType ?? 'ec-p256'];
  const keys = opts.keys ?? ((await crypto.subtle.generateKey(alg.gen as EcKeyGenParams, true, ['sign', 'verify'])) as CryptoKeyPair);
  const extensions: x509.Extension[] = [new x509.BasicConstraintsExtension(false, undefined, true), new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'localhost' }], false)];
  const usage = opts.keyUsage ?? 'digitalSignature';
  if (usage !== 'none') extensions.push(new x509.KeyUsagesExtension(usage === 'digitalSignature' ? x509.KeyUsageFlags.digitalSignature : x509.KeyUsageFlags.keyEncipherment, true));
  const delegation = opts.delegation ?? 'ok';
  if (delegation !== 'none') {
    extensions.push(new x509.Extension('1.3.6.1.4.1.44363.44', delegation === 'critical', delegation === 'bad-value' ? Uint8Array.of(0x01, 0x01, 0xff) : Uint8Array.of(0x05, 0x00)));
  }
  const notBefore = opts.notBefore ?? new Date(Math.floor(Date.now() / 1000) * 1000 - 3600_000);
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomBytes(8).toString('hex').replace(/^[89a-f]/, '1'),
      name: 'CN=localhost',
      notBefore,
      notAfter: opts.notAfter ?? new Date(notBefore.getTime() + 30 * 86400_000),
      keys,
      signingAlgorithm: alg.sign,
      extensions,
    },
    crypto,
  );
  const der = Buffer.from(cert.rawData);
  return {
    der,
    pem: cert.toString('pem'),
    privateKey: KeyObject.from(keys.privateKey),
    publicKey: KeyObject.from(keys.publicKey),
    keys,
  };
}

/** notBefore of a DER certificate, ms (read by node:crypto, not by the code under test). */
export function notBeforeOf(der: Uint8Array): number {
  return Date.parse(new X509Certificate(der).validFrom);
}

/**
 * A request for a credential on a fresh P-256 key expiring `validityMs` after `now`
 * (valid_time counted from the certificate's notBefore), signed with ecdsa_secp256r1_sha256.
 */
export function dcRequest(certDer: Uint8Array, validityMs = 3600_000, opts: { now?: number; spki?: Uint8Array; dcScheme?: number; algorithm?: number; side?: 'server' | 'client' } = {}): DelegatedCredentialRequest {
  const now = opts.now ?? Date.now();
  const spki = opts.spki ?? generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
  return {
    certificate: certDer,
    credential: { validTime: Math.floor((now + validityMs - notBeforeOf(certDer)) / 1000), certVerifyAlgorithm: opts.dcScheme ?? 0x0403, spki },
    algorithm: opts.algorithm ?? 0x0403,
    side: opts.side ?? 'server',
  };
}

/** RFC 9345 4's signed content, assembled here byte by byte (not by the code under test). */
export function signedContentByHand(req: DelegatedCredentialRequest): Buffer {
  const c = req.credential;
  const head = Buffer.alloc(9);
  head.writeUInt32BE(c.validTime, 0);
  head.writeUInt16BE(c.certVerifyAlgorithm, 4);
  head.writeUIntBE(c.spki.length, 6, 3);
  const alg = Buffer.alloc(2);
  alg.writeUInt16BE(req.algorithm, 0);
  return Buffer.concat([Buffer.alloc(64, 0x20), Buffer.from(`TLS, ${req.side} delegated credentials`, 'ascii'), Buffer.of(0), req.certificate, head, c.spki, alg]);
}

/** Verifies an ECDSA P-256 / SHA-256 credential signature with node:crypto over {@link signedContentByHand}. */
export function verifiesByHand(certPublicKey: KeyObject, req: DelegatedCredentialRequest, signature: Uint8Array): boolean {
  return verify('sha256', signedContentByHand(req), { key: certPublicKey, dsaEncoding: 'der' }, signature);
}
