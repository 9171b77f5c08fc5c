// Every wire parser fed mutated real messages: it returns a value or throws a TlsAlertError,
// never anything else (no RangeError, TypeError or hang), and a returned value re-encodes
// when the parser has an encoder that must reproduce its input.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCertificate13, parseCertificateRequest13 } from '../../src/tls/wire/certificate13.js';
import { parseCertificateVerify } from '../../src/tls/wire/certificateVerify.js';
import { encodeClientHello, parseClientHello } from '../../src/tls/wire/clientHello.js';
import { TlsAlertError } from '../../src/tls/wire/errors.js';
import { parseHandshakeMessage } from '../../src/tls/wire/framing.js';
import {
  encodeCertificateRequest12,
  encodeClientKeyExchange,
  encodeEcdhParams,
  encodeServerKeyExchangePsk,
  encodeServerKeyExchangeSigned,
  parseCertificateRequest12,
  parseClientKeyExchange,
  parseServerKeyExchange,
} from '../../src/tls/wire/messages12.js';
import { encodeNewSessionTicket13, parseEncryptedExtensions, parseNewSessionTicket13 } from '../../src/tls/wire/messages13.js';
import { encodeServerHello, parseServerHello } from '../../src/tls/wire/serverHello.js';
import { helloRetry, simple1Rtt } from '../support/rfc8448Vectors.js';
import { prng } from '../support/prng.js';

function mutate(input: Uint8Array, rnd: (n: number) => number): Buffer {
  const b = Buffer.from(input);
  switch (rnd(5)) {
    case 0:
      for (let i = rnd(4) + 1; i > 0; i--) b[rnd(b.length)] ^= 1 << rnd(8);
      return b;
    case 1:
      return b.subarray(0, rnd(b.length));
    case 2:
      if (b.length > 1) b.writeUInt16BE([0, 0xffff, b.length, 1][rnd(4)], rnd(b.length - 1));
      return b;
    case 3: {
      const at = rnd(b.length);
      return Buffer.concat([b.subarray(0, at), Buffer.from(Array.from({ length: rnd(8) + 1 }, () => rnd(256))), b.subarray(at)]);
    }
    default: {
      const at = rnd(b.length);
      return Buffer.concat([b.subarray(0, at), b.subarray(at, at + rnd(32)), b.subarray(at)]);
    }
  }
}

const bodyOf = (raw: Uint8Array) => parseHandshakeMessage(raw).body;
const rec = (record: Uint8Array) => record.subarray(5 + 4);

const targets: { name: string; seed: Uint8Array; parse: (b: Uint8Array) => unknown; reencode?: (v: never) => Uint8Array | undefined }[] = [
  { name: 'ClientHello', seed: rec(helloRetry.clientHello2Record), parse: parseClientHello, reencode: (ch: ReturnType<typeof parseClientHello>) => encodeClientHello(ch).subarray(4) },
  {
    name: 'ServerHello',
    seed: rec(simple1Rtt.serverHelloRecord),
    parse: parseServerHello,
    // The encoder fixes legacy_version 0x0303 and null compression: other values do not round-trip.
    reencode: (sh: ReturnType<typeof parseServerHello>) => (sh.legacyVersion === 0x0303 && sh.compressionMethod === 0 ? encodeServerHello(sh).subarray(4) : undefined),
  },
  { name: 'HelloRetryRequest', seed: rec(helloRetry.helloRetryRequestRecord), parse: parseServerHello },
  { name: 'EncryptedExtensions', seed: bodyOf(simple1Rtt.encryptedExtensions), parse: parseEncryptedExtensions },
  { name: 'Certificate', seed: bodyOf(simple1Rtt.certificate), parse: parseCertificate13 },
  { name: 'CertificateVerify', seed: bodyOf(simple1Rtt.certificateVerify), parse: parseCertificateVerify },
  { name: 'CertificateRequest', seed: Uint8Array.of(0, 0, 10, 0, 13, 0, 6, 0, 4, 4, 3, 8, 4), parse: parseCertificateRequest13 },
  {
    name: 'NewSessionTicket',
    seed: bodyOf(encodeNewSessionTicket13({ lifetime: 60, ageAdd: 1, nonce: Uint8Array.of(0), ticket: new Uint8Array(40), extensions: [], maxEarlyDataSize: 1024 })),
    parse: parseNewSessionTicket13,
  },
  { name: 'ServerKeyExchange ECDHE', seed: bodyOf(encodeServerKeyExchangeSigned(encodeEcdhParams(23, new Uint8Array(65).fill(4)), 0x0403, new Uint8Array(70))), parse: (b) => parseServerKeyExchange(b, 'ECDHE') },
  { name: 'ServerKeyExchange ECDHE_PSK', seed: bodyOf(encodeServerKeyExchangePsk(Uint8Array.of(1, 2), encodeEcdhParams(29, new Uint8Array(32)))), parse: (b) => parseServerKeyExchange(b, 'ECDHE_PSK') },
  {
    name: 'CertificateRequest (1.2)',
    seed: bodyOf(encodeCertificateRequest12({ certificateTypes: Uint8Array.of(64), signatureAlgorithms: [0x0403], certificateAuthorities: [Uint8Array.of(0x30, 0)] })),
    parse: parseCertificateRequest12,
  },
  { name: 'ClientKeyExchange ECDHE_PSK', seed: bodyOf(encodeClientKeyExchange({ kind: 'ECDHE_PSK', identity: Uint8Array.of(1), publicKey: new Uint8Array(32) })), parse: (b) => parseClientKeyExchange(b, 'ECDHE_PSK') },
];

test('wire parsers: 1,500 mutations each end in a value or a TlsAlertError', () => {
  for (const [i, t] of targets.entries()) {
    const rnd = prng(0x3a11 + i);
    let accepted = 0;
    for (let n = 0; n < 1500; n++) {
      const input = mutate(t.seed, rnd);
      let value: unknown;
      try {
        value = t.parse(input);
      } catch (err) {
        assert.ok(err instanceof TlsAlertError, `${t.name}, mutation ${n}: ${(err as Error).stack}`);
        continue;
      }
      accepted++;
      // What parses re-encodes to exactly the input (a parser that drops bytes would not).
      const again = t.reencode?.(value as never);
      if (again) assert.deepEqual(Buffer.from(again), input, `${t.name}, mutation ${n}`);
    }
    assert.ok(accepted > 0 && accepted < 1500, `${t.name}: both outcomes occur (accepted ${accepted})`);
  }
});
