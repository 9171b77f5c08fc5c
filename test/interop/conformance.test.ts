// Conformance probes on the wire, tlsfuzzer-style: crafted bytes from a raw TCP client to a
// keyward server (createServer over a real socket), each expected to end in the alert RFC
// 8446 / RFC 5246 names for it, sent in the clear or under the right key, with the TCP
// connection closed at once (the server's handshake timeout is 10 s: a probe that waits it
// out fails). The engine's own tests (test/engine/malformed.test.ts) feed bytes without a
// socket; these check what a peer really receives. Where RFC 8446 names no alert (a
// duplicate extension, CCS of the wrong value) the answer follows Go's and BoringSSL's.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ffdheParameters, generateKeyExchange, NamedGroup } from '../../src/tls/crypto/groups.js';
import { AlertDescription as A, alertName } from '../../src/tls/wire/alerts.js';
import type { HandshakeType } from '../../src/tls/wire/constants.js';
import { clientHelloBody, clientHelloRecord, defaultExtensions, ext, handshakeMsg, record, x25519Share } from '../support/clientHelloBuilder.js';
import { certificate, HELLO_RETRY_RANDOM, parseRecords, parseServerHello, startEchoServer, waitUntil, type EchoServer } from '../support/keywardServer.js';
import { MiniClient } from '../support/miniClient.js';
import { MiniClient12 } from '../support/miniClient12.js';
import { getPki } from '../support/pki.js';

let server: EchoServer;
before(async () => {
  const pki = await getPki();
  server = await startEchoServer({ certificates: [certificate(pki.server['ecdsa-p256'])], handshakeTimeout: 10_000 });
});
after(() => server?.close());

/** A probe must be answered and closed well before the server's handshake timeout. */
const CLOSE_WITHIN_MS = 2_000;

/** A raw TCP client: writes what it is given, keeps what comes back, knows when the server closed. */
class Raw {
  readonly socket: net.Socket;
  received = Buffer.alloc(0);
  closed = false;
  private consumed = 0;
  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.on('data', (d: Buffer) => (this.received = Buffer.concat([this.received, d])));
    this.socket.on('close', () => (this.closed = true));
    this.socket.on('error', () => undefined);
  }
  send(...chunks: Uint8Array[]): void {
    for (const c of chunks) this.socket.write(c);
  }
  /** Bytes received since the last call. */
  fresh(): Buffer {
    const b = this.received.subarray(this.consumed);
    this.consumed = this.received.length;
    return b;
  }
  async closedSoon(what: string): Promise<void> {
    await waitUntil(() => this.closed, `the server to close the connection after ${what}`, CLOSE_WITHIN_MS);
  }
  destroy(): void {
    this.socket.destroy();
  }
}

/** The server reported, since `mark`, a failure (handshake or established connection) in which it sent `alert`. */
async function serverSent(mark: ReturnType<EchoServer['mark']>, alert: A): Promise<void> {
  const failures = () => [...server.since(mark).errors.map((e) => e.error), ...server.since(mark).sessions.flatMap((s) => (s.error ? [s.error] : []))] as (Error & { alertSent?: number })[];
  try {
    await waitUntil(() => failures().some((e) => e.alertSent === alert), `the server to report sending ${alertName(alert)}`);
  } catch (err) {
    assert.fail(`${(err as Error).message}; it reported: ${failures().map((e) => e.message).join('; ') || 'nothing'}`);
  }
}

const noExt = (type: number) => defaultExtensions().filter((e) => e.type !== type);
const tls12Only = { cipherSuites: [0xc02b], extensions: [ext.supportedGroups([29, 23]), ext.signatureAlgorithms([0x0403]), ext.raw(23, []), ext.raw(0xff01, [0])] };
const chMessage = () => Buffer.from(handshakeMsg(1, clientHelloBody()));
const oneGroupHello = (group: number, key: Uint8Array) => clientHelloRecord({ extensions: [...noExt(51).filter((e) => e.type !== 10), ext.supportedGroups([group]), ext.keyShare([{ group, key }])] });
const p256Hello = (key: Uint8Array) => oneGroupHello(NamedGroup.secp256r1, key);
const ffdheHello = (key: Uint8Array) => oneGroupHello(NamedGroup.ffdhe2048, key);
/** An ffdhe2048 public value: `n` itself, or p + n for a negative `n`; 256 bytes. */
function ffdheShare(n: number): Buffer {
  const p = BigInt(`0x${Buffer.from(ffdheParameters(NamedGroup.ffdhe2048).p).toString('hex')}`);
  return Buffer.from((n < 0 ? p + BigInt(n) : BigInt(n)).toString(16).padStart(512, '0'), 'hex');
}

describe('ClientHello and records in the clear: the alert, in the clear, then close', () => {
  const cases: [string, () => Uint8Array[], A][] = [
    ['supported_versions with an empty list: decode_error', () => [clientHelloRecord({ extensions: [...noExt(43), ext.raw(43, [0])] })], A.decode_error],
    ['supported_versions of GREASE and 0x0305 only: protocol_version', () => [clientHelloRecord({ extensions: [...noExt(43), ext.supportedVersions([0x7a7a, 0x0305])] })], A.protocol_version],
    ['TLS 1.3 compression methods without null: illegal_parameter (RFC 8446 4.1.2)', () => [clientHelloRecord({ compression: [1] })], A.illegal_parameter],
    ['an empty compression method list: decode_error', () => [clientHelloRecord({ compression: [] })], A.decode_error],
    ['TLS 1.2 compression methods without null: illegal_parameter', () => [clientHelloRecord({ ...tls12Only, compression: [1] })], A.illegal_parameter],
    ['a key share for a group not in supported_groups: illegal_parameter (RFC 8446 4.2.8)', () => [clientHelloRecord({ extensions: [...noExt(10), ext.supportedGroups([23])] })], A.illegal_parameter],
    [
      'two key shares for the same group: illegal_parameter (RFC 8446 4.2.8)',
      () => [clientHelloRecord({ extensions: [...noExt(51), ext.keyShare([{ group: 29, key: x25519Share().publicKey }, { group: 29, key: x25519Share().publicKey }])] })],
      A.illegal_parameter,
    ],
    ['a key share of zero bytes: decode_error (key_exchange<1..2^16-1>)', () => [clientHelloRecord({ extensions: [...noExt(51), ext.keyShare([{ group: 29, key: new Uint8Array(0) }])] })], A.decode_error],
    ['pre_shared_key not last: illegal_parameter (RFC 8446 4.2.11)', () => [clientHelloRecord({ extensions: [ext.raw(41, [0, 0]), ...defaultExtensions()] })], A.illegal_parameter],
    [
      'pre_shared_key without psk_key_exchange_modes: missing_extension (RFC 8446 4.2.9)',
      () => [clientHelloRecord({ extensions: [...defaultExtensions(), ext.raw(41, [0, 7, 0, 1, 0x41, 0, 0, 0, 0, 0, 33, 32, ...new Array<number>(32).fill(0)])] })],
      A.missing_extension,
    ],
    ['a duplicate extension: illegal_parameter', () => [clientHelloRecord({ extensions: [...defaultExtensions(), ext.serverName('localhost')] })], A.illegal_parameter],
    ['an extension block longer than the message: decode_error', () => [record(22, handshakeMsg(1, clientHelloBody().subarray(0, -1)), 0x0301)], A.decode_error],
    ['a record declaring 2^14+256+1 bytes: record_overflow', () => [Buffer.concat([Buffer.of(22, 3, 1, 0x41, 0x01), Buffer.alloc(0x4101)])], A.record_overflow],
    ['a plaintext record of 2^14+1 bytes: record_overflow', () => [record(22, new Uint8Array(16385), 0x0301)], A.record_overflow],
    ['ChangeCipherSpec between two fragments of the ClientHello: unexpected_message', () => [record(22, chMessage().subarray(0, 10), 0x0301), record(20, Uint8Array.of(1)), record(22, chMessage().subarray(10))], A.unexpected_message],
    ['zero-length application data before the ClientHello: unexpected_message', () => [record(23, new Uint8Array(0))], A.unexpected_message],
    ['an unknown handshake type first: unexpected_message', () => [record(22, handshakeMsg(0x7f as HandshakeType, new Uint8Array(4)), 0x0301)], A.unexpected_message],
    ['an SSL 2.0 ClientHello: unexpected_message', () => [Buffer.from('8031010003001800000010000039000038000035', 'hex')], A.unexpected_message],
    ['no cipher suites: decode_error (cipher_suites<2..2^16-2>)', () => [clientHelloRecord({ cipherSuites: [] })], A.decode_error],
    ['only an obsolete curve (secp192r1): handshake_failure', () => [clientHelloRecord({ extensions: [...noExt(51).filter((e) => e.type !== 10), ext.supportedGroups([0x13]), ext.keyShare([{ group: 0x13, key: new Uint8Array(49).fill(4) }])] })], A.handshake_failure],
    ['an ffdhe2048 share Y = 1: illegal_parameter (RFC 8446 4.2.8.1: 1 < Y < p-1)', () => [ffdheHello(ffdheShare(1))], A.illegal_parameter],
    ['an ffdhe2048 share Y = p-1: illegal_parameter', () => [ffdheHello(ffdheShare(-1))], A.illegal_parameter],
    ['a compressed P-256 point: illegal_parameter (RFC 8446 4.2.8.2: uncompressed only)', () => [p256Hello(Buffer.concat([Buffer.of(2), Buffer.from(generateKeyExchange(NamedGroup.secp256r1).publicKey).subarray(1, 33)]))], A.illegal_parameter],
  ];
  for (const [name, bytes, alert] of cases) {
    it(name, async () => {
      const mark = server.mark();
      const c = new Raw(server.port);
      try {
        c.send(...bytes());
        await c.closedSoon(name);
        const records = parseRecords(c.received).records;
        assert.deepEqual(
          records.map((r) => [r.type, ...r.fragment]),
          [[21, 2, alert]],
          `expected only a fatal ${alertName(alert)}, got ${records.map((r) => (r.type === 21 ? alertName(r.fragment[1]) : `record ${r.type}`)).join(', ') || 'nothing'}`,
        );
        await serverSent(mark, alert);
      } finally {
        c.destroy();
      }
    });
  }

  describe('the second ClientHello after a HelloRetryRequest', () => {
    const noShare = () => clientHelloRecord({ extensions: [...noExt(51), ext.keyShare([])] });
    const cases: [string, () => Uint8Array, A][] = [
      ['an empty key_share list again: illegal_parameter (RFC 8446 4.2.8), not decode_error', noShare, A.illegal_parameter],
      [
        'a share for a group other than the one asked for (P-256 for x25519): illegal_parameter',
        () => clientHelloRecord({ extensions: [...noExt(51), ext.keyShare([{ group: NamedGroup.secp256r1, key: generateKeyExchange(NamedGroup.secp256r1).publicKey }])] }),
        A.illegal_parameter,
      ],
      ['a TLS 1.2 hello (no supported_versions, no key_share): missing_extension (RFC 8446 9.2)', () => clientHelloRecord(tls12Only), A.missing_extension],
    ];
    for (const [name, second, alert] of cases) {
      it(name, async () => {
        const mark = server.mark();
        const c = new Raw(server.port);
        try {
          // No share at all: the server asks for one (x25519, its first group) with a HelloRetryRequest.
          c.send(noShare());
          await waitUntil(() => parseRecords(c.received).records.some((r) => r.type === 22), 'the HelloRetryRequest');
          const hrr = parseServerHello(parseRecords(c.received).records[0].fragment.subarray(4));
          assert.deepEqual(hrr.random, HELLO_RETRY_RANDOM);
          assert.deepEqual(hrr.keyShareGroups, [NamedGroup.x25519]);
          c.send(second());
          await c.closedSoon(name);
          const last = parseRecords(c.received).records.at(-1)!;
          assert.deepEqual([last.type, ...last.fragment], [21, 2, alert], `got ${last.type === 21 ? alertName(last.fragment[1]) : `record ${last.type}`}`);
          await serverSent(mark, alert);
        } finally {
          c.destroy();
        }
      });
    }
  });

  it('close_notify between two fragments of the ClientHello: the server closes at once, sending nothing', async () => {
    const c = new Raw(server.port);
    try {
      c.send(record(22, chMessage().subarray(0, 10), 0x0301), record(21, Uint8Array.of(1, 0)));
      await c.closedSoon('a close_notify in the handshake');
      assert.equal(c.received.length, 0);
    } finally {
      c.destroy();
    }
  });

  it('a ClientHello record cut short, then the client half-closes: the server closes at once, sending nothing', async () => {
    for (const cut of [2, 50]) {
      const c = new Raw(server.port);
      try {
        c.send(Buffer.from(clientHelloRecord()).subarray(0, cut));
        c.socket.end();
        await c.closedSoon(`a record cut after ${cut} bytes`);
        assert.equal(c.received.length, 0);
      } finally {
        c.destroy();
      }
    }
  });

  it('accepted as they are: GREASE in every list, legacy_version 0x0305 with no supported_versions (TLS 1.2 answer), user_canceled between fragments', async () => {
    const share = x25519Share();
    const hellos: [Uint8Array[], number][] = [
      [
        [
          clientHelloRecord({
            cipherSuites: [0x0a0a, 0x1301],
            extensions: [
              ext.raw(0x2a2a, []),
              ext.supportedGroups([0x3a3a, 29]),
              ext.signatureAlgorithms([0x4a4a, 0x0403]),
              ext.supportedVersions([0x5a5a, 0x0304]),
              ext.keyShare([
                { group: 0x3a3a, key: Uint8Array.of(0) },
                { group: 29, key: share.publicKey },
              ]),
            ],
          }),
        ],
        0x0304,
      ],
      [[clientHelloRecord({ ...tls12Only, legacyVersion: 0x0305 })], 0x0303],
      [[record(22, chMessage().subarray(0, 10), 0x0301), record(21, Uint8Array.of(1, A.user_canceled)), record(22, chMessage().subarray(10))], 0x0304],
    ];
    for (const [bytes, version] of hellos) {
      const c = new Raw(server.port);
      try {
        c.send(...bytes);
        await waitUntil(() => parseRecords(c.received).records.length > 0, 'a ServerHello');
        const sh = parseRecords(c.received).records[0];
        assert.equal(sh.type, 22, `got ${sh.type === 21 ? alertName(sh.fragment[1]) : sh.type}`);
        // ServerHello: legacy_version 0x0303; TLS 1.3 is said in supported_versions (0x002b 0x0002 0x0304).
        const body = sh.fragment.subarray(4);
        const says13 = body.includes(Buffer.of(0x00, 0x2b, 0x00, 0x02, 0x03, 0x04));
        assert.equal(says13 ? 0x0304 : 0x0303, version);
      } finally {
        c.destroy();
      }
    }
  });
});

/**
 * A TLS 1.3 handshake with MiniClient over a raw socket, then `after`; returns the alerts it
 * decrypts and the data echoed. With `beforeFinished`, `after` replaces the client's Finished.
 */
async function afterHandshake13(
  after: (c: MiniClient) => Uint8Array[],
  settleMs = 0,
  beforeFinished = false,
): Promise<{ alerts: number[]; data: string; closed: boolean; mark: ReturnType<EchoServer['mark']> }> {
  const mark = server.mark();
  const mini = new MiniClient({}, NamedGroup.x25519);
  const raw = new Raw(server.port);
  try {
    raw.send(mini.clientHelloRecord());
    await waitUntil(() => {
      mini.receive([raw.fresh()]);
      return mini.serverFinished;
    }, 'the server flight');
    if (!beforeFinished) {
      raw.send(mini.finishedRecord());
      await waitUntil(() => server.since(mark).sessions.length === 1, 'the server to complete the handshake');
      mini.receive([raw.fresh()]);
    }
    mini.alerts = [];
    mini.appData = [];
    raw.send(...after(mini));
    if (settleMs > 0) await new Promise((r) => setTimeout(r, settleMs));
    else await raw.closedSoon('the probe');
    mini.receive([raw.fresh()]);
    return { alerts: mini.alerts, data: Buffer.concat(mini.appData).toString(), closed: raw.closed, mark };
  } finally {
    raw.destroy();
  }
}

describe('after a TLS 1.3 handshake: the alert under the application key, then close', () => {
  const cases: [string, (c: MiniClient) => Uint8Array[], A][] = [
    ['a protected record of zero bytes (shorter than the tag): bad_record_mac', () => [Buffer.of(23, 3, 3, 0, 0)], A.bad_record_mac],
    ['a protected record of five bytes: bad_record_mac', () => [Buffer.of(23, 3, 3, 0, 5, 1, 2, 3, 4, 5)], A.bad_record_mac],
    ['a KeyUpdate with request_update 2: illegal_parameter (RFC 8446 4.6.3)', (c) => [c.protect(22, handshakeMsg(24, Uint8Array.of(2)))], A.illegal_parameter],
    ['a KeyUpdate of two bytes: decode_error', (c) => [c.protect(22, handshakeMsg(24, Uint8Array.of(0, 0)))], A.decode_error],
    ['a post-handshake message of unknown type 0x7f: unexpected_message', (c) => [c.protect(22, handshakeMsg(0x7f as HandshakeType, new Uint8Array(3)))], A.unexpected_message],
    ['an unsolicited client Certificate: unexpected_message', (c) => [c.protect(22, handshakeMsg(11, Uint8Array.of(0, 0, 0, 0)))], A.unexpected_message],
    ['a plaintext close_notify (anyone on the path could forge it): unexpected_message', () => [record(21, Uint8Array.of(1, 0))], A.unexpected_message],
    ['a protected change_cipher_spec: unexpected_message (RFC 8446 5)', (c) => [c.protect(20, Uint8Array.of(1))], A.unexpected_message],
    ['application data between two fragments of a KeyUpdate: unexpected_message (RFC 8446 5.1)', (c) => [c.protect(22, handshakeMsg(24, Uint8Array.of(0)).subarray(0, 2)), c.protect(23, Buffer.from('x'))], A.unexpected_message],
    ['a record of 2^14+256+1 bytes: record_overflow (RFC 8446 5.2)', (c) => [c.protect(23, new Uint8Array(16384), 256)], A.record_overflow],
    ['a flood of 1000 empty application data records: unexpected_message', (c) => Array.from({ length: 1000 }, () => c.protect(23, new Uint8Array(0))), A.unexpected_message],
  ];
  for (const [name, after, alert] of cases) {
    it(name, async () => {
      const r = await afterHandshake13(after);
      assert.deepEqual(r.alerts.map((a) => alertName(a)), [alertName(alert)]);
      await serverSent(r.mark, alert);
    });
  }

  it('the refused plaintext alert is named in the server\'s error', async () => {
    const r = await afterHandshake13(() => [record(21, Uint8Array.of(1, A.close_notify))]);
    await waitUntil(() => server.since(r.mark).sessions.some((x) => /plaintext alert close_notify after the handshake/.test(x.error?.message ?? '')), 'the error naming the alert');
  });

  it('kept open: empty application data, a KeyUpdate asking for ours, a warning user_canceled, maximal padding; data still echoes', async () => {
    const r = await afterHandshake13(
      (c) => [c.protect(23, new Uint8Array(0)), c.keyUpdateRecord(true), c.protect(21, Uint8Array.of(1, A.user_canceled)), c.protect(23, Buffer.from('still here'), 16384 - 'still here'.length)],
      300,
    );
    assert.deepEqual(r.alerts, []);
    assert.equal(r.closed, false);
    assert.equal(r.data, 'still here');
  });
});

describe('in the TLS 1.3 handshake, in place of the client Finished: the alert, then close', () => {
  const finished = (length: number) => (c: MiniClient) => [c.protectUnderHandshakeKey(22, handshakeMsg(20, new Uint8Array(length)))];
  const cases: [string, (c: MiniClient) => Uint8Array[], A][] = [
    ['a Finished of 31 bytes (SHA-256 suite): decode_error', finished(31), A.decode_error],
    ['a Finished that does not verify: decrypt_error (RFC 8446 4.4.4)', finished(32), A.decrypt_error],
    ['application data under the handshake key: unexpected_message', (c) => [c.protectUnderHandshakeKey(23, Buffer.from('early'))], A.unexpected_message],
    ['a KeyUpdate before Finished: unexpected_message', (c) => [c.protectUnderHandshakeKey(22, handshakeMsg(24, Uint8Array.of(0)))], A.unexpected_message],
    ['an unrequested client Certificate: unexpected_message', (c) => [c.protectUnderHandshakeKey(22, handshakeMsg(11, Uint8Array.of(0, 0, 0, 0)))], A.unexpected_message],
  ];
  for (const [name, probe, alert] of cases) {
    it(name, async () => {
      const r = await afterHandshake13(probe, 0, true);
      assert.deepEqual(r.alerts.map((a) => alertName(a)), [alertName(alert)]);
      await serverSent(r.mark, alert);
    });
  }

  it('a plaintext alert from a client that could not read the server flight: logged as received, closed, nothing sent', async () => {
    const r = await afterHandshake13(() => [record(21, Uint8Array.of(2, A.bad_certificate))], 0, true);
    assert.deepEqual(r.alerts, []);
    await waitUntil(() => server.since(r.mark).errors.some((e) => e.alertReceived === A.bad_certificate), 'the server to report the client alert');
  });
});

/** A TLS 1.2 handshake with MiniClient12 up to `flight`, which replaces the client's second flight when given. */
async function tls12(probe: { flight?: (f: ReturnType<MiniClient12['secondFlight']>) => Uint8Array[]; after?: (c: MiniClient12) => Uint8Array[] }) {
  const mark = server.mark();
  const mini = new MiniClient12();
  const raw = new Raw(server.port);
  try {
    raw.send(mini.clientHelloRecord());
    await waitUntil(() => {
      mini.receive([raw.fresh()]);
      return mini.flight?.done === true;
    }, 'the TLS 1.2 server flight');
    const f = mini.secondFlight();
    if (probe.flight) {
      raw.send(...probe.flight(f));
    } else {
      raw.send(f.cke, f.ccs, f.finished);
      await waitUntil(() => {
        mini.receive([raw.fresh()]);
        return mini.serverFinishedOk !== undefined;
      }, 'the server Finished');
      mini.alerts = [];
      raw.send(...probe.after!(mini));
    }
    await new Promise((r) => setTimeout(r, 300));
    mini.receive([raw.fresh()]);
    return { alerts: mini.alerts, data: Buffer.concat(mini.appData).toString(), closed: raw.closed, mark };
  } finally {
    raw.destroy();
  }
}

describe('TLS 1.2 handshake and after', () => {
  const cases: [string, Parameters<typeof tls12>[0], A][] = [
    ['ChangeCipherSpec before ClientKeyExchange: unexpected_message', { flight: (f) => [f.ccs] }, A.unexpected_message],
    ['Finished before ChangeCipherSpec: unexpected_message', { flight: (f) => [f.cke, f.finished] }, A.unexpected_message],
    ['application data before Finished: unexpected_message', { flight: (f) => [f.cke, record(23, Buffer.from('x'))] }, A.unexpected_message],
    ['ChangeCipherSpec of value 2: unexpected_message', { flight: (f) => [f.cke, record(20, Uint8Array.of(2))] }, A.unexpected_message],
    ['a KeyUpdate (TLS 1.3 only): unexpected_message', { after: (c) => [c.protect(22, handshakeMsg(24, Uint8Array.of(0)))] }, A.unexpected_message],
    ['a HelloRequest from the client: unexpected_message', { after: (c) => [c.protect(22, handshakeMsg(0, new Uint8Array(0)))] }, A.unexpected_message],
  ];
  for (const [name, probe, alert] of cases) {
    it(name, async () => {
      const r = await tls12(probe);
      assert.deepEqual(r.alerts, [{ level: 2, desc: alert }], JSON.stringify(r.alerts));
      assert.equal(r.closed, true);
      await serverSent(r.mark, alert);
    });
  }

  it('a renegotiating ClientHello gets a warning no_renegotiation and the connection goes on (RFC 5746 4.4)', async () => {
    const r = await tls12({ after: (c) => [c.protect(22, c.chRaw), c.protect(23, Buffer.from('after renegotiation'))] });
    assert.deepEqual(r.alerts, [{ level: 1, desc: A.no_renegotiation }]);
    assert.equal(r.closed, false);
    assert.equal(r.data, 'after renegotiation');
  });
});

describe('a P-256 key share that is not on the curve, on the wire', () => {
  it('illegal_parameter before any ServerHello', async () => {
    const mark = server.mark();
    const bad = Buffer.from(generateKeyExchange(NamedGroup.secp256r1).publicKey);
    bad[bad.length - 1] ^= 1;
    const c = new Raw(server.port);
    try {
      c.send(clientHelloRecord({ extensions: [...noExt(51).filter((e) => e.type !== 10), ext.supportedGroups([23]), ext.keyShare([{ group: 23, key: bad }])] }));
      await c.closedSoon('a bad P-256 point');
      assert.deepEqual(parseRecords(c.received).records.map((r) => [r.type, ...r.fragment]), [[21, 2, A.illegal_parameter]]);
      await serverSent(mark, A.illegal_parameter);
    } finally {
      c.destroy();
    }
  });
});
