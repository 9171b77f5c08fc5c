// TLS 1.2 server engine, sans-IO: full handshakes per key exchange, suite and group with a
// minimal client, and every malformed or unexpected input answered by its alert.
import assert from 'node:assert/strict';
import { createPrivateKey, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';
import { KeyOperationError, type KeyOperations, type PskOperations } from '../../src/keys/keyOperations.js';
import { LocalKey } from '../../src/keys/localKey.js';
import { localPsk } from '../../src/keys/localPsk.js';
import { CipherSuite } from '../../src/tls/crypto/cipherSuites.js';
import { NamedGroup } from '../../src/tls/crypto/groups.js';
import { cryptoParams, schemeInfo } from '../../src/tls/crypto/signatureSchemes.js';
import { certifiedKey } from '../../src/tls/engine/certificates.js';
import { resolveServerConfig, type ServerConfigInput } from '../../src/tls/engine/config.js';
import type { EngineEvent } from '../../src/tls/engine/events.js';
import { TlsServerConnection } from '../../src/tls/engine/serverConnection.js';
import { AlertDescription as A } from '../../src/tls/wire/alerts.js';
import { handshakeMsg, record } from '../support/clientHelloBuilder.js';
import { MiniClient12, type MiniClient12Options } from '../support/miniClient12.js';
import { heldElsewhere } from '../support/heldElsewhere.js';
import { getPki, type KeyType } from '../support/pki.js';

const C = CipherSuite;
const SENTINEL = Buffer.from('444f574e47524401', 'hex');

interface Setup {
  conn: TlsServerConnection;
  privateKey?: KeyObject;
}

async function setup(keyType: KeyType | null, overrides: Partial<ServerConfigInput> = {}, holder: (k: LocalKey) => KeyOperations = (k) => k): Promise<Setup> {
  const pki = await getPki();
  if (keyType === null) return { conn: new TlsServerConnection(resolveServerConfig({ certificates: [], ...overrides })) };
  const files = pki.server[keyType];
  const privateKey = createPrivateKey(files.keyPem);
  const config = resolveServerConfig({ certificates: [certifiedKey(files.chainPem, holder(new LocalKey(privateKey)))], ...overrides });
  return { conn: new TlsServerConnection(config), privateKey };
}

interface Driven {
  out: Buffer[];
  events: EngineEvent[];
  premasterAnswers: Uint8Array[];
}

/** Feeds records and answers every key operation (sign here; decrypt and PSK through the real holders) until quiet. */
async function drive(
  s: Setup,
  input: Uint8Array[],
  o: { tamperSignature?: boolean; failDecrypt?: Error; psk?: PskOperations } = {},
): Promise<Driven> {
  const d: Driven = { out: [], events: [], premasterAnswers: [] };
  for (const chunk of input) s.conn.receive(chunk);
  for (;;) {
    d.out.push(...s.conn.takeOutput().map((b) => Buffer.from(b)));
    const ev = s.conn.takeEvents();
    if (ev.length === 0) break;
    d.events.push(...ev);
    for (const e of ev) {
      const ac = new AbortController();
      if (e.type !== 'keyOperation') continue;
      if (e.request.kind === 'sign') {
        const p = cryptoParams(schemeInfo(e.request.scheme)!, s.privateKey!);
        const sig = cryptoSign(p.algorithm, e.request.message, p.key);
        if (o.tamperSignature) sig[sig.length - 1] ^= 1;
        s.conn.completeKeyOperation(e.request.id, sig);
      } else if (e.request.kind === 'decryptPremaster') {
        if (o.failDecrypt) {
          s.conn.failKeyOperation(e.request.id, o.failDecrypt);
          continue;
        }
        const pm = await e.request.key.decryptPremaster(e.request.ciphertext, e.request.clientVersion, e.request.context, ac.signal);
        d.premasterAnswers.push(pm);
        s.conn.completeKeyOperation(e.request.id, pm);
      } else if (e.request.kind === 'pskMasterSecret') {
        try {
          s.conn.completeKeyOperation(e.request.id, await e.request.holder.tls12MasterSecret(e.request.request, e.request.context, ac.signal));
        } catch (err) {
          s.conn.failKeyOperation(e.request.id, err as Error);
        }
      }
    }
  }
  return d;
}

function alertOf(d: Driven): number | undefined {
  for (const e of d.events) if (e.type === 'error') return e.alertSent;
  return undefined;
}

/** Runs a whole handshake; returns the client and what the last step produced. */
async function handshake(s: Setup, copts: MiniClient12Options, flight: Parameters<MiniClient12['secondFlight']>[0] = {}) {
  const client = new MiniClient12(copts);
  const first = await drive(s, [client.clientHelloRecord()]);
  const firstAlert = alertOf(first);
  if (firstAlert !== undefined) return { client, first, second: undefined, alert: firstAlert };
  client.receive(first.out);
  const f = client.secondFlight(flight);
  const second = await drive(s, [f.cke, f.ccs, f.finished]);
  client.receive(second.out);
  return { client, first, second, alert: alertOf(second) };
}

async function assertEcho(s: Setup, client: MiniClient12): Promise<void> {
  const d = await drive(s, [client.protect(23, Buffer.from('ping'))]);
  const data = d.events.find((e) => e.type === 'data');
  assert.ok(data && data.type === 'data');
  assert.equal(Buffer.from(data.data).toString(), 'ping');
  s.conn.write(Buffer.from('pong'));
  client.receive(s.conn.takeOutput());
  assert.equal(Buffer.concat(client.appData).toString(), 'pong');
}

describe('TLS 1.2 ECDHE handshakes', () => {
  const cases: [KeyType, number, number][] = [
    ['ecdsa-p256', C.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, NamedGroup.x25519],
    ['ecdsa-p256', C.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, NamedGroup.secp256r1],
    ['ecdsa-p384', C.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, NamedGroup.secp384r1],
    ['ed25519', C.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, NamedGroup.x25519],
    ['rsa-2048', C.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, NamedGroup.secp256r1],
    ['rsa-2048', C.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, NamedGroup.x25519],
    ['rsa-2048', C.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, NamedGroup.secp384r1],
  ];
  for (const [keyType, suite, group] of cases) {
    it(`${keyType} 0x${suite.toString(16)} group ${group}`, async () => {
      const s = await setup(keyType);
      // RFC 8422 5.1: the ECDSA certificate's curve must be among the client's groups too.
      const certCurve = keyType === 'ecdsa-p256' ? 23 : keyType === 'ecdsa-p384' ? 24 : group;
      const { client, alert } = await handshake(s, { suites: [suite], groups: [...new Set([group, certCurve])], ecPointFormats: [0] });
      assert.equal(alert, undefined);
      const f = client.flight!;
      assert.equal(f.suite.suite, suite);
      assert.equal(f.skeGroup, group);
      assert.equal(f.signatureValid, true);
      assert.equal(client.serverFinishedOk, true);
      assert.ok(s.conn.isConnected);
      assert.equal(s.conn.info.version, 'TLSv1.2');
      assert.equal(s.conn.info.group, group);
      // Sessions are never resumed: empty session id; EMS, renegotiation_info, ec_point_formats echoed.
      assert.equal(f.sessionId.length, 0);
      assert.deepEqual(f.extensions.get(0xff01), Buffer.of(0));
      assert.deepEqual(f.extensions.get(23), Buffer.alloc(0));
      assert.deepEqual(f.extensions.get(11), Buffer.of(1, 0));
      assert.equal(s.conn.info.extendedMasterSecret, true);
      // 1.3 is enabled by default: the downgrade sentinel marks this 1.2 ServerHello.
      assert.deepEqual(f.serverRandom.subarray(24), SENTINEL);
      await assertEcho(s, client);
    });
  }

  it('RSA key: PSS when offered, PKCS#1 v1.5 when that is all the client takes', async () => {
    const s1 = await setup('rsa-2048');
    const r1 = await handshake(s1, { suites: [C.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256] });
    assert.equal(r1.client.flight!.scheme, 0x0804);
    const s2 = await setup('rsa-2048');
    const r2 = await handshake(s2, { suites: [C.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256], sigAlgs: [0x0401] });
    assert.equal(r2.client.flight!.scheme, 0x0401);
    assert.equal(r2.client.flight!.signatureValid, true);
    assert.equal(r2.client.serverFinishedOk, true);
  });

  it('without extended master secret (not required)', async () => {
    const s = await setup('ecdsa-p256');
    const { client, alert } = await handshake(s, { ems: false });
    assert.equal(alert, undefined);
    assert.equal(client.flight!.extensions.has(23), false);
    assert.equal(client.serverFinishedOk, true);
    assert.equal(s.conn.info.extendedMasterSecret, false);
  });

  it('without supported_groups: no ECDHE for a hello with other extensions (no curve to offer), P-256 for one without any', async () => {
    const s = await setup('ecdsa-p256');
    const { alert, first } = await handshake(s, { groups: null });
    assert.equal(alert, A.handshake_failure);
    const error = first.events.find((e) => e.type === 'error');
    assert.match(error?.type === 'error' ? error.error.message : '', /supported_groups is absent/);
    // A bare hello (RFC 4492's extension-less client): ECDHE_PSK on P-256.
    const psk = Buffer.alloc(16, 3);
    const p = await setup(null, { psk: { holder: localPsk(new Map([['bare', psk]])) } });
    const bare = await handshake(p, { suites: [C.TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256], groups: null, sigAlgs: null, ems: false, renegotiationInfo: null }, { psk: { identity: 'bare', key: psk } });
    assert.equal(bare.alert, undefined);
    assert.equal(p.conn.info.group, NamedGroup.secp256r1);
    assert.equal(bare.client.serverFinishedOk, true);
  });

  it('maxVersion TLSv1.2: no downgrade sentinel', async () => {
    const s = await setup('ecdsa-p256', { maxVersion: 'TLSv1.2' });
    const { client } = await handshake(s, {});
    assert.notDeepEqual(client.flight!.serverRandom.subarray(24), SENTINEL);
    assert.equal(client.serverFinishedOk, true);
  });

  it('a client that offers 1.3 and 1.2 gets 1.3 by default and 1.2 with maxVersion TLSv1.2', async () => {
    const s = await setup('ecdsa-p256');
    const c = new MiniClient12({ offer13: true, suites: [0x1301, 0xc02b] });
    await drive(s, [c.clientHelloRecord()]);
    assert.equal(s.conn.info.version, 'TLSv1.3');
    const s2 = await setup('ecdsa-p256', { maxVersion: 'TLSv1.2' });
    const r = await handshake(s2, { offer13: true, suites: [0x1301, 0xc02b] });
    assert.equal(r.client.serverFinishedOk, true);
    assert.equal(s2.conn.info.version, 'TLSv1.2');
  });

  it('empty renegotiation SCSV instead of the extension: renegotiation_info echoed', async () => {
    const s = await setup('ecdsa-p256');
    const { client } = await handshake(s, { renegotiationInfo: null, suites: [0xc02b, 0x00ff] });
    assert.deepEqual(client.flight!.extensions.get(0xff01), Buffer.of(0));
    const s2 = await setup('ecdsa-p256');
    const r2 = await handshake(s2, { renegotiationInfo: null });
    assert.equal(r2.client.flight!.extensions.has(0xff01), false);
  });

  it('SNI and ALPN', async () => {
    const s = await setup('ecdsa-p256', { alpnProtocols: ['h2', 'http/1.1'] });
    const { client } = await handshake(s, { serverName: 'localhost', alpn: ['http/1.1', 'h2'] });
    assert.equal(s.conn.info.alpnProtocol, 'h2');
    assert.equal(s.conn.info.serverName, 'localhost');
    assert.deepEqual(client.flight!.extensions.get(0), Buffer.alloc(0));
    assert.equal(client.serverFinishedOk, true);
  });

  it('ignores session_ticket and a session id: no ticket, empty session id', async () => {
    const s = await setup('ecdsa-p256');
    const { client } = await handshake(s, { extra: [{ type: 35, data: new Uint8Array(0) }] });
    assert.equal(client.flight!.extensions.has(35), false);
    assert.equal(client.messages.some((m) => m.type === 4), false);
    assert.equal(client.serverFinishedOk, true);
  });

  it('exporter (RFC 5705) matches on both sides of a 1.2 connection (with and without context)', async () => {
    const s = await setup('ecdsa-p256');
    await handshake(s, {});
    const a = s.conn.exportKeyingMaterial('EXPERIMENTAL test', undefined, 32);
    const b = s.conn.exportKeyingMaterial('EXPERIMENTAL test', new Uint8Array(0), 32);
    assert.equal(a.length, 32);
    assert.notDeepEqual(a, b);
  });
});

describe('TLS 1.2 alerts', () => {
  it('no signature_algorithms (SHA-1 implied): handshake_failure', async () => {
    const s = await setup('ecdsa-p256');
    assert.equal((await handshake(s, { sigAlgs: null })).alert, A.handshake_failure);
  });

  it('ec_point_formats without uncompressed: illegal_parameter', async () => {
    const s = await setup('ecdsa-p256');
    assert.equal((await handshake(s, { ecPointFormats: [1, 2] })).alert, A.illegal_parameter);
  });

  it('non-empty renegotiation_info on the initial handshake: handshake_failure', async () => {
    const s = await setup('ecdsa-p256');
    assert.equal((await handshake(s, { renegotiationInfo: Buffer.alloc(12, 1) })).alert, A.handshake_failure);
  });

  it('requireExtendedMasterSecret and a client without it: handshake_failure', async () => {
    const s = await setup('ecdsa-p256', { requireExtendedMasterSecret: true });
    assert.equal((await handshake(s, { ems: false })).alert, A.handshake_failure);
  });

  it('minVersion TLSv1.3 refuses 1.2; TLS 1.1 and 1.0 get protocol_version', async () => {
    const s = await setup('ecdsa-p256', { minVersion: 'TLSv1.3' });
    assert.equal((await handshake(s, {})).alert, A.protocol_version);
    for (const v of [0x0302, 0x0301, 0x0300]) {
      const s2 = await setup('ecdsa-p256');
      assert.equal((await handshake(s2, { clientVersion: v })).alert, A.protocol_version, `version ${v.toString(16)}`);
    }
  });

  it('TLS_FALLBACK_SCSV while 1.3 is enabled: inappropriate_fallback', async () => {
    const s = await setup('ecdsa-p256');
    assert.equal((await handshake(s, { suites: [0xc02b, 0x5600] })).alert, A.inappropriate_fallback);
  });

  it('no suite in common (ECDHE_RSA only, ECDSA certificate): handshake_failure', async () => {
    const s = await setup('ecdsa-p256');
    assert.equal((await handshake(s, { suites: [0xc02f] })).alert, A.handshake_failure);
  });

  it('an ECDSA certificate on a curve the client does not list: handshake_failure', async () => {
    const s = await setup('ecdsa-p256');
    assert.equal((await handshake(s, { groups: [29, 24] })).alert, A.handshake_failure);
  });

  it('no group in common: handshake_failure', async () => {
    const s = await setup('ecdsa-p256');
    assert.equal((await handshake(s, { groups: [25] })).alert, A.handshake_failure);
  });

  it('a signature that does not verify is never sent: internal_error', async () => {
    // A key holder other than an in-process LocalKey (whose node:crypto signatures are not checked again).
    const s = await setup('ecdsa-p256', {}, heldElsewhere);
    const c = new MiniClient12({});
    const d = await drive(s, [c.clientHelloRecord()], { tamperSignature: true });
    assert.equal(alertOf(d), A.internal_error);
    c.receive(d.out);
    assert.equal(c.flight, null, 'nothing but the alert was sent');
  });

  async function afterFlight(keyType: KeyType = 'ecdsa-p256') {
    const s = await setup(keyType);
    const c = new MiniClient12({});
    c.receive((await drive(s, [c.clientHelloRecord()])).out);
    return { s, c, f: c.secondFlight({}) };
  }

  it('ChangeCipherSpec before ClientKeyExchange: unexpected_message', async () => {
    const { s, f } = await afterFlight();
    assert.equal(alertOf(await drive(s, [f.ccs])), A.unexpected_message);
  });

  it('Finished before ChangeCipherSpec: unexpected_message', async () => {
    const { s, f } = await afterFlight();
    assert.equal(alertOf(await drive(s, [f.cke, record(22, handshakeMsg(20, Buffer.alloc(12)))])), A.unexpected_message);
  });

  it('a ChangeCipherSpec that is not the single byte 1 (value 2, two bytes, empty): unexpected_message', async () => {
    for (const body of [Uint8Array.of(2), Uint8Array.of(1, 1), new Uint8Array(0)]) {
      const { s, f } = await afterFlight();
      assert.equal(alertOf(await drive(s, [f.cke, record(20, body)])), A.unexpected_message, `CCS ${Buffer.from(body).toString('hex')}`);
    }
  });

  it('a second ClientKeyExchange: unexpected_message', async () => {
    const { s, f } = await afterFlight();
    assert.equal(alertOf(await drive(s, [f.cke, f.cke])), A.unexpected_message);
  });

  it('a bad Finished: decrypt_error', async () => {
    const s = await setup('ecdsa-p256');
    assert.equal((await handshake(s, {}, { corruptFinished: true })).alert, A.decrypt_error);
  });

  it('a ClientKeyExchange point off the curve: illegal_parameter; empty or with trailing bytes: decode_error', async () => {
    const s = await setup('ecdsa-p256');
    const bad = Buffer.alloc(65, 1);
    bad[0] = 4;
    assert.equal((await handshake(s, { groups: [23] }, { point: bad })).alert, A.illegal_parameter);
    for (const body of [Buffer.alloc(0), Buffer.concat([Buffer.of(32), Buffer.alloc(32, 9), Buffer.of(0)])]) {
      const { s: s2 } = await afterFlight();
      assert.equal(alertOf(await drive(s2, [record(22, handshakeMsg(16, body))])), A.decode_error);
    }
  });

  it('a ClientHello after the handshake: warning no_renegotiation, the connection stays', async () => {
    const s = await setup('ecdsa-p256');
    const { client } = await handshake(s, {});
    const again = new MiniClient12({});
    const d = await drive(s, [client.protect(22, again.chRaw)]);
    client.receive(d.out);
    assert.deepEqual(client.alerts, [{ level: 1, desc: A.no_renegotiation }]);
    assert.ok(s.conn.isConnected);
    await assertEcho(s, client);
  });

  it('KeyUpdate is refused on a 1.2 connection', async () => {
    const s = await setup('ecdsa-p256');
    await handshake(s, {});
    assert.throws(() => s.conn.keyUpdate(false), /TLS 1.3/);
  });
});

describe('TLS 1.2 RSA key exchange (key holder decrypts)', () => {
  const suites = [C.TLS_RSA_WITH_AES_128_GCM_SHA256, C.TLS_RSA_WITH_AES_256_GCM_SHA384];

  it('is off by default', async () => {
    const s = await setup('rsa-2048');
    assert.equal((await handshake(s, { suites })).alert, A.handshake_failure);
  });

  for (const suite of suites) {
    it(`completes with rsaKeyExchange: true (0x${suite.toString(16)})`, async () => {
      const s = await setup('rsa-2048', { rsaKeyExchange: true });
      const { client, alert, second } = await handshake(s, { suites: [suite] });
      assert.equal(alert, undefined);
      assert.equal(client.serverFinishedOk, true);
      assert.equal(second!.premasterAnswers.length, 1);
      await assertEcho(s, client);
    });
  }

  it('bad padding, bad length, bad version all fail exactly like a premaster mismatch; the holder answers 48 bytes each time', async () => {
    const pki = await getPki();
    const { publicEncrypt, constants, randomBytes, X509Certificate } = await import('node:crypto');
    const pub = new X509Certificate(pki.server['rsa-2048'].certPem).publicKey;
    const k = 256;
    const rawEncrypt = (em: Buffer) => publicEncrypt({ key: pub, padding: constants.RSA_NO_PADDING }, em);
    const pkcs1 = (m: Buffer) => {
      const em = Buffer.alloc(k);
      em[1] = 2;
      const ps = Buffer.from(randomBytes(k - 3 - m.length).map((b) => b || 1));
      ps.copy(em, 2);
      m.copy(em, k - m.length);
      return em;
    };
    const premaster = () => Buffer.concat([Buffer.of(3, 3), randomBytes(46)]);
    const cases: Record<string, () => { ciphertext?: Buffer; premaster?: Buffer }> = {
      'wrong padding (block type 1)': () => {
        const pm = premaster();
        const em = pkcs1(pm);
        em[1] = 1;
        return { ciphertext: rawEncrypt(em), premaster: pm };
      },
      'wrong premaster length (47 bytes)': () => {
        const pm = premaster();
        return { ciphertext: rawEncrypt(pkcs1(pm.subarray(0, 47))), premaster: pm };
      },
      'wrong version (3,1)': () => {
        const pm = premaster();
        pm[1] = 1;
        return { ciphertext: rawEncrypt(pkcs1(pm)), premaster: pm };
      },
      'correct ciphertext, client keys from another premaster': () => ({ ciphertext: rawEncrypt(pkcs1(premaster())), premaster: premaster() }),
    };
    const outcomes: string[] = [];
    for (const [name, make] of Object.entries(cases)) {
      const s = await setup('rsa-2048', { rsaKeyExchange: true });
      const r = await handshake(s, { suites: [suites[0]] }, make());
      const second = r.second!;
      assert.equal(second.premasterAnswers.length, 1, name);
      assert.equal(second.premasterAnswers[0].length, 48, name);
      const errors = second.events.filter((e) => e.type === 'error');
      assert.equal(errors.length, 1, name);
      // Same alert, same output (just the alert record), at the Finished record.
      outcomes.push(`${alertOf(second)}:${second.out.map((b) => b.length).join(',')}`);
    }
    assert.deepEqual(new Set(outcomes), new Set([`${A.bad_record_mac}:7`]), outcomes.join(' '));
    // And the correct ciphertext with a matching premaster completes.
    const s = await setup('rsa-2048', { rsaKeyExchange: true });
    const pm = premaster();
    const ok = await handshake(s, { suites: [suites[0]] }, { ciphertext: rawEncrypt(pkcs1(pm)), premaster: pm });
    assert.equal(ok.client.serverFinishedOk, true);
  });

  it('a key holder that rejects the decryption fails the same way; an unavailable one is internal_error', async () => {
    const s = await setup('rsa-2048', { rsaKeyExchange: true });
    const c = new MiniClient12({ suites: [suites[0]] });
    c.receive((await drive(s, [c.clientHelloRecord()])).out);
    const f = c.secondFlight({});
    const d = await drive(s, [f.cke, f.ccs, f.finished], { failDecrypt: new KeyOperationError('internal', 'padding check failed') });
    assert.equal(alertOf(d), A.bad_record_mac);
    const s2 = await setup('rsa-2048', { rsaKeyExchange: true });
    const c2 = new MiniClient12({ suites: [suites[0]] });
    c2.receive((await drive(s2, [c2.clientHelloRecord()])).out);
    const f2 = c2.secondFlight({});
    assert.equal(alertOf(await drive(s2, [f2.cke, f2.ccs, f2.finished], { failDecrypt: new KeyOperationError('unavailable', 'keyd down') })), A.internal_error);
  });
});

describe('TLS 1.2 PSK (PSK holder computes the master secret)', () => {
  const psk = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');
  const holder = localPsk(new Map([['client1', psk]]));
  const psuites = [C.TLS_PSK_WITH_AES_128_GCM_SHA256, C.TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256, C.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256];

  for (const suite of psuites) {
    for (const ems of [true, false]) {
      it(`0x${suite.toString(16)} ${ems ? 'with' : 'without'} EMS, no certificate`, async () => {
        const s = await setup(null, { psk: { holder, identityHint: 'hint' } });
        const { client, alert } = await handshake(s, { suites: [suite], ems }, { psk: { identity: 'client1', key: psk } });
        assert.equal(alert, undefined);
        assert.equal(client.serverFinishedOk, true);
        assert.equal(client.flight!.pskHint?.toString(), 'hint');
        assert.equal(client.flight!.certificates.length, 0);
        assert.equal(s.conn.info.pskIdentity, 'client1');
        await assertEcho(s, client);
      });
    }
  }

  it('plain PSK without a hint sends no ServerKeyExchange', async () => {
    const s = await setup(null, { psk: { holder } });
    const { client } = await handshake(s, { suites: [psuites[0]] }, { psk: { identity: 'client1', key: psk } });
    assert.equal(client.flight!.ske, undefined);
    assert.equal(client.serverFinishedOk, true);
  });

  it('a wrong PSK and an unknown identity (random master secret) fail alike at Finished', async () => {
    for (const [identity, key] of [
      ['client1', Buffer.alloc(16, 1)],
      ['nobody', psk],
    ] as const) {
      const s = await setup(null, { psk: { holder } });
      const r = await handshake(s, { suites: [psuites[1]] }, { psk: { identity, key } });
      assert.equal(r.alert, A.bad_record_mac, identity);
    }
  });

  it('an unknown identity with a rejecting holder: unknown_psk_identity', async () => {
    const s = await setup(null, { psk: { holder: localPsk(new Map([['client1', psk]]), { unknownIdentity: 'reject' }) } });
    const r = await handshake(s, { suites: [psuites[0]] }, { psk: { identity: 'nobody', key: psk } });
    assert.equal(r.alert, A.unknown_psk_identity);
  });

  it('PSK suites are not chosen without a PSK holder', async () => {
    const s = await setup('ecdsa-p256');
    assert.equal((await handshake(s, { suites: psuites })).alert, A.handshake_failure);
  });
});
