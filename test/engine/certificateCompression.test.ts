// RFC 8879 certificate compression: the algorithm a server picks from a peer's offer, the
// CompressedCertificate made once per Certificate message (so once per chain) with real
// node:zlib brotli and zlib output, and the receiving side's decompression refusing
// bombs, length mismatches, corrupt and trailing data with the alerts RFC 8879 names;
// then keyward's client and server negotiating it as configured, and keyd's bound check
// of a signature request whose Certificate came compressed.
import assert from 'node:assert/strict';
import { brotliCompressSync, brotliDecompressSync, constants as zlibConstants, deflateSync, inflateSync } from 'node:zlib';
import { before, describe, it } from 'node:test';
import {
  DEFAULT_CERTIFICATE_COMPRESSION,
  chooseCertificateCompression,
  compressCertificateMessage,
  decompressCertificate,
  receivedCertificateBody,
  type SupportedCompressionAlgorithm,
} from '../../src/tls/engine/certificateCompression.js';
import { AlertDescription } from '../../src/tls/wire/alerts.js';
import { encodeCertificate13, encodeCompressedCertificate, parseCertificate13, parseCompressedCertificate } from '../../src/tls/wire/certificate13.js';
import { CertificateCompressionAlgorithm } from '../../src/tls/wire/compressedCertificate.js';
import { HandshakeType } from '../../src/tls/wire/constants.js';
import { parseHandshakeMessage } from '../../src/tls/wire/framing.js';
import { checkBoundSignInput, type BoundKey } from '../../src/keys/boundSignInput.js';
import { LocalKey } from '../../src/keys/localKey.js';
import { certifiedKey, parsePemChain, type CertifiedKey } from '../../src/tls/engine/certificates.js';
import { resolveClientConfig, type ClientConfig, type ClientConfigInput } from '../../src/tls/engine/clientConfig.js';
import { resolveServerConfig, type ServerConfig, type ServerConfigInput } from '../../src/tls/engine/config.js';
import { handshakePair, type Pair } from '../support/enginePair.js';
import { getPki } from '../support/pki.js';
import { decodeErr, expectAlert, illegal } from '../wire/expectAlert.js';

const { brotli, zlib, zstd } = CertificateCompressionAlgorithm;
const BOTH: readonly SupportedCompressionAlgorithm[] = [brotli, zlib];
/** The engine's default maxHandshakeMessage (64 KiB). */
const LIMIT = 64 * 1024;

const badCert = (fn: () => unknown, message: RegExp): void => expectAlert(fn, AlertDescription.bad_certificate, message);

/** A CompressedCertificate body around `compressed`, claiming `uncompressedLength`. */
function compressedBody(algorithm: number, uncompressedLength: number, compressed: Uint8Array): Uint8Array {
  return parseHandshakeMessage(encodeCompressedCertificate({ algorithm, uncompressedLength, compressed })).body;
}

/** The real thing node:zlib would send for `data`. */
function zlibOf(algorithm: SupportedCompressionAlgorithm, data: Uint8Array): Buffer {
  return algorithm === brotli ? brotliCompressSync(data) : deflateSync(data);
}

let rsaChain: Uint8Array[];
let ecdsaChain: Uint8Array[];

before(async () => {
  const pki = await getPki();
  rsaChain = parsePemChain(pki.server['rsa-2048'].chainPem).map((c) => new Uint8Array(c.raw));
  ecdsaChain = parsePemChain(pki.server['ecdsa-p256'].chainPem).map((c) => new Uint8Array(c.raw));
});

describe('chooseCertificateCompression', () => {
  it('brotli first when offered, then zlib; zstd and unknown code points are never chosen', () => {
    assert.deepEqual(DEFAULT_CERTIFICATE_COMPRESSION, [brotli, zlib]);
    assert.equal(chooseCertificateCompression([brotli]), brotli, "Chromium's offer");
    assert.equal(chooseCertificateCompression([zlib, brotli, zstd]), brotli, "Firefox's offer");
    assert.equal(chooseCertificateCompression([zlib]), zlib);
    assert.equal(chooseCertificateCompression([zstd, 0x7777]), undefined);
    assert.equal(chooseCertificateCompression(undefined), undefined, 'no extension: a plain Certificate');
  });

  it('follows the configured preference; an empty one turns compression off', () => {
    assert.equal(chooseCertificateCompression([brotli, zlib], [zlib, brotli]), zlib);
    assert.equal(chooseCertificateCompression([brotli, zlib], []), undefined);
  });
});

describe('compressCertificateMessage', () => {
  for (const algorithm of BOTH) {
    it(`${CertificateCompressionAlgorithm[algorithm]}: a CompressedCertificate whose data node:zlib inflates to the Certificate body`, () => {
      const certificate = encodeCertificate13(new Uint8Array(0), rsaChain);
      const certBody = parseHandshakeMessage(certificate).body;
      const msg = parseHandshakeMessage(compressCertificateMessage(certificate, algorithm));
      assert.equal(msg.type, HandshakeType.compressed_certificate);
      const c = parseCompressedCertificate(msg.body);
      assert.equal(c.algorithm, algorithm);
      assert.equal(c.uncompressedLength, certBody.length, 'uncompressed_length counts the body, without the handshake header (erratum 8753)');
      const inflated = algorithm === brotli ? brotliDecompressSync(c.compressed) : inflateSync(c.compressed);
      assert.ok(inflated.equals(certBody));
      assert.ok(c.compressed.length < certBody.length, `${c.compressed.length} compressed bytes for a ${certBody.length}-byte chain`);
      // And back through the receiving side to the chain itself.
      const received = parseCertificate13(decompressCertificate(msg.body, [algorithm], LIMIT));
      assert.deepEqual(
        received.entries.map((e) => Buffer.from(e.data)),
        rsaChain.map((d) => Buffer.from(d)),
      );
    });
  }

  it('computed once per Certificate message and algorithm: a chain is compressed once, not per handshake', () => {
    // encodeCertificate13 caches the server's Certificate per chain, so every handshake with
    // this chain hands the same message object in.
    const first = compressCertificateMessage(encodeCertificate13(new Uint8Array(0), ecdsaChain), brotli);
    const again = compressCertificateMessage(encodeCertificate13(new Uint8Array(0), ecdsaChain), brotli);
    assert.equal(again, first, 'the same bytes object: nothing was compressed again');
    const zlibMsg = compressCertificateMessage(encodeCertificate13(new Uint8Array(0), ecdsaChain), zlib);
    assert.notEqual(zlibMsg, first);
    assert.equal(compressCertificateMessage(encodeCertificate13(new Uint8Array(0), ecdsaChain), zlib), zlibMsg);
    const other = compressCertificateMessage(encodeCertificate13(new Uint8Array(0), rsaChain), brotli);
    assert.notDeepEqual(Buffer.from(other), Buffer.from(first), 'another chain, another message');
  });

  it('takes only a Certificate message', () => {
    assert.throws(() => compressCertificateMessage(Uint8Array.of(HandshakeType.finished, 0, 0, 4, 1, 2, 3, 4), brotli), /takes a Certificate message \(type 11\), got type 20/);
    decodeErr(() => compressCertificateMessage(Uint8Array.of(HandshakeType.certificate, 0, 0, 9, 0), brotli), /length 9 in its header/);
  });
});

describe('decompressCertificate', () => {
  let certBody: Uint8Array;
  before(() => {
    certBody = parseHandshakeMessage(encodeCertificate13(new Uint8Array(0), ecdsaChain)).body;
  });

  it('accepts what node:zlib made elsewhere, in either algorithm', () => {
    for (const algorithm of BOTH) {
      const out = decompressCertificate(compressedBody(algorithm, certBody.length, zlibOf(algorithm, certBody)), BOTH, LIMIT);
      assert.ok(Buffer.from(out).equals(certBody));
    }
  });

  it('an algorithm this side did not offer is illegal_parameter', () => {
    illegal(() => decompressCertificate(compressedBody(zlib, certBody.length, zlibOf(zlib, certBody)), [brotli], LIMIT), /uses zlib, which was not offered/);
    illegal(() => decompressCertificate(compressedBody(zstd, certBody.length, Uint8Array.of(1)), BOTH, LIMIT), /uses zstd, which was not offered/);
    illegal(() => decompressCertificate(compressedBody(0x4242, certBody.length, Uint8Array.of(1)), BOTH, LIMIT), /uses algorithm 16962/);
  });

  it('an algorithm offered (a ClientHello listing zstd, as Firefox does) but not in node:zlib is bad_certificate', () => {
    badCert(() => decompressCertificate(compressedBody(zstd, certBody.length, Uint8Array.of(0x28, 0xb5, 0x2f, 0xfd)), [zlib, brotli, zstd], LIMIT), /uses zstd, which keyward cannot decompress/);
  });

  it('a declared length above the limit is refused before anything is inflated', () => {
    // Not even a valid stream: refusing by the length alone never looks at the data.
    badCert(() => decompressCertificate(compressedBody(brotli, 0xffffff, Uint8Array.of(0xde, 0xad)), BOTH, LIMIT), /uncompressed_length 16777215 exceeds the 65536-byte limit/);
    badCert(() => decompressCertificate(compressedBody(zlib, LIMIT + 1, Uint8Array.of(0xde, 0xad)), BOTH, LIMIT), /exceeds the 65536-byte limit/);
  });

  it('a bomb (16 MiB of zeros) is cut off at its declared length', () => {
    const zeros = Buffer.alloc(16 << 20);
    const bombs: [SupportedCompressionAlgorithm, Buffer][] = [
      [brotli, brotliCompressSync(zeros, { params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 1 } })],
      [zlib, deflateSync(zeros, { level: 9 })],
    ];
    for (const [algorithm, bomb] of bombs) {
      assert.ok(bomb.length < LIMIT, `the ${CertificateCompressionAlgorithm[algorithm]} bomb fits in one handshake message (${bomb.length} bytes)`);
      badCert(() => decompressCertificate(compressedBody(algorithm, LIMIT, bomb), BOTH, LIMIT), /decompresses to more than its uncompressed_length 65536/);
      badCert(() => decompressCertificate(compressedBody(algorithm, 1000, bomb), BOTH, LIMIT), /decompresses to more than its uncompressed_length 1000/);
    }
  });

  it('uncompressed_length must match the data exactly', () => {
    for (const algorithm of BOTH) {
      const data = zlibOf(algorithm, certBody);
      badCert(() => decompressCertificate(compressedBody(algorithm, certBody.length + 1, data), BOTH, LIMIT), new RegExp(`decompresses to ${certBody.length} bytes, not its uncompressed_length ${certBody.length + 1}`));
      badCert(() => decompressCertificate(compressedBody(algorithm, certBody.length - 1, data), BOTH, LIMIT), /decompresses to more than its uncompressed_length/);
    }
  });

  it('too small to be a Certificate is bad_certificate', () => {
    for (const n of [0, 1, 3]) {
      badCert(() => decompressCertificate(compressedBody(zlib, n, deflateSync(Buffer.alloc(n))), BOTH, LIMIT), new RegExp(`uncompressed_length ${n} is smaller than any Certificate`));
    }
  });

  it('corrupt, truncated or trailing data is bad_certificate', () => {
    for (const algorithm of BOTH) {
      const data = zlibOf(algorithm, certBody);
      const flipped = Buffer.from(data);
      flipped[0] ^= 0xff;
      badCert(() => decompressCertificate(compressedBody(algorithm, certBody.length, flipped), BOTH, LIMIT), /does not decompress with/);
      badCert(() => decompressCertificate(compressedBody(algorithm, certBody.length, data.subarray(0, data.length - 4)), BOTH, LIMIT), /does not decompress with/);
      badCert(() => decompressCertificate(compressedBody(algorithm, certBody.length, Buffer.concat([data, Buffer.from('tail')])), BOTH, LIMIT), /4 bytes after the end of its \w+ stream/);
    }
  });

  it('receivedCertificateBody: a Certificate as is, a CompressedCertificate decompressed only when compression was offered', () => {
    const certificate = parseHandshakeMessage(encodeCertificate13(new Uint8Array(0), ecdsaChain));
    assert.equal(receivedCertificateBody(certificate, undefined, LIMIT), certificate.body);
    const compressed = parseHandshakeMessage(compressCertificateMessage(encodeCertificate13(new Uint8Array(0), ecdsaChain), brotli));
    assert.ok(Buffer.from(receivedCertificateBody(compressed, [brotli], LIMIT)).equals(certificate.body));
    for (const offered of [undefined, []]) {
      expectAlert(() => receivedCertificateBody(compressed, offered, LIMIT), AlertDescription.unexpected_message, /CompressedCertificate without compress_certificate offered/);
    }
    illegal(() => receivedCertificateBody(compressed, [zlib], LIMIT), /uses brotli, which was not offered/);
    expectAlert(() => receivedCertificateBody({ type: HandshakeType.finished, body: new Uint8Array(32) }, [brotli], LIMIT), AlertDescription.unexpected_message, /type 20 where a Certificate belongs/);
  });

  it('a malformed CompressedCertificate is decode_error', () => {
    decodeErr(() => decompressCertificate(Uint8Array.of(0, 2, 0, 1, 0), BOTH, LIMIT));
    decodeErr(() => decompressCertificate(Uint8Array.of(0, 2, 0, 1, 0, 0, 0, 0), BOTH, LIMIT), /shorter than 1/);
  });
});

describe('keyward client and server negotiate it (sans-IO)', () => {
  let pki: Awaited<ReturnType<typeof getPki>>;
  let serverKey: CertifiedKey;
  before(async () => {
    pki = await getPki();
    serverKey = certifiedKey(pki.server['ecdsa-p256'].chainPem, new LocalKey(pki.server['ecdsa-p256'].keyPem));
  });
  const server = (input: Partial<ServerConfigInput> = {}) => resolveServerConfig({ certificates: [serverKey], ...input });
  const client = (input: ClientConfigInput = {}) => resolveClientConfig({ serverName: 'localhost', ...input });
  /** The type of the certificate message in the messages the server's sign request carries (bound mode). */
  const certificateType = (p: Pair) => p.s.signs[0].context.handshakeMessages!.map((m) => m[0]).find((t) => t === 11 || t === 25);

  it('brotli by default on both sides; the info says so on both; zlib when that is all one side takes', async () => {
    const cases: [string, ServerConfig, ClientConfig, number | undefined][] = [
      ['defaults', server(), client(), brotli],
      ['client offers zlib only', server(), client({ certificateCompression: [zlib] }), zlib],
      ['server prefers zlib', server({ certificateCompression: [zlib, brotli] }), client(), zlib],
      ['server compresses nothing', server({ certificateCompression: [] }), client(), undefined],
      ['client offers nothing', server(), client({ certificateCompression: [] }), undefined],
    ];
    for (const [name, s, c, expected] of cases) {
      const p = await handshakePair(s, c);
      assert.ok(p.client.isConnected && p.server.isConnected, `${name}: ${p.c.error?.message ?? p.s.error?.message}`);
      assert.equal(p.server.info.certificateCompression, expected, name);
      assert.equal(p.client.info.certificateCompression, expected, name);
      assert.equal(certificateType(p), expected === undefined ? HandshakeType.certificate : HandshakeType.compressed_certificate, name);
    }
  });

  it("keyd's bound check takes the CompressedCertificate it is shown, in an algorithm the ClientHello offered only", async () => {
    const p = await handshakePair(server(), client({ certificateCompression: [brotli] }));
    const r = p.s.signs[0];
    const key: BoundKey = { spki: serverKey.publicKey.export({ type: 'spki', format: 'der' }), servesName: (n) => n === 'localhost' };
    assert.equal(certificateType(p), HandshakeType.compressed_certificate);
    assert.deepEqual(checkBoundSignInput(r.message, r.context.purpose!, r.context.handshakeMessages!, key), { ok: true, serverName: 'localhost' });
    // The same handshake with its CompressedCertificate made with zlib, which the ClientHello did not list.
    const asZlib = compressCertificateMessage(encodeCertificate13(new Uint8Array(0), serverKey.chain), zlib);
    const messages = r.context.handshakeMessages!.map((m) => (m[0] === HandshakeType.compressed_certificate ? asZlib : m));
    const refusal = checkBoundSignInput(r.message, r.context.purpose!, messages, key);
    assert.equal(refusal.ok, false);
    if (!refusal.ok) assert.match(refusal.reason, /the server's certificate message: illegal_parameter: CompressedCertificate uses zlib, which was not offered/);
  });

  it('a configured algorithm must be brotli or zlib, once', () => {
    assert.throws(() => server({ certificateCompression: [zstd as SupportedCompressionAlgorithm] }), /certificateCompression: zstd is not supported/);
    assert.throws(() => server({ certificateCompression: [brotli, brotli] }), /brotli is listed twice/);
    assert.throws(() => client({ certificateCompression: [7 as SupportedCompressionAlgorithm] }), /algorithm 7 is not supported/);
  });
});
