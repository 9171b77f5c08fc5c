/**
 * The client's check of a server's delegated credential (RFC 9345 4.1.3): a good
 * credential gives its key and scheme; every failure the RFC lists is illegal_parameter
 * with the reason. Credentials are signed here with node:crypto over the content assembled
 * by hand (test/support/delegationPki.ts), not by the issuers under test.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { before, describe, it } from 'node:test';
import { verifyPeerDelegatedCredential } from '../../src/tls/engine/delegatedCredentialCheck.js';
import { AlertDescription } from '../../src/tls/wire/alerts.js';
import { delegatedCredentialExt } from '../../src/tls/wire/delegatedCredential.js';
import { TlsAlertError } from '../../src/tls/wire/errors.js';
import { dcRequest, delegationCert, signedContentByHand, type DelegationCert } from '../support/delegationPki.js';
import type { DelegatedCredentialRequest } from '../../src/keys/delegatedCredentialIssuer.js';

const OFFER = { credentialSchemes: [0x0403, 0x0807], signatureAlgorithms: [0x0403, 0x0804, 0x0807] };
const HOUR = 3600_000;

function build(cert: DelegationCert, req: DelegatedCredentialRequest, tamper?: (sig: Buffer) => void): Uint8Array {
  const sig = sign('sha256', signedContentByHand(req), { key: cert.privateKey, dsaEncoding: 'der' });
  tamper?.(sig);
  return delegatedCredentialExt.encode({ cred: req.credential, algorithm: req.algorithm, signature: sig }).data;
}

function refused(fn: () => unknown, reason: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof TlsAlertError && e.alert === AlertDescription.illegal_parameter && reason.test(e.message));
}

describe('a peer delegated credential (RFC 9345 4.1.3)', () => {
  let cert: DelegationCert;
  before(async () => {
    cert = await delegationCert();
  });

  it('a good credential gives its key, its scheme and its expiry', () => {
    const now = Date.now();
    const kp = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const req = dcRequest(cert.der, HOUR, { now, spki: kp.publicKey.export({ type: 'spki', format: 'der' }) });
    const v = verifyPeerDelegatedCredential(build(cert, req), cert.der, cert.publicKey, OFFER, now);
    assert.equal(v.scheme, 0x0403);
    assert.ok(v.publicKey.equals(kp.publicKey));
    assert.ok(Math.abs(v.expiresAt - (now + HOUR)) < 1000);
  });

  it('refuses an expired credential, and one valid for more than seven days', () => {
    const now = Date.now();
    refused(() => verifyPeerDelegatedCredential(build(cert, dcRequest(cert.der, HOUR, { now })), cert.der, cert.publicKey, OFFER, now + 2 * HOUR), /expired/);
    refused(() => verifyPeerDelegatedCredential(build(cert, dcRequest(cert.der, 8 * 24 * HOUR, { now })), cert.der, cert.publicKey, OFFER, now), /seven days/);
  });

  it('refuses a bad signature, schemes we did not offer, and a credential we did not ask for', () => {
    const now = Date.now();
    const req = dcRequest(cert.der, HOUR, { now });
    refused(() => verifyPeerDelegatedCredential(build(cert, req, (s) => (s[s.length - 1] ^= 1)), cert.der, cert.publicKey, OFFER, now), /does not verify/);
    refused(() => verifyPeerDelegatedCredential(build(cert, req), cert.der, cert.publicKey, { ...OFFER, credentialSchemes: [0x0807] }, now), /dc_cert_verify_algorithm/);
    refused(() => verifyPeerDelegatedCredential(build(cert, req), cert.der, cert.publicKey, { ...OFFER, signatureAlgorithms: [0x0807] }, now), /signature_algorithms/);
    refused(() => verifyPeerDelegatedCredential(build(cert, req), cert.der, cert.publicKey, { ...OFFER, credentialSchemes: [] }, now), /not offered/);
    // A credential signed for the client side does not pass as a server's.
    const client = dcRequest(cert.der, HOUR, { now, side: 'client' });
    refused(() => verifyPeerDelegatedCredential(build(cert, client), cert.der, cert.publicKey, OFFER, now), /does not verify/);
  });

  it('refuses a certificate without DelegationUsage or digitalSignature', async () => {
    const now = Date.now();
    for (const [opts, reason] of [
      [{ delegation: 'none' }, /no DelegationUsage/],
      [{ delegation: 'critical' }, /critical/],
      [{ keyUsage: 'keyEncipherment' }, /digitalSignature/],
    ] as const) {
      const c = await delegationCert(opts);
      refused(() => verifyPeerDelegatedCredential(build(c, dcRequest(c.der, HOUR, { now })), c.der, c.publicKey, OFFER, now), reason);
    }
  });

  it('refuses a credential key that is not a SubjectPublicKeyInfo', () => {
    const now = Date.now();
    refused(() => verifyPeerDelegatedCredential(build(cert, dcRequest(cert.der, HOUR, { now, spki: Buffer.from('3003020100', 'hex') })), cert.der, cert.publicKey, OFFER, now), /SubjectPublicKeyInfo/);
  });
});
