/**
 * keyward's client engine against keyward's server engine, sans-IO, with client
 * authentication in TLS 1.3 and 1.2: the key operations and peer verifications both sides
 * ask for, and what the signing policy makes of the client's signature inputs (the TLS 1.2
 * client CertificateVerify only when a holder opts in), and what keyd's bound mode makes of
 * the handshake messages each side sends with its signature request.
 */
import assert from 'node:assert/strict';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { LocalKey } from '../../src/keys/localKey.js';
import { checkBoundSignInput, type BoundKey } from '../../src/keys/boundSignInput.js';
import { checkSignInput } from '../../src/keys/signingPolicy.js';
import { NamedGroup } from '../../src/tls/crypto/groups.js';
import { certifiedKey } from '../../src/tls/engine/certificates.js';
import { resolveClientConfig } from '../../src/tls/engine/clientConfig.js';
import { TlsClientConnection } from '../../src/tls/engine/clientConnection.js';
import { resolveServerConfig } from '../../src/tls/engine/config.js';
import type { TlsConnection } from '../../src/tls/engine/connection.js';
import type { EngineEvent, SignRequest } from '../../src/tls/engine/events.js';
import { TlsServerConnection } from '../../src/tls/engine/serverConnection.js';
import { getPki } from '../support/pki.js';

interface Seen {
  signs: SignRequest[];
  verified: string[];
  events: EngineEvent[];
}

/** Answers one side's events: key operations with local keys at once, peer chains accepted. */
async function answer(conn: TlsConnection, seen: Seen): Promise<void> {
  for (const e of conn.takeEvents()) {
    seen.events.push(e);
    if (e.type === 'verifyPeer') {
      seen.verified.push(`${e.request.peer}:${e.request.chain.length}`);
      conn.completePeerVerification(e.request.id, { ok: true });
    } else if (e.type === 'keyOperation' && e.request.kind === 'sign') {
      seen.signs.push(e.request);
      conn.completeKeyOperation(e.request.id, await e.request.key.sign(e.request.scheme, e.request.message, e.request.context, new AbortController().signal));
    }
  }
}

async function loop(
  version: 'TLSv1.3' | 'TLSv1.2',
  groups?: readonly NamedGroup[],
  serverGroups = groups,
): Promise<{ client: TlsClientConnection; server: TlsServerConnection; c: Seen; s: Seen }> {
  const pki = await getPki();
  const server = new TlsServerConnection(
    resolveServerConfig({
      certificates: [certifiedKey(pki.server['ecdsa-p256'].chainPem, new LocalKey(pki.server['ecdsa-p256'].keyPem))],
      clientAuth: { certificateAuthorities: [] },
      maxVersion: version,
      groups: serverGroups,
    }),
  );
  const client = new TlsClientConnection(resolveClientConfig({ serverName: 'localhost', groups, certificate: certifiedKey(pki.client.chainPem, new LocalKey(pki.client.keyPem)) }));
  const c: Seen = { signs: [], verified: [], events: [] };
  const s: Seen = { signs: [], verified: [], events: [] };
  for (let i = 0; i < 20 && !(client.isConnected && server.isConnected); i++) {
    for (const b of client.takeOutput()) server.receive(b);
    await answer(server, s);
    for (const b of server.takeOutput()) client.receive(b);
    await answer(client, c);
  }
  return { client, server, c, s };
}

describe('client engine against server engine, with client certificates', () => {
  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    it(`${version}: both authenticate, application data flows both ways`, async () => {
      const { client, server, c, s } = await loop(version);
      assert.ok(client.isConnected && server.isConnected, JSON.stringify([...c.events, ...s.events].map((e) => (e.type === 'error' ? e.error.message : e.type))));
      assert.deepEqual(c.verified, ['server:2']);
      assert.deepEqual(s.verified, ['client:2']);
      assert.equal(client.info.version, version);
      assert.equal(server.info.clientSignatureScheme, 0x0403);
      const purpose = version === 'TLSv1.3' ? 'tls13-client-certificate-verify' : 'tls12-client-certificate-verify';
      assert.deepEqual(c.signs.map((r) => r.context.purpose), [purpose]);
      client.write(Buffer.from('ping'));
      for (const b of client.takeOutput()) server.receive(b);
      const got = server.takeEvents().find((e) => e.type === 'data');
      assert.equal(got?.type === 'data' && Buffer.from(got.data).toString(), 'ping');
      assert.deepEqual(client.exportKeyingMaterial('EXPORTER-x', undefined, 16), server.exportKeyingMaterial('EXPORTER-x', undefined, 16));
    });
  }

  it('X25519MLKEM768 when both prefer it (TLS 1.3); TLS 1.2 falls back to an ECDHE curve', async () => {
    // P-256 too: in TLS 1.2 an ECDSA P-256 certificate needs it among the client's groups (RFC 8422).
    const groups = [NamedGroup.X25519MLKEM768, NamedGroup.x25519, NamedGroup.secp256r1];
    const t13 = await loop('TLSv1.3', groups);
    assert.ok(t13.client.isConnected && t13.server.isConnected);
    assert.equal(t13.client.info.group, NamedGroup.X25519MLKEM768);
    assert.equal(t13.server.info.group, NamedGroup.X25519MLKEM768);
    const t12 = await loop('TLSv1.2', groups);
    assert.ok(t12.client.isConnected && t12.server.isConnected);
    assert.equal(t12.server.info.group, NamedGroup.x25519);
  });

  it('the signing policy: TLS 1.3 client input accepted; the TLS 1.2 one only by a holder that opts in', async () => {
    const t13 = (await loop('TLSv1.3')).c.signs[0];
    assert.deepEqual(checkSignInput(t13.message, t13.scheme, t13.context.purpose), { ok: true, purpose: 'tls13-client-certificate-verify' });
    const t12 = (await loop('TLSv1.2')).c.signs[0];
    assert.equal(checkSignInput(t12.message, t12.scheme, t12.context.purpose).ok, false);
    assert.deepEqual(checkSignInput(t12.message, t12.scheme, t12.context.purpose, { tls12ClientCertificateVerify: true }), { ok: true, purpose: 'tls12-client-certificate-verify' });
    // Anything else stays refused: a truncated sequence, or other data.
    assert.equal(checkSignInput(t12.message.subarray(0, t12.message.length - 1), t12.scheme, undefined, { tls12ClientCertificateVerify: true }).ok, false);
    assert.equal(checkSignInput(Buffer.from('{"sub":"admin"}'), t12.scheme, undefined, { tls12ClientCertificateVerify: true }).ok, false);
  });
});

describe('bound mode: the handshake messages each side sends with its signature request', () => {
  const boundKey = (chainPem: string, servesName: (n: string) => boolean = () => false): BoundKey => ({
    spki: new X509Certificate(chainPem).publicKey.export({ type: 'spki', format: 'der' }),
    servesName,
  });
  const check = (r: SignRequest, key: BoundKey) => checkBoundSignInput(r.message, r.context.purpose!, r.context.handshakeMessages ?? [], key);
  const otherKey: BoundKey = { spki: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' }), servesName: () => true };

  const cases = [
    { name: 'TLS 1.3', version: 'TLSv1.3' as const, types: [1, 2, 8, 13, 25, 15, 20, 11] },
    // The client's share is for P-384, which the server does not take: it asks for x25519.
    { name: 'TLS 1.3 after a HelloRetryRequest', version: 'TLSv1.3' as const, types: [1, 2, 1, 2, 8, 13, 25, 15, 20, 11], groups: [NamedGroup.secp384r1, NamedGroup.x25519], serverGroups: [NamedGroup.x25519] },
    { name: 'TLS 1.2', version: 'TLSv1.2' as const, types: [1, 2, 11, 12, 13, 14, 11, 16] },
  ];
  for (const t of cases) {
    it(`${t.name}: the client's request passes for the client key only; the server's (with its CertificateRequest) for the server key`, async () => {
      const pki = await getPki();
      const { client, c, s } = await loop(t.version, t.groups, t.serverGroups);
      assert.ok(client.isConnected);
      const [req] = c.signs;
      assert.deepEqual(req.context.handshakeMessages?.map((m) => m[0]), t.types);
      // A client key serves no name; the server's name is reported for the audit.
      assert.deepEqual(check(req, boundKey(pki.client.chainPem)), { ok: true, serverName: 'localhost' });
      const refusal = check(req, otherKey);
      assert.ok(!refusal.ok && /client Certificate's leaf is not this key's certificate/.test(refusal.reason), JSON.stringify(refusal));
      const changed = Uint8Array.from(req.message);
      changed[changed.length - 1] ^= 1;
      assert.equal(check({ ...req, message: changed }, boundKey(pki.client.chainPem)).ok, false);
      const short = check({ ...req, context: { ...req.context, handshakeMessages: req.context.handshakeMessages!.slice(0, -1) } }, boundKey(pki.client.chainPem));
      assert.ok(!short.ok && /^expected /.test(short.reason), JSON.stringify(short));
      // The server signed with a CertificateRequest in its flight; TLS 1.3 binds it into the transcript.
      const serverKey = boundKey(pki.server['ecdsa-p256'].chainPem, (n) => n === 'localhost');
      assert.deepEqual(check(s.signs[0], serverKey), { ok: true, serverName: 'localhost' });
      if (t.version === 'TLSv1.3') assert.ok(s.signs[0].context.handshakeMessages?.some((m) => m[0] === 13));
    });
  }

  it('a server key is not a client key: its own messages, claimed as a client signature, are refused', async () => {
    const pki = await getPki();
    const { s } = await loop('TLSv1.3');
    const r = s.signs[0];
    const claimed = checkBoundSignInput(r.message, 'tls13-client-certificate-verify', r.context.handshakeMessages!, boundKey(pki.server['ecdsa-p256'].chainPem, () => true));
    assert.ok(!claimed.ok && /^expected /.test(claimed.reason));
  });
});
