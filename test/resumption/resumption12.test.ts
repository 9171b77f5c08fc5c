// TLS 1.2 resumption, sans-IO: keyward's client engine against keyward's server engine
// under an injected clock, by RFC 5077 ticket and by session id; what makes the server
// fall back to a full handshake (a tampered, expired or retired ticket, another SNI or
// suite, a session without the extended master secret), what makes it abort (RFC 7627
// 5.3), what the client refuses from a server, and that a resumed handshake asks no key
// holder for anything.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LocalKey } from '../../src/keys/localKey.js';
import { CipherSuite } from '../../src/tls/crypto/cipherSuites.js';
import { certifiedKey } from '../../src/tls/engine/certificates.js';
import { resolveClientConfig, type ClientConfigInput } from '../../src/tls/engine/clientConfig.js';
import { TlsClientConnection } from '../../src/tls/engine/clientConnection.js';
import { resolveServerConfig, type ServerConfig, type ServerConfigInput } from '../../src/tls/engine/config.js';
import type { TlsConnection } from '../../src/tls/engine/connection.js';
import type { EngineEvent } from '../../src/tls/engine/events.js';
import { TlsServerConnection } from '../../src/tls/engine/serverConnection.js';
import type { ClientSession } from '../../src/tls/resumption/clientSession.js';
import { SessionCache12 } from '../../src/tls/resumption/sessionCache12.js';
import { encodeSessionState } from '../../src/tls/resumption/sessionState.js';
import { TicketKeyRing } from '../../src/tls/resumption/ticketKeys.js';
import { AlertDescription as A } from '../../src/tls/wire/alerts.js';
import { ExtensionType, HandshakeType } from '../../src/tls/wire/constants.js';
import { encodeServerHello, parseServerHello } from '../../src/tls/wire/serverHello.js';
import { getPki, type PkiFixtures } from '../support/pki.js';

const T0 = 1_800_000_000_000;
const HOUR = 3_600_000;

/** A clock the test moves. */
class Clock {
  t = T0;
  readonly now = () => this.t;
}

interface Side {
  events: EngineEvent[];
  /** Key operations asked for, by kind. */
  keyOps: string[];
  verified: number;
}

interface Run {
  client: TlsClientConnection;
  server: TlsServerConnection;
  c: Side;
  s: Side;
  /** Session events the client emitted. */
  sessions: ClientSession[];
}

async function answer(conn: TlsConnection, side: Side): Promise<void> {
  for (const e of conn.takeEvents()) {
    side.events.push(e);
    if (e.type === 'verifyPeer') {
      side.verified++;
      conn.completePeerVerification(e.request.id, { ok: true });
    } else if (e.type === 'keyOperation') {
      side.keyOps.push(e.request.kind);
      const signal = new AbortController().signal;
      if (e.request.kind === 'sign') conn.completeKeyOperation(e.request.id, await e.request.key.sign(e.request.scheme, e.request.message, e.request.context, signal));
      else if (e.request.kind === 'pskMasterSecret') conn.completeKeyOperation(e.request.id, await e.request.holder.tls12MasterSecret(e.request.request, e.request.context, signal));
      else throw new Error(`unexpected ${e.request.kind}`);
    }
  }
}

/** Bytes from one side to the other, optionally rewritten on the way. */
type Tamper = (from: 'client' | 'server', bytes: Buffer) => Buffer;

/** Runs both engines until both are connected or one failed. */
async function run(serverConfig: ServerConfig, clientInput: ClientConfigInput, clock: Clock, tamper?: Tamper): Promise<Run> {
  const server = new TlsServerConnection(serverConfig, { now: clock.now });
  const client = new TlsClientConnection(resolveClientConfig({ serverName: 'localhost', maxVersion: 'TLSv1.2', ...clientInput }), { now: clock.now });
  const c: Side = { events: [], keyOps: [], verified: 0 };
  const s: Side = { events: [], keyOps: [], verified: 0 };
  for (let i = 0; i < 20 && !(client.isConnected && server.isConnected) && !client.isClosed && !server.isClosed; i++) {
    const toServer = Buffer.concat(client.takeOutput());
    if (toServer.length > 0) server.receive(tamper ? tamper('client', toServer) : toServer);
    await answer(server, s);
    const toClient = Buffer.concat(server.takeOutput());
    if (toClient.length > 0) client.receive(tamper ? tamper('server', toClient) : toClient);
    await answer(client, c);
  }
  // The client's last flight of a resumed handshake (its Finished) reaches the server here.
  const rest = Buffer.concat(client.takeOutput());
  if (rest.length > 0) server.receive(rest);
  await answer(server, s);
  await answer(client, c);
  const sessions = c.events.flatMap((e) => (e.type === 'session' ? [e.session] : []));
  return { client, server, c, s, sessions };
}

function errorOf(side: Side): Extract<EngineEvent, { type: 'error' }> | undefined {
  return side.events.find((e): e is Extract<EngineEvent, { type: 'error' }> => e.type === 'error');
}

function assertConnected(r: Run): void {
  const why = JSON.stringify({ client: errorOf(r.c)?.error.message, server: errorOf(r.s)?.error.message });
  assert.ok(r.client.isConnected && r.server.isConnected, why);
  assert.equal(r.client.info.version, 'TLSv1.2');
  // Data both ways and the same exporter: the keys agree.
  r.client.write(Buffer.from('ping'));
  for (const b of r.client.takeOutput()) r.server.receive(b);
  const got = r.server.takeEvents().find((e) => e.type === 'data');
  assert.equal(got?.type === 'data' && Buffer.from(got.data).toString(), 'ping');
  assert.deepEqual(r.client.exportKeyingMaterial('EXPORTER-test', undefined, 16), r.server.exportKeyingMaterial('EXPORTER-test', undefined, 16));
}

function assertResumed(r: Run): void {
  assertConnected(r);
  assert.equal(r.server.info.resumed, true);
  assert.equal(r.client.info.resumed, true);
  assert.deepEqual(r.s.keyOps, [], 'no key-holder call on the server');
  assert.deepEqual(r.c.keyOps, [], 'no key-holder call on the client');
  assert.equal(r.c.verified + r.s.verified, 0, 'no certificate to judge');
}

function assertFull(r: Run): void {
  assertConnected(r);
  assert.notEqual(r.server.info.resumed, true);
  assert.notEqual(r.client.info.resumed, true);
  assert.deepEqual(r.s.keyOps, ['sign'], 'the full handshake signs its ServerKeyExchange');
}

interface Setup {
  pki: PkiFixtures;
  clock: Clock;
  ring: TicketKeyRing;
  cache: SessionCache12;
  config: (over?: Partial<ServerConfigInput>) => ServerConfig;
}

async function setup(): Promise<Setup> {
  const pki = await getPki();
  const clock = new Clock();
  const ring = new TicketKeyRing({ now: clock.now, rotateEvery: HOUR, ticketLifetime: 7200 });
  const cache = new SessionCache12({ now: clock.now });
  const cert = certifiedKey(pki.server['ecdsa-p256'].chainPem, new LocalKey(pki.server['ecdsa-p256'].keyPem));
  const config = (over: Partial<ServerConfigInput> = {}) => resolveServerConfig({ certificates: [cert], ticketKeys: ring, sessionCache12: cache, ...over });
  return { pki, clock, ring, cache, config };
}

/** A full handshake that leaves a session (id and ticket) with the client. */
async function firstSession(st: Setup, server = st.config(), clientInput: ClientConfigInput = {}): Promise<ClientSession> {
  const r = await run(server, clientInput, st.clock);
  assertFull(r);
  assert.equal(r.sessions.length, 1, 'one session event after the full handshake');
  return r.sessions[0];
}

describe('TLS 1.2 resumption between keyward engines', () => {
  it('a full handshake leaves a session id (cached) and a ticket; the session event carries both', async () => {
    const st = await setup();
    const s = await firstSession(st);
    assert.equal(s.version, 'TLSv1.2');
    assert.equal(s.sessionId.length, 32);
    assert.ok(s.ticket.length > 0);
    assert.equal(s.lifetime, 7200, 'lifetime hint = the ring ticket lifetime');
    assert.equal(s.extendedMasterSecret, true);
    assert.equal(s.secret.length, 48);
    assert.equal(s.serverName, 'localhost');
    assert.equal(s.peerCertificates.length, 2, 'the server chain as verified');
    assert.equal(s.receivedAt, T0);
    assert.equal(st.cache.size, 1);
  });

  it('resumes by ticket: abbreviated handshake, no key-holder call, no certificate', async () => {
    const st = await setup();
    const session = await firstSession(st);
    const r = await run(st.config({ sessionCache12: undefined }), { session }, st.clock);
    assertResumed(r);
    assert.equal(r.server.info.cipherSuite, session.cipherSuite);
    assert.deepEqual(r.client.info.peerCertificates, session.peerCertificates, 'the client reports the original chain');
    assert.equal(r.sessions.length, 0, 'the ticket was sealed by the current key: no new one');
  });

  it('resumes by session id when the server keeps no ticket keys, and with a ticket-less session', async () => {
    const st = await setup();
    const session = await firstSession(st);
    assertResumed(await run(st.config({ ticketKeys: undefined }), { session }, st.clock));
    assertResumed(await run(st.config(), { session: { ...session, ticket: new Uint8Array(0) } }, st.clock));
  });

  it('a server without a cache sends an empty session id; without either, no session event', async () => {
    const st = await setup();
    const s = await firstSession(st, st.config({ sessionCache12: undefined }));
    assert.equal(s.sessionId.length, 0);
    assert.ok(s.ticket.length > 0);
    const none = await run(st.config({ sessionCache12: undefined, ticketKeys: undefined }), {}, st.clock);
    assertFull(none);
    assert.equal(none.sessions.length, 0);
  });

  it('a ticket whose key was rotated but is still accepted resumes and gets a fresh ticket', async () => {
    const st = await setup();
    const session = await firstSession(st, st.config({ sessionCache12: undefined }));
    st.clock.t += HOUR + 1000; // the key that sealed it no longer seals
    const r = await run(st.config({ sessionCache12: undefined }), { session }, st.clock);
    assertResumed(r);
    assert.equal(r.sessions.length, 1, 'a session event with the new ticket');
    const renewed = r.sessions[0];
    assert.notDeepEqual(Buffer.from(renewed.ticket), Buffer.from(session.ticket));
    assert.deepEqual(Buffer.from(renewed.secret), Buffer.from(session.secret), 'the same session');
    assert.equal(st.ring.keyNames().length, 2);
    assertResumed(await run(st.config({ sessionCache12: undefined }), { session: renewed }, st.clock));
  });

  it('a ticket from a rotated-out key, a tampered ticket, an expired one: full handshake, new ticket', async () => {
    const st = await setup();
    const config = st.config({ sessionCache12: undefined });
    const session = await firstSession(st, config);
    const tampered = Buffer.from(session.ticket);
    tampered[tampered.length - 20] ^= 1;
    for (const offered of [{ ...session, ticket: tampered }, { ...session, ticket: session.ticket.subarray(0, 40) }]) {
      const r = await run(config, { session: offered }, st.clock);
      assertFull(r);
      assert.equal(r.sessions.length, 1);
    }
    // Past the ticket lifetime (the ring still holds the key: only the age says no).
    st.clock.t += 7200_000 + 1000;
    const expired = await run(config, { session: { ...session, lifetime: 0 } }, st.clock);
    assertFull(expired);
    // Past rotation and lifetime: the key itself is gone.
    st.clock.t += 3 * HOUR;
    const retired = await run(config, { session: { ...session, lifetime: 0 } }, st.clock);
    assertFull(retired);
    assert.equal(retired.sessions.length, 1);
  });

  it('another SNI, a suite the client no longer offers, a session without EMS: full handshake', async () => {
    const st = await setup();
    const session = await firstSession(st);
    // The client offers a session only to the name it was made for; the server checks too.
    assertFull(await run(st.config(), { session: { ...session, serverName: 'other.test' }, serverName: 'other.test' }, st.clock));
    const otherSuite = session.cipherSuite === CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 ? CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 : CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256;
    // A client that offers it among others still resumes; a server that no longer has it does not.
    assertResumed(await run(st.config(), { session, tls12CipherSuites: [otherSuite, session.cipherSuite] }, st.clock));
    const s2 = await run(st.config({ tls12CipherSuites: [otherSuite] }), { session, tls12CipherSuites: [otherSuite, session.cipherSuite] }, st.clock);
    assertFull(s2);
    assert.equal(s2.server.info.cipherSuite, otherSuite);
    // A ticket for a session without the extended master secret (sealed here as a server
    // would have made one): a client offering EMS gets a full handshake (RFC 7627 5.3).
    const noEms = st.ring.seal(
      encodeSessionState({
        version: 'TLSv1.2',
        cipherSuite: session.cipherSuite,
        secret: session.secret,
        issuedAt: T0,
        authenticatedAt: T0,
        lifetime: 7200,
        ageAdd: 0,
        serverName: 'localhost',
        alpnProtocol: undefined,
        extendedMasterSecret: false,
        peerCertificates: [],
      }),
    );
    assertFull(await run(st.config(), { session: { ...session, ticket: noEms, sessionId: new Uint8Array(0) } }, st.clock));
  });

  it('a session with EMS offered without it: handshake_failure (RFC 7627 5.3), by ticket and by id', async () => {
    const st = await setup();
    const session = await firstSession(st);
    const withoutEms = (exts: { type: number }[]) => exts.filter((e) => e.type !== ExtensionType.extended_master_secret);
    for (const offered of [session, { ...session, ticket: new Uint8Array(0) }]) {
      const r = await run(st.config(), { session: offered, helloExtensions: withoutEms as never }, st.clock);
      assert.equal(errorOf(r.s)?.alertSent, A.handshake_failure);
      assert.match(errorOf(r.s)!.error.message, /extended master secret/);
    }
    // A server that requires EMS refuses the client before looking at its session.
    const strict = await run(st.config({ requireExtendedMasterSecret: true }), { session, helloExtensions: withoutEms as never }, st.clock);
    assert.equal(errorOf(strict.s)?.alertSent, A.handshake_failure);
  });

  it('a fatal alert removes the session from the cache (RFC 5246 7.2.2)', async () => {
    const st = await setup();
    const session = await firstSession(st, st.config({ ticketKeys: undefined }));
    assert.equal(st.cache.size, 1);
    const r = await run(st.config({ ticketKeys: undefined }), { session }, st.clock);
    assertResumed(r);
    // A forged record: bad_record_mac, fatal.
    r.server.receive(Buffer.from('1703030020' + '00'.repeat(32), 'hex'));
    assert.equal(errorOf({ events: r.server.takeEvents(), keyOps: [], verified: 0 })?.alertSent, A.bad_record_mac);
    assert.equal(st.cache.size, 0);
    assertFull(await run(st.config({ ticketKeys: undefined }), { session }, st.clock));
    // And a session whose connection ends with a fatal alert from the peer.
    const r2 = await run(st.config({ ticketKeys: undefined }), {}, st.clock);
    assertFull(r2);
    assert.equal(st.cache.size, 2);
    r2.client.receive(Buffer.from('1703030020' + '00'.repeat(32), 'hex'));
    const clientAlert = Buffer.concat(r2.client.takeOutput());
    assert.ok(clientAlert.length > 0, 'the client sent its alert');
    r2.server.receive(clientAlert);
    assert.equal(errorOf({ events: r2.server.takeEvents(), keyOps: [], verified: 0 })?.alertReceived, A.bad_record_mac);
    assert.equal(st.cache.size, 1);
    assertFull(await run(st.config({ ticketKeys: undefined }), { session: r2.sessions[0] }, st.clock));
  });

  it('mutual TLS: the client chain comes back with the resumed session', async () => {
    const st = await setup();
    const pki = st.pki;
    const clientCert = certifiedKey(pki.client.chainPem, new LocalKey(pki.client.keyPem));
    const config = st.config({ clientAuth: { certificateAuthorities: [] } });
    const first = await run(config, { certificate: clientCert }, st.clock);
    assertConnected(first);
    assert.deepEqual(first.c.keyOps, ['sign']);
    const r = await run(config, { certificate: clientCert, session: first.sessions[0] }, st.clock);
    assertResumed(r);
    assert.deepEqual(r.server.info.peerCertificates?.map((c) => Buffer.from(c)), first.server.info.peerCertificates?.map((c) => Buffer.from(c)));
  });

  it('a session made without a client certificate does not resume on a server that asks for one (shared ticket keys)', async () => {
    const st = await setup();
    const session = await firstSession(st);
    assertFull(await run(st.config({ clientAuth: { certificateAuthorities: [] } }), { session }, st.clock));
  });

  it('PSK handshakes leave no session to resume', async () => {
    const st = await setup();
    const { localPsk } = await import('../../src/keys/localPsk.js');
    const holder = localPsk(new Map([['dev', Buffer.alloc(32, 7)]]));
    const r = await run(st.config({ psk: { holder } }), { psk: { holder, identity: 'dev' } }, st.clock);
    assert.ok(r.client.isConnected && r.server.isConnected);
    assert.deepEqual(r.s.keyOps, ['pskMasterSecret']);
    assert.equal(r.sessions.length, 0);
    assert.equal(st.cache.size, 0);
  });
});

describe('the TLS 1.2 client refuses a bad resumption', () => {
  /** Rewrites the server's ServerHello (the first handshake record it sends). */
  const rewriteServerHello =
    (edit: (sh: ReturnType<typeof parseServerHello>) => Parameters<typeof encodeServerHello>[0]): Tamper =>
    (from, bytes) => {
      if (from !== 'server' || bytes[0] !== 22 || bytes[5] !== HandshakeType.server_hello) return bytes;
      const recLen = bytes.readUInt16BE(3);
      const msgLen = bytes.readUIntBE(6, 3);
      const sh = parseServerHello(bytes.subarray(9, 9 + msgLen));
      const hello = Buffer.from(encodeServerHello(edit(sh)));
      const restOfRecord = bytes.subarray(9 + msgLen, 5 + recLen);
      const body = Buffer.concat([hello, restOfRecord]);
      const header = Buffer.from([22, 3, 3, body.length >> 8, body.length & 0xff]);
      return Buffer.concat([header, body, bytes.subarray(5 + recLen)]);
    };

  it('another cipher suite than the session: illegal_parameter', async () => {
    const st = await setup();
    const session = await firstSession(st);
    const other = session.cipherSuite === CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 ? CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 : CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256;
    const r = await run(st.config(), { session }, st.clock, rewriteServerHello((sh) => ({ random: sh.random, sessionId: sh.sessionId, cipherSuite: other, extensions: sh.extensions })));
    assert.equal(errorOf(r.c)?.alertSent, A.illegal_parameter);
    assert.match(errorOf(r.c)!.error.message, /another cipher suite/);
  });

  it('a resumption without the extended master secret: handshake_failure (RFC 7627 5.3)', async () => {
    const st = await setup();
    const session = await firstSession(st);
    const r = await run(
      st.config(),
      { session },
      st.clock,
      rewriteServerHello((sh) => ({ random: sh.random, sessionId: sh.sessionId, cipherSuite: sh.cipherSuite, extensions: sh.extensions.filter((e) => e.type !== ExtensionType.extended_master_secret) })),
    );
    assert.equal(errorOf(r.c)?.alertSent, A.handshake_failure);
  });

  it('an echo of a session id that offered no session: illegal_parameter', async () => {
    const st = await setup();
    // The client offers TLS 1.3 too, so it sends a random compatibility session id and no session.
    let sent: Buffer | undefined;
    const r = await run(st.config({ maxVersion: 'TLSv1.2' }), { maxVersion: 'TLSv1.3' }, st.clock, (from, bytes) => {
      if (from === 'client' && bytes[5] === HandshakeType.client_hello) {
        sent = bytes.subarray(44, 44 + bytes[43]);
        return bytes;
      }
      return rewriteServerHello((sh) => ({ random: sh.random, sessionId: sent!, cipherSuite: sh.cipherSuite, extensions: sh.extensions }))(from, bytes);
    });
    assert.equal(sent?.length, 32);
    assert.equal(errorOf(r.c)?.alertSent, A.illegal_parameter);
    assert.match(errorOf(r.c)!.error.message, /not offered/);
  });
});
