/**
 * keyward's client resuming TLS 1.3 sessions: against openssl s_server, a node:tls server
 * and a keyward server; the session Buffer from the `session` event (and getSession) given
 * back to connect(); and what is not resumed: a ticket from a retired key, a tampered
 * ticket, a session whose chain no longer verifies. A wrong binder is decrypt_error.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { LocalKey } from '../../src/keys/localKey.js';
import { connect, type KeywardConnectOptions } from '../../src/node/clientSocket.js';
import { encodeClientSession, parseClientSession } from '../../src/tls/resumption/clientSession.js';
import { TicketKeyRing } from '../../src/tls/resumption/ticketKeys.js';
import { exchange, freePort, handshake } from '../client/clientHelpers.js';
import { ControlledKey } from '../node/helpers.js';
import { listen, startEchoServer, waitUntil, type EchoServer } from '../support/keywardServer.js';
import { getPki, type PkiFixtures } from '../support/pki.js';

let pki: PkiFixtures;
before(async () => {
  pki = await getPki();
});

/** A keyward client handshake that echoes one line and waits for `sessions` session events; then it ends. */
async function visit(port: number, opts: Partial<KeywardConnectOptions> = {}, sessions = 1) {
  const c = connect({ port, host: 'localhost', ca: pki.ca.certPem, minVersion: 'TLSv1.3', handshakeTimeout: 10_000, ...opts });
  // Listening from the start: tickets may come with the server's first flight.
  const got: Buffer[] = [];
  c.on('session', (b: Buffer) => got.push(b));
  await once(c, 'secureConnect');
  await exchange(c, 'ping\n', 'ping');
  await waitUntil(() => got.length >= sessions, `${sessions} session events`);
  const result = { reused: c.isSessionReused(), authorized: c.authorized, sessions: got, last: c.getSession(), ticket: c.getTLSTicket(), peer: c.getPeerX509Certificate() };
  c.end();
  await once(c, 'close');
  return result;
}

describe('keyward client: TLS 1.3 resumption', () => {
  it('against openssl s_server -tls1_3: the session Buffer resumes (no certificate the second time)', async () => {
    const port = await freePort();
    const f = pki.server['ecdsa-p256'];
    const child = spawn('openssl', ['s_server', '-accept', `127.0.0.1:${port}`, '-naccept', '2', '-tls1_3', '-cert', f.certPath, '-key', f.keyPath, '-rev'], { stdio: 'pipe' });
    let out = '';
    child.stdout.on('data', (d) => (out += String(d)));
    try {
      await waitUntil(() => out.includes('ACCEPT'), 's_server ACCEPT');
      // -rev answers each line reversed: "ping" comes back as "gnip".
      const exchangeRev = async (opts: Partial<KeywardConnectOptions>) => {
        const c = connect({ port, host: 'localhost', ca: pki.ca.certPem, minVersion: 'TLSv1.3', handshakeTimeout: 10_000, ...opts });
        const sessions: Buffer[] = [];
        c.on('session', (b: Buffer) => sessions.push(b));
        await once(c, 'secureConnect');
        await exchange(c, 'ping\n', 'gnip');
        await waitUntil(() => sessions.length > 0, 'a session from s_server');
        const r = { reused: c.isSessionReused(), authorized: c.authorized, session: sessions[0], subject: c.getPeerX509Certificate()?.subject };
        // s_server may answer our close_notify with a reset: only the close matters here.
        c.on('error', () => undefined);
        c.end();
        await once(c, 'close');
        return r;
      };
      const first = await exchangeRev({});
      assert.equal(first.reused, false);
      const second = await exchangeRev({ session: first.session });
      assert.equal(second.reused, true);
      assert.equal(second.authorized, true);
      assert.equal(second.subject, first.subject, "the session's chain stands for the server's");
    } finally {
      child.kill();
    }
  });

  it('against a node:tls server: isSessionReused on both sides', async () => {
    const f = pki.server['ecdsa-p256'];
    const reusedOnServer: boolean[] = [];
    const open = new Set<tls.TLSSocket>();
    const server = tls.createServer({ key: f.keyPem, cert: f.chainPem, minVersion: 'TLSv1.3' }, (s) => {
      open.add(s.once('close', () => open.delete(s)));
      s.on('error', () => undefined);
      reusedOnServer.push(s.isSessionReused());
      s.on('data', (d) => s.write(d));
      s.on('end', () => s.end());
    });
    const port = await listen(server);
    try {
      const first = await visit(port);
      // OpenSSL issues no new ticket on a resumed handshake: wait for none.
      const second = await visit(port, { session: first.sessions[0] }, 0);
      assert.equal(second.reused, true);
      assert.deepEqual(reusedOnServer, [false, true]);
    } finally {
      server.close();
      for (const s of open) s.destroy();
    }
  });

  describe('against a keyward server', () => {
    let now = Date.now();
    const ring = new TicketKeyRing({ now: () => now, rotateEvery: 60_000, ticketLifetime: 60 });
    let echo: EchoServer;
    let key: ControlledKey;
    before(async () => {
      key = new ControlledKey(new LocalKey(pki.server['ecdsa-p256'].keyPem));
      echo = await startEchoServer({ certificates: [{ cert: pki.server['ecdsa-p256'].chainPem, key }], ticketKeys: ring });
    });
    after(() => echo.close());

    it('two session events per handshake; getSession is the last; resumed without a signature', async () => {
      const signs = key.log.started;
      const first = await visit(echo.port, {}, 2);
      assert.equal(first.sessions.length, 2);
      assert.deepEqual(first.last, first.sessions[1]);
      assert.deepEqual(first.ticket, Buffer.from(parseClientSession(first.sessions[1]).ticket));
      const second = await visit(echo.port, { session: first.sessions[0] });
      assert.equal(second.reused, true);
      assert.equal(second.authorized, true);
      assert.equal(second.peer?.subject, first.peer?.subject);
      assert.equal(echo.sessions.at(-1)?.negotiated.resumed, true);
      assert.equal(key.log.started, signs + 1, 'one signature for two handshakes');
    });

    it('a tampered ticket and a ticket of a retired key fall back to a full handshake', async () => {
      const first = await visit(echo.port);
      const s = parseClientSession(first.sessions[0]);
      const ticket = Uint8Array.from(s.ticket);
      ticket[20] ^= 1;
      const signs = key.log.started;
      const tampered = await visit(echo.port, { session: Buffer.from(encodeClientSession({ ...s, ticket })) });
      assert.equal(tampered.reused, false);
      // The ring retires a key rotateEvery + lifetime after it was made: its tickets no longer open.
      now += 60_000 + 60_000 + 1000;
      const retired = await visit(echo.port, { session: Buffer.from(encodeClientSession({ ...s, receivedAt: Date.now(), lifetime: 7200 })) });
      assert.equal(retired.reused, false);
      assert.equal(key.log.started, signs + 2, 'both were certificate handshakes');
    });

    it('a wrong binder (another PSK) is decrypt_error', async () => {
      const first = await visit(echo.port);
      const s = parseClientSession(first.sessions[0]);
      const secret = Uint8Array.from(s.secret);
      secret[0] ^= 1;
      const mark = echo.mark();
      await assert.rejects(handshake(echo.port, pki.ca.certPem, { session: Buffer.from(encodeClientSession({ ...s, secret })) }), { code: 'ERR_TLS_ALERT_RECEIVED_DECRYPT_ERROR' });
      await waitUntil(() => echo.since(mark).errors.length === 1, 'the server reports the failure');
      assert.equal(echo.since(mark).errors[0].alertSent, 51);
    });

    it('a session whose server chain does not verify is not offered; bad bytes are refused', async () => {
      const first = await visit(echo.port);
      // The session is offered only when its chain verifies against the trust anchors given now.
      const c = handshake(echo.port, pki.untrusted.ca.certPem, { session: first.sessions[0] });
      await assert.rejects(c, /certificate|issuer|unknown/i);
      assert.throws(() => handshake(echo.port, pki.ca.certPem, { session: Buffer.from('not a session') }), /invalid TLS session/);
    });
  });
});
