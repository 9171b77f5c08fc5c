// RFC 8879 on the wire: the algorithm code points of the IANA registry, their names in
// alerts, and the smallest Certificate body an uncompressed_length may describe.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeCertificate13, encodeCompressedCertificate, parseCompressedCertificate } from '../../src/tls/wire/certificate13.js';
import { CertificateCompressionAlgorithm, MIN_CERTIFICATE_BODY, compressionAlgorithmName } from '../../src/tls/wire/compressedCertificate.js';
import { compressCertificateExt } from '../../src/tls/wire/extensionCodecs.js';
import { parseHandshakeMessage } from '../../src/tls/wire/framing.js';

describe('certificate compression on the wire (RFC 8879)', () => {
  it('code points as registered: zlib 1, brotli 2, zstd 3; others named by number', () => {
    assert.equal(CertificateCompressionAlgorithm.zlib, 1);
    assert.equal(CertificateCompressionAlgorithm.brotli, 2);
    assert.equal(CertificateCompressionAlgorithm.zstd, 3);
    assert.equal(compressionAlgorithmName(2), 'brotli');
    assert.equal(compressionAlgorithmName(0x4242), 'algorithm 16962');
  });

  it('a compress_certificate list round-trips with the code points (u8 length, u16 entries)', () => {
    const ext = compressCertificateExt.encode([CertificateCompressionAlgorithm.brotli, CertificateCompressionAlgorithm.zlib]);
    assert.deepEqual([...ext.data], [4, 0, 2, 0, 1]);
    assert.deepEqual(compressCertificateExt.parse(ext.data), [2, 1]);
  });

  it('MIN_CERTIFICATE_BODY is the body of an empty Certificate', () => {
    assert.equal(parseHandshakeMessage(encodeCertificate13(new Uint8Array(0), [])).body.length, MIN_CERTIFICATE_BODY);
  });

  it('uncompressed_length is a u24: the largest fits, the header says so', () => {
    const msg = parseHandshakeMessage(encodeCompressedCertificate({ algorithm: CertificateCompressionAlgorithm.zlib, uncompressedLength: 0xffffff, compressed: Uint8Array.of(1) }));
    assert.deepEqual([...msg.body.subarray(0, 5)], [0, 1, 0xff, 0xff, 0xff]);
    assert.equal(parseCompressedCertificate(msg.body).uncompressedLength, 0xffffff);
  });
});
