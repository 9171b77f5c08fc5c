// Ticket keys from keyd that have all expired (keyd out of reach for longer than a rotation
// period and a ticket lifetime) seal nothing: the handshake still completes, without a
// ticket. TLS 1.3 sends no NewSessionTicket; a TLS 1.2 ServerHello promises none (no
// SessionTicket extension); a TLS 1.2 ServerHello that promised one before the last key
// expired is kept with an empty ticket (RFC 5077 3.3).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { before, describe, it } from 'node:test';
import { LocalKey } from '../../src/keys/localKey.js';
import { TicketKeyRing } from '../../src/tls/resumption/ticketKeys.js';
import { certifiedKey, type CertifiedKey } from '../../src/tls/engine/certificates.js';
import { resolveClientConfig } from '../../src/tls/engine/clientConfig.js';
import { resolveServerConfig } from '../../src/tls/engine/config.js';
import { ContentType, HandshakeType } from '../../src/tls/wire/constants.js';
import { parseNewSessionTicket12 } from '../../src/tls/wire/messages12.js';
import { parseServerHello } from '../../src/tls/wire/serverHello.js';
import { handshakePair, type Pair } from '../support/enginePair.js';
import { parseRecords, plaintextHandshakes } from '../support/keywardServer.js';
import { getPki } from '../support/pki.js';

const ROTATE_MS = 60_000;
const LIFETIME_S = 60;
/** When the installed key stops opening and sealing. */
const EXPIRED = ROTATE_MS + LIFETIME_S * 1000;

let cert: CertifiedKey;
before(async () => {
  const pki = await getPki();
  cert = certifiedKey(pki.server['ecdsa-p256'].chainPem, new LocalKey(pki.server['ecdsa-p256'].keyPem));
});

/** A ring fed one key "from keyd" at time 0, on the clock `clock.t`. */
function keydRing(clock: { t: number }): TicketKeyRing {
  const ring = new TicketKeyRing({ now: () => clock.t, rotateEvery: ROTATE_MS, ticketLifetime: LIFETIME_S });
  ring.install([{ name: randomBytes(16), secret: randomBytes(32), createdAt: 0 }]);
  return ring;
}

async function run(version: 'TLSv1.3' | 'TLSv1.2', clock: { t: number }, afterRound?: (round: number) => void): Promise<Pair> {
  const ring = keydRing(clock);
  const p = await handshakePair(resolveServerConfig({ certificates: [cert], ticketKeys: ring, maxVersion: version }), resolveClientConfig({ serverName: 'localhost', maxVersion: version }), {
    server: () => clock.t,
    client: () => clock.t,
    afterRound,
  });
  assert.ok(p.client.isConnected && p.server.isConnected, `${p.s.error?.message ?? ''} ${p.c.error?.message ?? ''}`);
  assert.equal(p.s.error, undefined);
  return p;
}

const sessions = (p: Pair) => p.c.events.filter((e) => e.type === 'session').length;

/** The server's TLS 1.2 handshake messages sent in the clear (before its ChangeCipherSpec). */
function clearMessages12(p: Pair) {
  const records = parseRecords(Buffer.concat(p.s.sent)).records;
  const ccs = records.findIndex((r) => r.type === ContentType.change_cipher_spec);
  return plaintextHandshakes(records.slice(0, ccs));
}

describe('ticket keys from keyd, all expired', () => {
  it('TLS 1.3: tickets while a key is valid; none once all expired, and the handshake completes', async () => {
    assert.equal(sessions(await run('TLSv1.3', { t: 1000 })), 2, 'the default two tickets');
    assert.equal(sessions(await run('TLSv1.3', { t: EXPIRED + 1 })), 0);
  });

  it('TLS 1.2: the ServerHello promises no ticket once every key expired', async () => {
    const valid = clearMessages12(await run('TLSv1.2', { t: 1000 }));
    assert.equal(parseServerHello(valid[0].body).sessionTicket, true);
    const nst = valid.find((m) => m.type === HandshakeType.new_session_ticket);
    assert.ok(nst && parseNewSessionTicket12(nst.body).ticket.length > 0);

    const p = await run('TLSv1.2', { t: EXPIRED + 1 });
    const expired = clearMessages12(p);
    assert.equal(parseServerHello(expired[0].body).sessionTicket, false);
    assert.equal(expired.find((m) => m.type === HandshakeType.new_session_ticket), undefined);
    assert.equal(sessions(p), 0, 'no session id either: the server keeps no session cache here');
  });

  it('TLS 1.2: the last key expires between the ServerHello and the Finished: an empty ticket keeps the promise', async () => {
    const clock = { t: EXPIRED - 1 };
    const p = await run('TLSv1.2', clock, (round) => {
      if (round === 0) clock.t = EXPIRED + 1;
    });
    const messages = clearMessages12(p);
    assert.equal(parseServerHello(messages[0].body).sessionTicket, true);
    const nst = messages.find((m) => m.type === HandshakeType.new_session_ticket);
    assert.ok(nst, 'the promised NewSessionTicket is sent');
    assert.equal(parseNewSessionTicket12(nst.body).ticket.length, 0);
    assert.equal(sessions(p), 0, 'the client keeps nothing from an empty ticket');
  });
});
