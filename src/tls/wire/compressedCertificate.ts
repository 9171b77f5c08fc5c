/**
 * RFC 8879 certificate compression on the wire: the algorithm code points the
 * compress_certificate extension lists and a CompressedCertificate names, and the smallest
 * body it may stand for. The extension's list codec is `compressCertificateExt`
 * (extensionCodecs.ts); the CompressedCertificate message's encode and parse are in
 * certificate13.ts, next to the Certificate it replaces.
 */

/** CertificateCompressionAlgorithm (RFC 8879 3, IANA registry). */
export enum CertificateCompressionAlgorithm {
  zlib = 1,
  brotli = 2,
  zstd = 3,
}

/** A code point's registry name for logs and alerts; unknown ones print as numbers. */
export function compressionAlgorithmName(algorithm: number): string {
  return CertificateCompressionAlgorithm[algorithm] ?? `algorithm ${algorithm}`;
}

/**
 * The smallest Certificate body (RFC 8446 4.4.2): an empty certificate_request_context
 * (1 length byte) and an empty certificate_list (3 length bytes). uncompressed_length counts
 * the body without its 4-byte handshake header (RFC 8879 4, erratum 8753), so a smaller one
 * cannot describe a Certificate.
 */
export const MIN_CERTIFICATE_BODY = 4;
