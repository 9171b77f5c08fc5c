/**
 * TLS 1.3 resumption between keyward's own client and server engines, sans-IO: tickets
 * after the handshake, a resumed handshake without certificate or key operation, and
 * every reason a ticket is not taken (a full handshake follows) or a hello is refused.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';
import { LocalKey } from '../../src/keys/localKey.js';
import { CipherSuite } from '../../src/tls/crypto/cipherSuites.js';
import { NamedGroup } from '../../src/tls/crypto/groups.js';
import { cryptoParams, schemeInfo } from '../../src/tls/crypto/signatureSchemes.js';
import { certifiedKey } from '../../src/tls/engine/certificates.js';
import { resolveClientConfig, type ClientConfigInput } from '../../src/tls/engine/clientConfig.js';
import { TlsClientConnection } from '../../src/tls/engine/clientConnection.js';
import { resolveServerConfig, type ServerConfigInput } from '../../src/tls/engine/config.js';
import type { TlsConnection } from '../../src/tls/engine/connection.js';
import type { EngineEvent } from '../../src/tls/engine/events.js';
import { TlsServerConnection } from '../../src/tls/engine/serverConnection.js';
import type { ClientSession } from '../../src/tls/resumption/clientSession.js';
import { TicketKeyRing } from '../../src/tls/resumption/ticketKeys.js';
import { alertName } from '../../src/tls/wire/alerts.js';
import { ContentType, ExtensionType, HandshakeType } from '../../src/tls/wire/constants.js';
import { encodeNewSessionTicket13 } from '../../src/tls/wire/messages13.js';
import { pskKeyExchangeModesExt } from '../../src/tls/wire/extensionCodecs.js';
import { parseServerHello } from '../../src/tls/wire/serverHello.js';
import { getPki, type PkiFixtures } from '../support/pki.js';

const NOW = 1_800_000_000_000;

interface Side {
  conn: TlsConnection;
  events: EngineEvent[];
  keyOperations: number;
}

/** Signs a key operation the way a key holder would, with the private key the test holds. */
function answer(side: Side, key: KeyObject): void {
  for (;;) {
    const ev = side.conn.takeEvents();
    if (ev.length === 0) return;
    side.events.push(...ev);
    for (const e of ev) {
      if (e.type === 'verifyPeer') side.conn.completePeerVerification(e.request.id, { ok: true });
      if (e.type !== 'keyOperation' || e.request.kind !== 'sign') continue;
      side.keyOperations++;
      const p = cryptoParams(schemeInfo(e.request.scheme)!, key);
      side.conn.completeKeyOperation(e.request.id, cryptoSign(p.algorithm, e.request.message, p.key));
    }
  }
}

/** The server's records on their way to the client; a test may rewrite them. */
type Tamper = (fromServer: Buffer) => Buffer;

/** Runs both engines against each other until neither has anything to say. */
function run(client: Side, server: Side, keys: { client: KeyObject; server: KeyObject }, tamper?: Tamper): void {
  for (let i = 0; i < 50; i++) {
    answer(client, keys.client);
    answer(server, keys.server);
    const toServer = Buffer.concat(client.conn.takeOutput());
    let toClient: Buffer = Buffer.concat(server.conn.takeOutput());
    if (toServer.length === 0 && toClient.length === 0) return;
    if (tamper && toClient.length > 0) toClient = tamper(toClient);
    if (toServer.length > 0) server.conn.receive(toServer);
    if (toClient.length > 0) client.conn.receive(toClient);
  }
  assert.fail('the engines did not settle');
}

interface World {
  pki: PkiFixtures;
  serverKey: KeyObject;
  clientKey: KeyObject;
  ring: TicketKeyRing;
}

async function world(): Promise<World> {
  const pki = await getPki();
  return {
    pki,
    serverKey: createPrivateKey(pki.server['ecdsa-p256'].keyPem),
    clientKey: createPrivateKey(pki.client.keyPem),
    ring: new TicketKeyRing({ now: () => NOW }),
  };
}

interface Connect {
  server?: Partial<ServerConfigInput>;
  client?: ClientConfigInput;
  serverNow?: number;
  clientNow?: number;
  tamper?: Tamper;
}

function connect(w: World, o: Connect = {}) {
  const server: Side = {
    conn: new TlsServerConnection(
      resolveServerConfig({
        certificates: [certifiedKey(w.pki.server['ecdsa-p256'].chainPem, new LocalKey(w.serverKey))],
        ticketKeys: w.ring,
        alpnProtocols: ['h2', 'http/1.1'],
        ...o.server,
      }),
      { now: () => o.serverNow ?? NOW + 1000 },
    ),
    events: [],
    keyOperations: 0,
  };
  const client: Side = {
    conn: new TlsClientConnection(resolveClientConfig({ serverName: 'localhost', alpnProtocols: ['http/1.1'], ...o.client }), { now: () => o.clientNow ?? NOW + 1000 }),
    events: [],
    keyOperations: 0,
  };
  run(client, server, { client: w.clientKey, server: w.serverKey }, o.tamper);
  const sessions = client.events.flatMap((e) => (e.type === 'session' ? [e.session] : []));
  const error = (s: Side) => s.events.find((e): e is Extract<EngineEvent, { type: 'error' }> => e.type === 'error');
  return { client, server, sessions, clientError: error(client), serverError: error(server) };
}

/** A full handshake's first session. */
function firstSession(w: World, o: Connect = {}): ClientSession {
  const r = connect(w, o);
  assert.equal(r.clientError, undefined, r.clientError?.error.message);
  assert.equal(r.sessions.length, 2, 'two NewSessionTickets by default');
  return r.sessions[0];
}

function assertResumed(r: ReturnType<typeof connect>, resumed: boolean): void {
  for (const [name, side] of [['client', r.client], ['server', r.server]] as const) {
    const err = side.events.find((e) => e.type === 'error');
    assert.equal(err, undefined, `${name}: ${err && err.type === 'error' ? err.error.message : ''}`);
    assert.equal(side.conn.isConnected, true, `${name} connected`);
    assert.equal(side.conn.info.resumed === true, resumed, `${name} resumed`);
  }
}

const alert = (e: Extract<EngineEvent, { type: 'error' }> | undefined) => (e?.alertSent === undefined ? 'none' : alertName(e.alertSent));

describe('TLS 1.3 resumption, keyward client and server engines', () => {
  it('a full handshake sends two tickets; the resumed one needs no certificate and no key operation', async () => {
    const w = await world();
    const full = connect(w);
    assertResumed(full, false);
    assert.equal(full.server.keyOperations, 1);
    const s = full.sessions[0];
    assert.equal(s.version, 'TLSv1.3');
    assert.equal(s.serverName, 'localhost');
    assert.equal(s.alpnProtocol, 'http/1.1');
    assert.equal(s.lifetime, w.ring.ticketLifetime);
    assert.equal(s.maxEarlyData, 0, 'tickets advertise no early data');
    assert.equal(s.peerCertificates.length, full.client.conn.info.peerCertificates!.length);
    assert.notDeepEqual(Buffer.from(full.sessions[0].secret), Buffer.from(full.sessions[1].secret), 'each ticket has its own PSK');

    const again = connect(w, { client: { session: s }, clientNow: NOW + 5000, serverNow: NOW + 5000 });
    assertResumed(again, true);
    assert.equal(again.server.keyOperations, 0, 'no key-holder call');
    assert.equal(again.client.events.some((e) => e.type === 'verifyPeer'), false, 'no certificate to judge');
    assert.equal(again.client.conn.info.signatureScheme, undefined);
    assert.equal(again.server.conn.info.group, full.server.conn.info.group, 'psk_dhe_ke: a fresh key exchange');
    assert.equal(again.server.conn.info.alpnProtocol, 'http/1.1');
    assert.deepEqual(again.client.conn.info.peerCertificates, s.peerCertificates, "the session's chain stands for the server's");
    assert.equal(again.sessions.length, 1, 'a resumed handshake sends one new ticket, for the one it spent');

    // Data flows both ways under the resumed keys.
    again.client.conn.write(Buffer.from('ping'));
    again.server.conn.receive(Buffer.concat(again.client.conn.takeOutput()));
    const data = again.server.conn.takeEvents().find((e) => e.type === 'data');
    assert.equal(data && data.type === 'data' ? Buffer.from(data.data).toString() : '', 'ping');
  });

  it('a ticket that does not open or does not fit is ignored: a full handshake follows', async () => {
    const w = await world();
    const s = firstSession(w);
    const tampered = Uint8Array.from(s.ticket);
    tampered[tampered.length - 1] ^= 1;
    const cases: [string, Connect][] = [
      ['tampered ticket', { client: { session: { ...s, ticket: tampered } } }],
      ['rotated-out key (a new ring)', { server: { ticketKeys: new TicketKeyRing({ now: () => NOW }) } }],
      ['lifetime over', { serverNow: NOW + (w.ring.ticketLifetime + 60) * 1000 }],
      ['obfuscated age far from the server clock', { clientNow: NOW + 1000, serverNow: NOW + 60_000 }],
      ['another SNI', { client: { serverName: 'other.example', session: { ...s, serverName: 'other.example' } } }],
      ['a suite of another hash', { server: { tls13CipherSuites: [CipherSuite.TLS_AES_256_GCM_SHA384, CipherSuite.TLS_AES_128_GCM_SHA256] } }],
      ['no client certificate while the server asks for one', { server: { clientAuth: { certificateAuthorities: [] } } }],
    ];
    for (const [name, o] of cases) {
      const r = connect(w, { ...o, client: { session: s, ...o.client } });
      assertResumed(r, false);
      assert.equal(r.server.keyOperations, 1, `${name}: a certificate handshake`);
    }
  });

  it('a wrong binder is decrypt_error', async () => {
    const w = await world();
    const s = firstSession(w);
    const wrong = Uint8Array.from(s.secret);
    wrong[0] ^= 1;
    const r = connect(w, { client: { session: { ...s, secret: wrong } } });
    assert.equal(alert(r.serverError), 'decrypt_error');
    assert.match(r.serverError!.error.message, /binder/);
    assert.equal(r.server.keyOperations, 0);
  });

  it('resumes after a HelloRetryRequest, with the binder recomputed over the retry', async () => {
    const w = await world();
    const s = firstSession(w);
    const r = connect(w, { server: { groups: [NamedGroup.secp256r1] }, client: { session: s, groups: [NamedGroup.x25519, NamedGroup.secp256r1] } });
    assertResumed(r, true);
    assert.equal(r.server.conn.info.helloRetry, true);
    assert.equal(r.server.conn.info.group, NamedGroup.secp256r1);
  });

  it('mutual TLS: the ticket keeps the client chain; resuming asks for no certificate', async () => {
    const w = await world();
    const mtls = { server: { clientAuth: { certificateAuthorities: [] } }, client: { certificate: certifiedKey(w.pki.client.chainPem, new LocalKey(w.clientKey)) } };
    const full = connect(w, mtls);
    assertResumed(full, false);
    assert.equal(full.client.keyOperations, 1);
    const r = connect(w, { ...mtls, client: { ...mtls.client, session: full.sessions[0] } });
    assertResumed(r, true);
    assert.equal(r.client.keyOperations + r.server.keyOperations, 0);
    assert.deepEqual(r.server.conn.info.peerCertificates, full.server.conn.info.peerCertificates);
  });

  it('new tickets from a resumed session keep when it was authenticated: none past seven days', async () => {
    const w = await world();
    const ring = new TicketKeyRing({ now: () => NOW, ticketLifetime: 604_800, rotateEvery: 30 * 86_400_000 });
    const s = firstSession({ ...w, ring });
    const day = 86_400_000;
    const sixDays = connect({ ...w, ring }, { client: { session: s }, clientNow: NOW + 6 * day, serverNow: NOW + 6 * day });
    assertResumed(sixDays, true);
    const next = sixDays.sessions[0];
    assert.ok(next.lifetime <= 86_401 && next.lifetime > 86_000, `lifetime ${next.lifetime} s: what is left of the seven days`);
    const eightDays = connect({ ...w, ring }, { client: { session: { ...next, lifetime: 604_800 } }, clientNow: NOW + 8 * day, serverNow: NOW + 8 * day });
    assertResumed(eightDays, false);
  });

  it('psk_ke: refused by default (a full handshake), taken with allowPskOnlyKeyExchange (no key share)', async () => {
    const w = await world();
    const s = firstSession(w);
    // The hello offers psk_ke only (the binder is computed after this rewrite).
    const pskKeOnly = (built: { type: number; data: Uint8Array }[]) =>
      built.map((e) => (e.type === ExtensionType.psk_key_exchange_modes ? pskKeyExchangeModesExt.encode(Uint8Array.of(0)) : e));
    const refused = connect(w, { client: { session: s, helloExtensions: pskKeOnly } });
    assertResumed(refused, false);

    let serverHello: ReturnType<typeof parseServerHello> | undefined;
    const taken = connect(w, {
      server: { allowPskOnlyKeyExchange: true },
      client: { session: s, helloExtensions: pskKeOnly },
      tamper: (b) => {
        if (!serverHello && b[0] === 22 && b[5] === HandshakeType.server_hello) serverHello = parseServerHello(b.subarray(9, 9 + b.readUIntBE(6, 3)));
        return b;
      },
    });
    assert.equal(taken.server.conn.info.resumed, true);
    assert.equal(taken.server.conn.info.group, undefined);
    assert.equal(serverHello?.selectedIdentity, 0);
    assert.equal(serverHello?.keyShare, undefined, 'psk_ke: no key share');
    // keyward's own client offers psk_dhe_ke only, so it refuses the answer it did not ask for.
    assert.equal(alert(taken.clientError), 'missing_extension');
  });

  it('the client takes tickets at any time after the handshake, up to the protocol bound (a 65,535-byte ticket)', async () => {
    const w = await world();
    const r = connect(w, { server: { ticketCount: 0 } });
    assert.equal(r.sessions.length, 0);
    const send = (nst: Uint8Array) => {
      const out: Uint8Array[] = [];
      r.server.conn.record.write(ContentType.handshake, nst, out);
      r.client.conn.receive(Buffer.concat(out));
      return r.client.conn.takeEvents();
    };
    const big = send(encodeNewSessionTicket13({ lifetime: 600, ageAdd: 7, nonce: Uint8Array.of(9), ticket: Buffer.alloc(65_535, 1), extensions: [] }));
    const session = big.find((e) => e.type === 'session');
    assert.equal(session && session.type === 'session' ? session.session.ticket.length : 0, 65_535);
    // Lifetime 0 means discard at once (RFC 8446 4.6.1): no session, and no error either.
    assert.deepEqual(send(encodeNewSessionTicket13({ lifetime: 0, ageAdd: 7, nonce: Uint8Array.of(10), ticket: Buffer.alloc(10, 1), extensions: [] })), []);
    assert.equal(r.client.conn.isConnected, true);
  });

  it('a selected_identity out of range is illegal_parameter at the client', async () => {
    const w = await world();
    const s = firstSession(w);
    const r = connect(w, {
      client: { session: s },
      tamper: (b) => {
        // ServerHello's pre_shared_key: 00 29 00 02 00 00 -> selected_identity 1.
        const at = b.indexOf(Buffer.from('002900020000', 'hex'));
        if (at >= 0 && b[0] === 22) b[at + 5] = 1;
        return b;
      },
    });
    assert.equal(alert(r.clientError), 'illegal_parameter');
    assert.match(r.clientError!.error.message, /selected PSK identity 1/);
  });

  it('the client offers a session only to its own server name, within its lifetime', async () => {
    const w = await world();
    const s = firstSession(w);
    let offered = 0;
    const count = (built: { type: number; data: Uint8Array }[]) => {
      if (built.some((e) => e.type === ExtensionType.pre_shared_key)) offered++;
      return built;
    };
    connect(w, { client: { session: s, serverName: 'other.example', helloExtensions: count } });
    connect(w, { client: { session: s, helloExtensions: count }, clientNow: NOW + (s.lifetime + 1) * 1000 });
    assert.equal(offered, 0);
    connect(w, { client: { session: s, helloExtensions: count } });
    assert.equal(offered, 1);
  });

  it('ticketCount: 0 sends none; more than 16 is refused', async () => {
    const w = await world();
    const certificates = [certifiedKey(w.pki.server['ecdsa-p256'].chainPem, new LocalKey(w.serverKey))];
    assert.throws(() => resolveServerConfig({ certificates, ticketCount: 17 }), /ticketCount must be an integer from 0 to 16/);
    const r = connect(w, { server: { ticketCount: 0 } });
    assertResumed(r, false);
    assert.equal(r.sessions.length, 0);
  });
});
