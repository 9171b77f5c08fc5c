import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inspect } from 'node:util';
import { SessionCache12 } from '../../src/tls/resumption/sessionCache12.js';
import { encodeSessionState, parseSessionState, sessionAgeProblem, type SessionState } from '../../src/tls/resumption/sessionState.js';
import { TICKET_OVERHEAD, TicketKeyRing } from '../../src/tls/resumption/ticketKeys.js';

const HOUR = 3_600_000;

function state(over: Partial<SessionState> = {}): SessionState {
  return {
    version: 'TLSv1.3',
    cipherSuite: 0x1301,
    secret: Buffer.alloc(32, 0x5a),
    issuedAt: 1_700_000_000_000,
    authenticatedAt: 1_699_999_000_000,
    lifetime: 7200,
    ageAdd: 0xfedcba98,
    serverName: 'example.com',
    alpnProtocol: 'h2',
    extendedMasterSecret: false,
    peerCertificates: [],
    ...over,
  };
}

/** A deterministic random source: a counter-filled stream. */
function counterRandom(): (n: number) => Uint8Array {
  let c = 0;
  return (n) => Buffer.from(Array.from({ length: n }, () => c++ & 0xff));
}

describe('session state', () => {
  it('round-trips every field, with and without SNI, ALPN and a peer chain', () => {
    for (const s of [
      state(),
      state({ version: 'TLSv1.2', cipherSuite: 0xc02b, secret: Buffer.alloc(48, 7), extendedMasterSecret: true, ageAdd: 0, serverName: undefined, alpnProtocol: undefined }),
      state({ peerCertificates: [Buffer.alloc(700, 1), Buffer.alloc(900, 2)], issuedAt: 2 ** 45 + 123 }),
    ]) {
      const parsed = parseSessionState(encodeSessionState(s));
      assert.ok(parsed);
      assert.deepEqual({ ...parsed, secret: Buffer.from(parsed.secret), peerCertificates: parsed.peerCertificates.map((c) => Buffer.from(c)) }, { ...s, secret: Buffer.from(s.secret), peerCertificates: s.peerCertificates.map((c) => Buffer.from(c)) });
    }
  });

  it('anything but an exact encoding is null: truncated, padded, another format or version', () => {
    const bytes = encodeSessionState(state());
    for (let n = 0; n < bytes.length; n++) assert.equal(parseSessionState(bytes.subarray(0, n)), null, `truncated to ${n}`);
    assert.equal(parseSessionState(Buffer.concat([bytes, Buffer.of(0)])), null);
    const other = Buffer.from(bytes);
    other[0] = 2;
    assert.equal(parseSessionState(other), null);
    const tls11 = Buffer.from(bytes);
    tls11[2] = 0x02;
    assert.equal(parseSessionState(tls11), null);
  });

  it('refuses lifetimes beyond seven days when encoding', () => {
    assert.throws(() => encodeSessionState(state({ lifetime: 604_801 })), /604800/);
  });

  it('age checks: lifetime, seven days since the full handshake, and the obfuscated ticket age', () => {
    const s = state();
    const age = 5_000;
    const obfuscated = (age + s.ageAdd) >>> 0;
    assert.equal(sessionAgeProblem(s, s.issuedAt + age, obfuscated), undefined);
    assert.match(sessionAgeProblem(s, s.issuedAt + age, (obfuscated + 60_000) >>> 0) ?? '', /obfuscated ticket age/);
    assert.match(sessionAgeProblem(s, s.issuedAt + 7201_000) ?? '', /lifetime/);
    assert.match(sessionAgeProblem(state({ authenticatedAt: 1_700_000_000_000 - 604_800_000 }), 1_700_000_000_001) ?? '', /seven days/);
    assert.match(sessionAgeProblem(s, s.issuedAt - 60_000) ?? '', /future/);
  });
});

describe('ticket keys', () => {
  it('seals and opens; tampering with any byte of the ticket gives null', () => {
    const ring = new TicketKeyRing({ random: counterRandom(), now: () => 0 });
    const plain = encodeSessionState(state());
    const ticket = ring.seal(plain);
    assert.equal(ticket.length, plain.length + TICKET_OVERHEAD);
    assert.deepEqual(ring.open(ticket), { plaintext: Buffer.from(plain), currentKey: true });
    for (const i of [0, 15, 16, 27, 28, ticket.length - 17, ticket.length - 1]) {
      const bad = Buffer.from(ticket);
      bad[i] ^= 1;
      assert.equal(ring.open(bad), null, `byte ${i}`);
    }
    assert.equal(ring.open(ticket.subarray(0, TICKET_OVERHEAD - 1)), null);
  });

  it('rotates: a ticket from the previous key opens (flagged for reissue) until that key retires', () => {
    let now = 0;
    const ring = new TicketKeyRing({ rotateEvery: HOUR, ticketLifetime: 7200, now: () => now });
    const old = ring.seal(Buffer.from('old session'));
    now = HOUR + 1;
    const fresh = ring.seal(Buffer.from('new session'));
    assert.equal(ring.keyNames().length, 2);
    assert.deepEqual(ring.open(old), { plaintext: Buffer.from('old session'), currentKey: false });
    assert.deepEqual(ring.open(fresh), { plaintext: Buffer.from('new session'), currentKey: true });
    // The first key stopped sealing at one hour; its tickets live two hours more.
    now = 3 * HOUR;
    assert.equal(ring.open(old), null);
    assert.ok(ring.open(fresh));
    assert.equal(ring.keyNames().length, 1);
  });

  it('a ticket sealed by another ring does not open; installed (fleet) keys open each other\'s tickets', () => {
    const a = new TicketKeyRing();
    const b = new TicketKeyRing();
    assert.equal(b.open(a.seal(Buffer.from('x'))), null);
    const shared = [{ name: Buffer.alloc(16, 1), secret: Buffer.alloc(32, 2), createdAt: Date.now() }];
    a.install(shared);
    b.install(shared);
    assert.deepEqual(b.open(a.seal(Buffer.from('fleet')))?.plaintext, Buffer.from('fleet'));
    assert.throws(() => a.install([{ name: Buffer.alloc(15), secret: Buffer.alloc(32), createdAt: 0 }]), /name must be 16 bytes/);
    assert.throws(() => a.install([{ name: Buffer.alloc(16), secret: Buffer.alloc(31), createdAt: 0 }]), /32 bytes/);
  });

  it('an installed ring seals with the newest key whose period has begun, and moves to the next one when its time comes (keyd out of reach)', () => {
    let t = 1_000_000;
    const ring = new TicketKeyRing({ now: () => t, rotateEvery: 3_600_000, ticketLifetime: 7200 });
    const key = (b: number, createdAt: number) => ({ name: Buffer.alloc(16, b), secret: Buffer.alloc(32, b), createdAt });
    // As keyd hands them out: the sealing key first, an older one still accepted, the next one a period ahead.
    ring.install([key(2, t - 1000), key(1, t - 3_601_000), key(3, t + 3_599_000)]);
    const nameOf = (ticket: Buffer): number => ticket[0];
    assert.equal(nameOf(ring.seal(Buffer.from('a'))), 2);
    assert.equal(ring.open(ring.seal(Buffer.from('a')))?.currentKey, true);
    t += 3_600_000;
    const later = ring.seal(Buffer.from('b'));
    assert.equal(nameOf(later), 3);
    assert.equal(ring.open(later)?.currentKey, true);
  });

  it('never shows key material when inspected', () => {
    const secret = Buffer.alloc(32, 0xab);
    const ring = new TicketKeyRing();
    ring.install([{ name: Buffer.alloc(16, 0xcd), secret, createdAt: Date.now() }]);
    const text = inspect(ring, { depth: 10, showHidden: true });
    assert.ok(!text.includes('ab ab ab') && !text.toLowerCase().includes('abababab'), text);
  });

  it('refuses a lifetime beyond RFC 8446\'s seven days', () => {
    assert.throws(() => new TicketKeyRing({ ticketLifetime: 604_801 }), /604800/);
  });
});

describe('TLS 1.2 session cache', () => {
  const s12 = (b: number): SessionState => state({ version: 'TLSv1.2', cipherSuite: 0xc02f, secret: Buffer.alloc(48, b), ageAdd: 0, issuedAt: 0, authenticatedAt: 0, lifetime: 300 });

  it('keeps at most maxEntries, least recently used out first, and wipes what leaves', () => {
    const cache = new SessionCache12({ maxEntries: 2, now: () => 1000 });
    const id = (n: number): Buffer => Buffer.alloc(32, n);
    cache.set(id(1), s12(1));
    cache.set(id(2), s12(2));
    assert.ok(cache.get(id(1))); // 1 is now the most recent
    cache.set(id(3), s12(3));
    assert.equal(cache.size, 2);
    assert.equal(cache.get(id(2)), undefined);
    assert.deepEqual(Buffer.from(cache.get(id(1))?.secret ?? []), Buffer.alloc(48, 1));
    const copy = cache.get(id(3));
    cache.delete(id(3));
    assert.deepEqual(Buffer.from(copy?.secret ?? []), Buffer.alloc(48, 3), 'a session handed out stays whole after eviction');
  });

  it('drops expired sessions and refuses TLS 1.3 state and bad ids', () => {
    let now = 0;
    const cache = new SessionCache12({ now: () => now });
    cache.set(Buffer.alloc(32, 9), s12(9));
    now = 301_000;
    assert.equal(cache.get(Buffer.alloc(32, 9)), undefined);
    assert.equal(cache.size, 0);
    assert.throws(() => cache.set(Buffer.alloc(32), state()), /TLS 1.2/);
    assert.throws(() => cache.set(Buffer.alloc(33), s12(1)), /1\.\.32/);
    assert.equal(cache.get(Buffer.alloc(0)), undefined);
  });
});
