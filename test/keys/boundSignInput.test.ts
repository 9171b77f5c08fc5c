/**
 * Bound mode (level 2 of "not a signing oracle"): the key holder recomputes the input
 * from the handshake messages. Inputs and messages come from real engine handshakes
 * (TLS 1.3, TLS 1.3 after a HelloRetryRequest, TLS 1.2 ECDHE); each refusal changes one thing.
 */
import assert from 'node:assert/strict';
import { X509Certificate, generateKeyPairSync, randomBytes } from 'node:crypto';
import { before, test } from 'node:test';
import { checkBoundSignInput, type BoundKey } from '../../src/keys/boundSignInput.js';
import type { SignPurpose } from '../../src/keys/keyOperations.js';
import { TlsServerConnection } from '../../src/tls/engine/serverConnection.js';
import { Transcript } from '../../src/tls/crypto/transcript.js';
import { clientHelloBody, clientHelloRecord, defaultExtensions, ext, handshakeMsg, x25519Share } from '../support/clientHelloBuilder.js';
import { harness, type Harness } from '../support/engineHarness.js';
import { getPki } from '../support/pki.js';

interface Captured {
  message: Uint8Array;
  purpose: SignPurpose;
  messages: Uint8Array[];
}

let h: Harness;
let key: BoundKey;

before(async () => {
  h = await harness();
  const pki = await getPki();
  const spki = new X509Certificate(pki.server['ecdsa-p256'].chainPem).publicKey.export({ type: 'spki', format: 'der' });
  key = { spki, servesName: (n) => n === 'localhost' };
});

/** Feeds ClientHello records to a fresh connection and returns its signature request. */
function capture(...hellos: Uint8Array[]): Captured {
  const conn = new TlsServerConnection(h.config);
  for (const ch of hellos) {
    conn.receive(ch);
    conn.takeOutput();
  }
  const ev = conn.takeEvents().find((e) => e.type === 'keyOperation');
  assert.ok(ev && ev.type === 'keyOperation' && ev.request.kind === 'sign', 'the engine asked for a signature');
  const { message, context } = ev.request;
  assert.ok(context.purpose && context.handshakeMessages);
  return { message, purpose: context.purpose, messages: context.handshakeMessages.map((m) => Uint8Array.from(m)) };
}

const tls13 = (): Captured => capture(clientHelloRecord());

function tls13AfterRetry(): Captured {
  // Only a supported_groups entry for x25519 and no share: the server asks for one.
  const exts = (share?: Uint8Array) => [...defaultExtensions().filter((e) => e.type !== 51 && e.type !== 10), ext.supportedGroups([29]), ext.keyShare(share ? [{ group: 29, key: share }] : [])];
  return capture(clientHelloRecord({ extensions: exts() }), clientHelloRecord({ extensions: exts(x25519Share().publicKey) }));
}

const tls12 = (): Captured =>
  capture(
    clientHelloRecord({
      cipherSuites: [0xc02b],
      // P-256 listed: an ECDSA certificate is used in TLS 1.2 only on a curve the client supports (RFC 8422).
      extensions: [ext.serverName('localhost'), ext.supportedGroups([29, 23]), ext.signatureAlgorithms([0x0403]), ext.raw(11, [1, 0])],
    }),
  );

const check = (c: Captured, k: BoundKey = key) => checkBoundSignInput(c.message, c.purpose, c.messages, k);

function refused(c: Captured, reason: RegExp, k: BoundKey = key): void {
  const r = check(c, k);
  assert.equal(r.ok, false, 'refused');
  if (!r.ok) assert.match(r.reason, reason);
}

test('real handshakes are accepted: TLS 1.3, TLS 1.3 after a HelloRetryRequest, TLS 1.2 ECDHE', () => {
  const cases: Array<[string, Captured, number]> = [
    ['TLS 1.3', tls13(), 4],
    ['TLS 1.3 + HRR', tls13AfterRetry(), 6],
    ['TLS 1.2', tls12(), 2],
  ];
  for (const [name, c, n] of cases) {
    assert.equal(c.messages.length, n, name);
    assert.deepEqual(check(c), { ok: true, serverName: 'localhost' }, name);
  }
});

test('TLS 1.3: a changed message, another certificate, a name the key does not serve are refused', () => {
  const c = tls13();
  const ee = c.messages.map((m) => Uint8Array.from(m));
  // A byte of the ServerHello random: every message still parses, the hash differs.
  ee[1][10] ^= 1;
  refused({ ...c, messages: ee }, /not the CertificateVerify content/);
  const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
  refused(c, /not this key's certificate/, { spki: other, servesName: () => true });
  refused(c, /asks for localhost, a name this key does not serve/, { spki: key.spki, servesName: () => false });
  // The input of one handshake with the messages of another.
  refused({ ...c, message: tls13().message }, /not the CertificateVerify content/);
});

test('TLS 1.3 after a retry: the HelloRetryRequest must be one, and the transcript uses message_hash', () => {
  const c = tls13AfterRetry();
  // Without the retry pair the hash differs.
  refused({ ...c, messages: c.messages.slice(2) }, /not the CertificateVerify content/);
  // Swapping the HelloRetryRequest and the ServerHello.
  const swapped = [c.messages[0], c.messages[3], c.messages[2], c.messages[1], c.messages[4], c.messages[5]];
  refused({ ...c, messages: swapped }, /HelloRetryRequest/);
});

test('TLS 1.3 after a retry: the first ClientHello must parse and ask for the same name', () => {
  const c = tls13AfterRetry();
  // A consistent input for a forged first ClientHello: only parsing it can catch it.
  const withFirst = (ch1: Uint8Array): Captured => {
    const t = new Transcript('sha256');
    t.update(ch1);
    t.replaceWithMessageHash();
    for (const m of c.messages.slice(1)) t.update(m);
    const message = Buffer.concat([Buffer.alloc(64, 0x20), Buffer.from('TLS 1.3, server CertificateVerify\0', 'latin1'), t.current()]);
    return { ...c, message, messages: [ch1, ...c.messages.slice(1)] };
  };
  assert.equal(check(withFirst(c.messages[0])).ok, true, 'the real first ClientHello passes the same way');
  refused(withFirst(Uint8Array.of(1, 0, 0, 3, 0xde, 0xad, 0xbe)), /ClientHello does not parse/);
  const otherName = handshakeMsg(1, clientHelloBody({ extensions: [ext.serverName('other.example'), ...defaultExtensions().slice(1)] }));
  refused(withFirst(otherName), /two ClientHellos ask for different server names/);
});

test('TLS 1.2: the randoms must be those of the hellos', () => {
  const c = tls12();
  const m = Uint8Array.from(c.message);
  m[0] ^= 1;
  refused({ ...c, message: m }, /randoms are not those of these hellos/);
  refused({ ...c, messages: [c.messages[0]] }, /expected ClientHello, ServerHello/);
  refused(c, /does not serve/, { spki: key.spki, servesName: () => false });
});

test('missing, extra, truncated or garbage messages are refusals, never exceptions', () => {
  const c = tls13();
  refused({ ...c, messages: [] }, /no handshake messages/);
  refused({ ...c, messages: [...c.messages, ...c.messages, ...c.messages] }, /more than 10/);
  refused({ ...c, messages: c.messages.slice(0, 3) }, /expected ClientHello/);
  refused({ ...c, messages: [c.messages[0].subarray(0, 3), ...c.messages.slice(1)] }, /shorter than its header/);
  refused({ ...c, messages: [c.messages[0].subarray(0, 40), ...c.messages.slice(1)] }, /header but/);
  // A server's messages are not a client's: the client signs after the server's Finished and its own Certificate.
  refused({ ...c, purpose: 'tls13-client-certificate-verify' }, /expected .*CertificateRequest, Certificate, CertificateVerify, Finished, Certificate/);
  // Random corruption anywhere: a verdict every time, and never acceptance of a changed byte.
  for (let i = 0; i < 300; i++) {
    const msgs = c.messages.map((m) => Uint8Array.from(m));
    const which = msgs[i % msgs.length];
    which[randomBytes(2).readUInt16BE(0) % which.length] ^= 1 + (i % 255);
    const r = check({ ...c, messages: msgs });
    assert.equal(r.ok, false, `corruption ${i} was accepted`);
  }
});
