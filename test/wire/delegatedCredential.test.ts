// RFC 9345 4: the DelegatedCredential encoding and the bytes the certificate key signs,
// checked against vectors assembled here byte by byte (not with the codec under test),
// and a signature made over the module's content with node:crypto that verifies against
// the certificate's public key over the hand-built content.
import assert from 'node:assert/strict';
import { X509Certificate, generateKeyPairSync, sign, verify } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  credentialExpiry,
  delegatedCredentialExt,
  delegatedCredentialSignedContent,
  encodeCredential,
  parseCredential,
  type Credential,
} from '../../src/tls/wire/delegatedCredential.js';
import { delegationCert } from '../support/delegationPki.js';
import { decodeErr } from './expectAlert.js';

const u16 = (v: number) => Buffer.from([v >> 8, v & 0xff]);
const u24 = (v: number) => Buffer.from([v >> 16, (v >> 8) & 0xff, v & 0xff]);
const u32 = (v: number) => Buffer.from([v >>> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff]);

describe('RFC 9345 signed content', () => {
  it('matches a fixed vector for the client context', () => {
    const cred: Credential = { validTime: 86400, certVerifyAlgorithm: 0x0807, spki: Uint8Array.of(1, 2, 3) };
    const hex = Buffer.from(delegatedCredentialSignedContent(Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x01), cred, 0x0403, 'client')).toString('hex');
    const want =
      '20'.repeat(64) +
      Buffer.from('TLS, client delegated credentials', 'ascii').toString('hex') +
      '00' + // separator
      '3003020101' + // the certificate
      '00015180' + // valid_time 86400
      '0807' + // dc_cert_verify_algorithm ed25519
      '000003010203' + // ASN1_subjectPublicKeyInfo<1..2^24-1>
      '0403'; // algorithm
    assert.equal(hex, want);
  });

  it('a signature over it by the certificate key verifies over the content built by hand', async () => {
    const cert = await delegationCert();
    const dcKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
    const cred: Credential = { validTime: 7200, certVerifyAlgorithm: 0x0403, spki: dcKey };
    const byHand = Buffer.concat([
      Buffer.alloc(64, 0x20),
      Buffer.from('TLS, server delegated credentials', 'ascii'),
      Buffer.of(0),
      cert.der,
      u32(7200),
      u16(0x0403),
      u24(dcKey.length),
      dcKey,
      u16(0x0403),
    ]);
    const content = delegatedCredentialSignedContent(cert.der, cred, 0x0403, 'server');
    assert.deepEqual(Buffer.from(content), byHand);
    const sig = sign('sha256', content, cert.privateKey);
    assert.ok(verify('sha256', byHand, cert.publicKey, sig));
  });
});

describe('DelegatedCredential encoding', () => {
  const spki = Buffer.alloc(91, 4);
  const cred: Credential = { validTime: 0x01020304, certVerifyAlgorithm: 0x0403, spki };

  it('encodes the credential and the extension body as RFC 9345 4 lays them out', () => {
    const credBytes = Buffer.concat([u32(0x01020304), u16(0x0403), u24(91), spki]);
    assert.deepEqual(Buffer.from(encodeCredential(cred)), credBytes);
    const sig = Buffer.alloc(70, 9);
    const body = delegatedCredentialExt.encode({ cred, algorithm: 0x0804, signature: sig }).data;
    assert.deepEqual(Buffer.from(body), Buffer.concat([credBytes, u16(0x0804), u16(70), sig]));
    const parsed = parseCredential(credBytes);
    assert.deepEqual([parsed.validTime, parsed.certVerifyAlgorithm, Buffer.from(parsed.spki)], [0x01020304, 0x0403, spki]);
  });

  it('refuses a truncated credential, an empty key and trailing bytes with decode_error', () => {
    const credBytes = Buffer.from(encodeCredential(cred));
    decodeErr(() => parseCredential(credBytes.subarray(0, credBytes.length - 1)));
    decodeErr(() => parseCredential(Buffer.concat([u32(1), u16(0x0403), u24(0)])));
    decodeErr(() => parseCredential(Buffer.concat([credBytes, Buffer.of(0)])));
  });

  it('valid_time counts from the certificate notBefore', async () => {
    const notBefore = new Date(Date.UTC(2026, 0, 1, 0, 0, 0));
    const cert = await delegationCert({ notBefore });
    const nb = Date.parse(new X509Certificate(cert.der).validFrom);
    assert.equal(nb, notBefore.getTime());
    assert.equal(credentialExpiry(nb, 3600), Date.UTC(2026, 0, 1, 1, 0, 0));
  });
});
