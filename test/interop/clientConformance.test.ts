// Conformance of keyward's client to a misbehaving server, before any key is set: each
// crafted first flight is fed to the client engine (sans-IO: the bytes a server would send)
// and must end in the alert RFC 8446 4.1.3 / 4.2 names for it. Complements
// test/client/clientMalformed.test.ts (suites, extensions, HelloRetryRequest, signatures).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { generateKeyExchange, NamedGroup } from '../../src/tls/crypto/groups.js';
import { resolveClientConfig } from '../../src/tls/engine/clientConfig.js';
import { TlsClientConnection } from '../../src/tls/engine/clientConnection.js';
import { AlertDescription as A, alertName } from '../../src/tls/wire/alerts.js';
import { keyShareServerExt, supportedVersionsServerExt } from '../../src/tls/wire/extensionCodecs.js';
import type { Extension } from '../../src/tls/wire/extensions.js';
import { encodeServerHello } from '../../src/tls/wire/serverHello.js';

function record(type: number, body: Uint8Array): Buffer {
  return Buffer.concat([Buffer.of(type, 3, 3, body.length >> 8, body.length & 0xff), body]);
}

const share = generateKeyExchange(NamedGroup.x25519).publicKey;
const versions13 = () => supportedVersionsServerExt.encode(0x0304);
const keyShare = (group: number = NamedGroup.x25519, key: Uint8Array = share) => keyShareServerExt.encode({ group, keyExchange: key });

/** A TLS 1.3 ServerHello (handshake header included) answering a client in compatibility mode off. */
function serverHello(o: { suite?: number; sessionId?: Uint8Array; extensions?: Extension[] } = {}): Buffer {
  return Buffer.from(
    encodeServerHello({ random: Buffer.alloc(32, 7), sessionId: o.sessionId ?? new Uint8Array(0), cipherSuite: o.suite ?? 0x1301, extensions: o.extensions ?? [versions13(), keyShare()] }),
  );
}

/** A ServerHello with one byte of its body changed: offset into the body, new value. */
function patched(offset: number, value: number): Buffer {
  const m = serverHello();
  m[4 + offset] = value;
  return m;
}

/** The alert the client sends after reading `input` as its first flight. */
function alertAfter(input: Uint8Array): { alert?: number; message?: string } {
  // x25519 alone: the default group order differs by Node version (the hybrid first on Node 24.7+).
  const c = new TlsClientConnection(resolveClientConfig({ serverName: 'localhost', compatibilityMode: false, groups: [NamedGroup.x25519, NamedGroup.secp256r1] }));
  c.takeOutput();
  c.takeEvents();
  c.receive(input);
  const err = c.takeEvents().find((e) => e.type === 'error');
  return err && err.type === 'error' ? { alert: err.alertSent, message: err.error.message } : {};
}

describe("keyward's client against a misbehaving server's first flight", () => {
  const SESSION_ID_LENGTH_AT = 2 + 32;
  const cases: [string, () => Uint8Array, A, RegExp?][] = [
    ['supported_versions names a version not offered (0x0305): illegal_parameter (4.2.1)', () => record(22, serverHello({ extensions: [supportedVersionsServerExt.encode(0x0305), keyShare()] })), A.illegal_parameter],
    ['legacy_version 0x0304 in a TLS 1.3 ServerHello: illegal_parameter (4.1.3)', () => record(22, patched(1, 4)), A.illegal_parameter],
    ['compression method 1: illegal_parameter (4.1.3)', () => record(22, patched(SESSION_ID_LENGTH_AT + 1 + 2, 1)), A.illegal_parameter],
    ['a session id that is not the one sent: illegal_parameter (4.1.3)', () => record(22, serverHello({ sessionId: Buffer.alloc(32, 1) })), A.illegal_parameter],
    ['a key share for a group the client sent no share for (X448): illegal_parameter (4.2.8)', () => record(22, serverHello({ extensions: [versions13(), keyShare(NamedGroup.x448, generateKeyExchange(NamedGroup.x448).publicKey)] })), A.illegal_parameter],
    ['no key_share and no pre_shared_key: missing_extension (9.2)', () => record(22, serverHello({ extensions: [versions13()] })), A.missing_extension],
    ['an extension twice: illegal_parameter', () => record(22, serverHello({ extensions: [versions13(), versions13(), keyShare()] })), A.illegal_parameter],
    ['an all-zero x25519 share: illegal_parameter (RFC 7748 6.1)', () => record(22, serverHello({ extensions: [versions13(), keyShare(NamedGroup.x25519, new Uint8Array(32))] })), A.illegal_parameter, /low-order/],
    ['a TLS 1.2 suite in a TLS 1.3 ServerHello: illegal_parameter', () => record(22, serverHello({ suite: 0xc02b })), A.illegal_parameter],
    ['application data before the ServerHello (even empty): unexpected_message', () => record(23, new Uint8Array(0)), A.unexpected_message],
    ['a HelloRequest first: unexpected_message', () => record(22, Buffer.of(0, 0, 0, 0)), A.unexpected_message],
    ['a plaintext record of 2^14+1 bytes: record_overflow', () => record(22, new Uint8Array(16385)), A.record_overflow],
    ['a plaintext NewSessionTicket after the ServerHello: unexpected_message (keys are set by then)', () => Buffer.concat([record(22, serverHello()), record(22, Buffer.of(4, 0, 0, 0))]), A.unexpected_message],
  ];
  for (const [name, input, alert, reason] of cases) {
    it(name, () => {
      const got = alertAfter(input());
      assert.equal(got.alert === undefined ? 'none' : alertName(got.alert), alertName(alert), got.message);
      if (reason) assert.match(got.message ?? '', reason);
    });
  }

  it('a ChangeCipherSpec before the ServerHello is dropped (RFC 8446 5: after the ClientHello was sent)', () => {
    assert.deepEqual(alertAfter(record(20, Uint8Array.of(1))), {});
  });
});
