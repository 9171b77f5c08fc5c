// Delegated credentials (RFC 9345) between keyward's client and server engines, sans-IO.
// Server: a client that offers the credential's scheme gets it on the end-entity entry and
// a CertificateVerify signed with its key, without a key-holder call; every other client
// (no offer, another scheme, TLS 1.2) gets the holder's signature; a credential is never
// served expired (the manager's clock, a renewal that fails past expiry, a source that
// hands one out anyway) nor when it was made for another certificate; each credential's
// Certificate message is made once. Client: it offers the extension only when asked and
// refuses, with the alert RFC 9345 names, crafted credentials that are expired, valid for
// more than seven days, not signed by the certificate's key, or for a certificate without
// DelegationUsage, a credential it did not ask for, and a CertificateVerify that is not the
// credential's.
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { DelegatedCredentialManager, type CurrentDelegatedCredential } from '../../src/keys/delegatedCredentials.js';
import { LocalKey } from '../../src/keys/localKey.js';
import { certifiedKey, type CertifiedKey, type DelegatedCredentialSource } from '../../src/tls/engine/certificates.js';
import { resolveClientConfig, type ClientConfigInput } from '../../src/tls/engine/clientConfig.js';
import { resolveServerConfig, type ServerConfigInput } from '../../src/tls/engine/config.js';
import { serverCertificate13 } from '../../src/tls/engine/serverCertificate13.js';
import { AlertDescription } from '../../src/tls/wire/alerts.js';
import type { ClientHello } from '../../src/tls/wire/clientHello.js';
import { delegatedCredentialExt } from '../../src/tls/wire/delegatedCredential.js';
import { delegatedCredentialSchemesExt } from '../../src/tls/wire/extensionCodecs.js';
import { FakeClock, TestIssuer } from '../support/dcClock.js';
import { dcRequest, delegationCert, notBeforeOf, signedContentByHand, type DelegationCert } from '../support/delegationPki.js';
import { handshakePair, type Pair } from '../support/enginePair.js';

const ECDSA_P256 = 0x0403;
const ED25519 = 0x0807;
const HOUR = 3600_000;
const DAY = 24 * HOUR;

let cert: DelegationCert;
let plainCert: DelegationCert;
let clock: FakeClock;
let issuer: TestIssuer;
let manager: DelegatedCredentialManager;

before(async () => {
  [cert, plainCert] = await Promise.all([delegationCert(), delegationCert({ delegation: 'none' })]);
  clock = new FakeClock(Date.now());
  issuer = new TestIssuer(cert, clock);
  manager = new DelegatedCredentialManager({ issuer, certificate: cert.der, now: clock.now, timers: clock, random: () => 0.5 });
  assert.equal(await manager.start(), true);
});

after(() => manager.stop());

/** The certificate with its key as the holder, and `dcs` as its delegated credentials. */
function served(dcs: DelegatedCredentialSource | undefined, c: DelegationCert = cert): CertifiedKey {
  return certifiedKey(c.pem, new LocalKey(c.privateKey), dcs ? { delegatedCredentials: dcs } : {});
}

async function pair(key: CertifiedKey, client: ClientConfigInput = { delegatedCredentials: true }, server: Partial<ServerConfigInput> = {}, clocks: { server?: () => number; client?: () => number } = {}): Promise<Pair> {
  return handshakePair(resolveServerConfig({ certificates: [key], ...server }), resolveClientConfig({ serverName: 'localhost', ...client }), {
    server: clocks.server ?? clock.now,
    client: clocks.client ?? clock.now,
  });
}

function assertConnected(p: Pair): void {
  assert.ok(p.client.isConnected && p.server.isConnected, `server: ${p.s.error?.message ?? '-'}; client: ${p.c.error?.message ?? '-'}`);
}

/** The handshake used the credential: no key-holder call, both sides say so. */
function assertDelegated(p: Pair): void {
  assertConnected(p);
  assert.deepEqual(p.s.signs, [], 'no key-holder signature');
  assert.equal(p.server.info.delegatedCredential, true);
  assert.equal(p.client.info.delegatedCredential, true, "the client verified CertificateVerify with the credential's key");
  assert.equal(p.client.info.signatureScheme, ECDSA_P256);
}

/** The handshake fell back to the key holder's signature. */
function assertFallback(p: Pair): void {
  assertConnected(p);
  assert.equal(p.s.signs.length, 1, 'the key holder signed');
  assert.equal(p.server.info.delegatedCredential, undefined);
  assert.equal(p.client.info.delegatedCredential, undefined);
}

/** A credential for `c` made here, byte by byte, with what a test needs wrong in it. */
function crafted(c: DelegationCert, o: { validForMs?: number; now?: number; signedBy?: KeyObject; cvScheme?: number; cvKey?: KeyObject } = {}): CurrentDelegatedCredential {
  const dcKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const req = dcRequest(c.der, o.validForMs ?? HOUR, { now: o.now ?? clock.t, spki: dcKeys.publicKey.export({ type: 'spki', format: 'der' }) });
  const signature = sign('sha256', signedContentByHand(req), { key: o.signedBy ?? c.privateKey, dsaEncoding: 'der' });
  const credential = { cred: req.credential, algorithm: req.algorithm, signature };
  const cvKey = new LocalKey(o.cvKey ?? dcKeys.privateKey);
  const scheme = o.cvScheme ?? ECDSA_P256;
  return {
    dcBytes: delegatedCredentialExt.encode(credential).data,
    credential,
    scheme,
    algorithm: ECDSA_P256,
    expiresAt: notBeforeOf(c.der) + req.credential.validTime * 1000,
    dcKeyId: 'crafted',
    key: cvKey,
    sign: (m) => cvKey.signBlocking(scheme, m),
    usableFor: (offered, algs) => offered?.includes(ECDSA_P256) === true && (algs === undefined || algs.includes(ECDSA_P256)),
  };
}

/** A source that hands out `dc` whatever the time. */
const always = (dc: CurrentDelegatedCredential): DelegatedCredentialSource => ({ current: () => dc });

/** The client refused with `alert`, which the server received. */
function assertRefused(p: Pair, alert: AlertDescription, reason: RegExp): void {
  assert.equal(p.client.isConnected, false);
  assert.equal(p.c.error?.alertSent, alert, p.c.error?.message);
  assert.match(p.c.error!.message, reason);
  assert.equal(p.s.error?.alertReceived, alert);
}

describe('the server serves a delegated credential', () => {
  it('to a client that offers its scheme: the credential signs CertificateVerify, no key-holder call (compressed or not)', async () => {
    assertDelegated(await pair(served(manager)));
    const uncompressed = await pair(served(manager), { delegatedCredentials: [ECDSA_P256], certificateCompression: [] });
    assertDelegated(uncompressed);
    assert.equal(uncompressed.client.info.certificateCompression, undefined);
  });

  it('to nobody else: no offer, another scheme, TLS 1.2, and a server without credentials all get the holder', async () => {
    assertFallback(await pair(served(manager), {}));
    assertFallback(await pair(served(manager), { delegatedCredentials: [ED25519] }));
    const tls12 = await pair(served(manager), { delegatedCredentials: true }, { maxVersion: 'TLSv1.2' });
    assertFallback(tls12);
    assert.equal(tls12.s.signs[0].context.purpose, 'tls12-server-key-exchange');
    assertFallback(await pair(served(undefined)));
  });

  it('one Certificate message per credential and compression, not per handshake', () => {
    const key = served(manager);
    const hello = { delegatedCredentialSchemes: [ECDSA_P256], signatureAlgorithms: [ECDSA_P256], compressCertificate: [2] } as unknown as ClientHello;
    const first = serverCertificate13(key, hello, [2], clock.t);
    assert.equal(first.delegatedCredential, manager.current());
    assert.equal(first.compression, 2);
    assert.equal(serverCertificate13(key, hello, [2], clock.t).message, first.message, 'the same bytes object: nothing encoded or compressed again');
    const plain = serverCertificate13(key, { ...hello, compressCertificate: undefined } as ClientHello, [2], clock.t);
    assert.equal(serverCertificate13(key, { ...hello, compressCertificate: undefined } as ClientHello, [2], clock.t).message, plain.message);
    const other = crafted(cert);
    assert.notEqual(serverCertificate13(served(always(other)), hello, [2], clock.t).message, first.message, 'another credential, another message');
  });

  it('never past its expiry: a renewal that keeps failing serves the old one until the manager drops it, then falls back', async () => {
    const c = new FakeClock(clock.t);
    const failing = new TestIssuer(cert, c);
    const m = new DelegatedCredentialManager({ issuer: failing, certificate: cert.der, now: c.now, timers: c, random: () => 0.5 });
    try {
      await m.start();
      const first = m.current()!;
      failing.failing = true;
      // Past the renewal time (half the hour, jittered): renewals fail, the credential is still served.
      await c.advance(40 * 60_000, m);
      assert.ok(failing.calls > 1, 'renewals were attempted');
      assert.equal(m.current(), first);
      assertDelegated(await pair(served(m), undefined, {}, { server: c.now, client: c.now }));
      // A minute before expiry the manager stops handing it out: the handshakes fall back.
      await c.advance(first.expiresAt - 60_000 - c.t, m);
      assert.equal(m.current(), undefined);
      assertFallback(await pair(served(m), undefined, {}, { server: c.now, client: c.now }));
    } finally {
      m.stop();
    }
  });

  it('never one a source hands out expired, nor one made for another certificate of the same key', async () => {
    const expired = crafted(cert, { now: clock.t - 2 * HOUR });
    assert.ok(expired.expiresAt < clock.t);
    assertFallback(await pair(served(always(expired))));
    // The same key in another certificate: the credential signs that certificate, not this one.
    const sameKey = await delegationCert({ keys: cert.keys });
    assertFallback(await pair(served(always(crafted(sameKey)))));
  });
});

describe('the client checks a delegated credential (RFC 9345 4.1.3)', () => {
  it('offers the extension only when asked, with the schemes asked for', () => {
    assert.deepEqual(resolveClientConfig({}).delegatedCredentials, []);
    const all = resolveClientConfig({ delegatedCredentials: true }).delegatedCredentials;
    assert.ok(all.includes(ECDSA_P256) && all.includes(ED25519) && all.every((s) => s >> 8 === 0x04 || s >> 8 === 0x05 || s >> 8 === 0x06 || s === ED25519), String(all));
    assert.deepEqual(resolveClientConfig({ delegatedCredentials: [ED25519] }).delegatedCredentials, [ED25519]);
    assert.throws(() => resolveClientConfig({ delegatedCredentials: [] }), /an empty scheme list/);
    assert.throws(() => resolveClientConfig({ delegatedCredentials: [0x0201] }), /0x201 is not a TLS 1.3 signature scheme/);
  });

  it('accepts a good crafted credential', async () => {
    assertDelegated(await pair(served(always(crafted(cert)))));
  });

  it('refuses an expired credential (the client clock is past it) with illegal_parameter', async () => {
    const dc = crafted(cert);
    assertRefused(await pair(served(always(dc)), undefined, {}, { client: () => dc.expiresAt + 1 }), AlertDescription.illegal_parameter, /delegated credential: expired/);
  });

  it('refuses one valid for more than seven days', async () => {
    assertRefused(await pair(served(always(crafted(cert, { validForMs: 8 * DAY })))), AlertDescription.illegal_parameter, /valid for more than seven days/);
  });

  it("refuses one the certificate's key did not sign", async () => {
    // Another key signed it; the server is told that key is the certificate's, so only the client's check stands.
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const key = { ...served(always(crafted(cert, { signedBy: other.privateKey }))), publicKey: other.publicKey };
    assertRefused(await pair(key), AlertDescription.illegal_parameter, /the certificate key's signature does not verify/);
  });

  it('refuses one for a certificate without DelegationUsage', async () => {
    assertRefused(await pair(served(always(crafted(plainCert)), plainCert)), AlertDescription.illegal_parameter, /DelegationUsage/);
  });

  it('refuses a credential it did not ask for with unexpected_message (RFC 9345 4.1.1)', async () => {
    // The extension goes out behind the configuration's back, so the server serves a credential.
    const p = await pair(served(manager), { helloExtensions: (exts) => [...exts, delegatedCredentialSchemesExt.encode([ECDSA_P256])] });
    assertRefused(p, AlertDescription.unexpected_message, /delegated credential, which was not offered/);
  });

  it("refuses a CertificateVerify in another scheme than the credential's, or not by its key", async () => {
    const ed = generateKeyPairSync('ed25519');
    assertRefused(await pair(served(always(crafted(cert, { cvScheme: ED25519, cvKey: ed.privateKey })))), AlertDescription.illegal_parameter, /scheme other than its delegated credential's/);
    const wrong = crafted(cert, { cvKey: cert.privateKey });
    assertRefused(await pair(served(always(wrong))), AlertDescription.decrypt_error, /does not verify against its delegated credential/);
  });
});
