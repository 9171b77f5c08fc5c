/**
 * TLS 1.3 certificate compression (RFC 8879) with node:zlib's brotli and zlib: which
 * algorithm to send with, the CompressedCertificate that replaces a Certificate (made once
 * per Certificate message, so once per chain, never per handshake), and the receiving
 * side's decompression, which refuses a bomb by its declared length before inflating and
 * never inflates past it.
 */
import { brotliCompressSync, brotliDecompressSync, constants as zlibConstants, deflateSync, inflateSync } from 'node:zlib';
import { AlertDescription } from '../wire/alerts.js';
import { encodeCompressedCertificate, parseCompressedCertificate } from '../wire/certificate13.js';
import { CertificateCompressionAlgorithm, MIN_CERTIFICATE_BODY, compressionAlgorithmName } from '../wire/compressedCertificate.js';
import { HandshakeType } from '../wire/constants.js';
import { TlsAlertError, illegalParameter, unexpectedMessage } from '../wire/errors.js';
import { parseHandshakeMessage } from '../wire/framing.js';

/** The algorithms node:zlib gives on every supported Node (zstd is experimental and only on 22.15+). */
export type SupportedCompressionAlgorithm = CertificateCompressionAlgorithm.brotli | CertificateCompressionAlgorithm.zlib;

/**
 * keyward's preference: brotli first (the only algorithm Chromium offers; on the test
 * chains its output is within a few percent of zlib's, smaller on most), then zlib, which
 * Firefox also offers.
 */
export const DEFAULT_CERTIFICATE_COMPRESSION: readonly SupportedCompressionAlgorithm[] = [CertificateCompressionAlgorithm.brotli, CertificateCompressionAlgorithm.zlib];

/**
 * Checks a configured `certificateCompression` list: brotli and zlib only (what node:zlib
 * has on every supported Node), each once. An empty list turns compression off.
 */
export function checkCompressionAlgorithms(list: readonly number[], what: string): void {
  const seen = new Set<number>();
  for (const a of list) {
    if (!DEFAULT_CERTIFICATE_COMPRESSION.some((d) => d === a)) throw new Error(`${what}: ${compressionAlgorithmName(a)} is not supported (brotli and zlib are)`);
    if (seen.has(a)) throw new Error(`${what}: ${compressionAlgorithmName(a)} is listed twice`);
    seen.add(a);
  }
}

/**
 * The algorithm to compress our Certificate with: the first of `preference` that the peer
 * listed in its compress_certificate extension, or undefined to send a plain Certificate
 * (no extension, no common algorithm, or an empty preference).
 */
export function chooseCertificateCompression(
  offered: readonly number[] | undefined,
  preference: readonly SupportedCompressionAlgorithm[] = DEFAULT_CERTIFICATE_COMPRESSION,
): SupportedCompressionAlgorithm | undefined {
  if (!offered) return undefined;
  return preference.find((a) => offered.includes(a));
}

function compress(algorithm: SupportedCompressionAlgorithm, data: Uint8Array): Buffer {
  // Made once per chain, so the slowest, smallest settings pay for themselves (brotli at
  // quality 11 takes milliseconds on a 4 KB chain: warm the cache at start-up to keep that
  // off the first handshake).
  if (algorithm === CertificateCompressionAlgorithm.brotli) {
    return brotliCompressSync(data, {
      params: { [zlibConstants.BROTLI_PARAM_QUALITY]: zlibConstants.BROTLI_MAX_QUALITY, [zlibConstants.BROTLI_PARAM_SIZE_HINT]: data.length },
    });
  }
  return deflateSync(data, { level: zlibConstants.Z_BEST_COMPRESSION });
}

/** CompressedCertificate messages already made, per Certificate message object and algorithm. */
const compressedMessages = new WeakMap<Uint8Array, Map<SupportedCompressionAlgorithm, Uint8Array>>();

/**
 * The CompressedCertificate message (framed, type 25) that replaces `certificate`, a framed
 * TLS 1.3 Certificate message: its body (without the 4-byte header, RFC 8879 4 and erratum
 * 8753) compressed with `algorithm`. The result is kept per `certificate` object: a server's
 * Certificate comes from encodeCertificate13's per-chain cache, so each chain is compressed
 * once per algorithm; whoever builds a Certificate with entry extensions (a delegated
 * credential, a stapled OCSP response) should keep that message object while it serves it.
 */
export function compressCertificateMessage(certificate: Uint8Array, algorithm: SupportedCompressionAlgorithm): Uint8Array {
  let byAlgorithm = compressedMessages.get(certificate);
  const cached = byAlgorithm?.get(algorithm);
  if (cached) return cached;
  const msg = parseHandshakeMessage(certificate, 'Certificate message to compress');
  if (msg.type !== HandshakeType.certificate) throw new TypeError(`compressCertificateMessage takes a Certificate message (type 11), got type ${msg.type}`);
  const compressed = encodeCompressedCertificate({ algorithm, uncompressedLength: msg.body.length, compressed: compress(algorithm, msg.body) });
  if (!byAlgorithm) {
    byAlgorithm = new Map();
    compressedMessages.set(certificate, byAlgorithm);
  }
  byAlgorithm.set(algorithm, compressed);
  return compressed;
}

function badCertificate(message: string): TlsAlertError {
  return new TlsAlertError(AlertDescription.bad_certificate, message);
}

/** What node:zlib's sync calls return with `info: true` (the option is documented; @types/node does not model its result). */
interface InflateResult {
  readonly buffer: Buffer;
  /** `bytesWritten`: the compressed bytes the engine consumed. */
  readonly engine: { readonly bytesWritten: number };
}

function decompress(algorithm: SupportedCompressionAlgorithm, data: Uint8Array, maxOutputLength: number): InflateResult {
  const options = { maxOutputLength, info: true };
  const result: unknown = algorithm === CertificateCompressionAlgorithm.brotli ? brotliDecompressSync(data, options) : inflateSync(data, options);
  return result as InflateResult;
}

/**
 * The receiving side of RFC 8879 4: the Certificate body a CompressedCertificate `body`
 * (without its handshake header) stands for, to parse with parseCertificate13.
 *
 * - `offered`: the algorithms listed in the compress_certificate extension the sender
 *   answered (the receiver's own, or for a checker such as keyd the ClientHello's); a
 *   CompressedCertificate in another one is illegal_parameter (RFC 8879 4: the algorithm
 *   MUST be one the peer listed).
 * - `maxBody`: the largest Certificate body the receiver accepts uncompressed (its
 *   maxHandshakeMessage). An uncompressed_length above it is refused before anything is
 *   inflated, and inflation stops at uncompressed_length, so a bomb costs at most that
 *   many bytes of output.
 *
 * bad_certificate (RFC 8879 4) when the data does not decompress (or is in an algorithm
 * node:zlib lacks), decompresses to more or fewer bytes than uncompressed_length, or has
 * bytes after the compressed stream, and when uncompressed_length is too large or too small
 * to be a Certificate; decode_error when the message itself is malformed.
 */
export function decompressCertificate(body: Uint8Array, offered: readonly number[], maxBody: number): Uint8Array {
  const c = parseCompressedCertificate(body);
  const name = compressionAlgorithmName(c.algorithm);
  if (!offered.includes(c.algorithm)) throw illegalParameter(`CompressedCertificate uses ${name}, which was not offered`);
  const algorithm = DEFAULT_CERTIFICATE_COMPRESSION.find((a) => a === c.algorithm);
  if (algorithm === undefined) throw badCertificate(`CompressedCertificate uses ${name}, which keyward cannot decompress`);
  if (c.uncompressedLength < MIN_CERTIFICATE_BODY) throw badCertificate(`CompressedCertificate uncompressed_length ${c.uncompressedLength} is smaller than any Certificate`);
  if (c.uncompressedLength > maxBody) {
    throw badCertificate(`CompressedCertificate uncompressed_length ${c.uncompressedLength} exceeds the ${maxBody}-byte limit on a handshake message`);
  }
  let result: InflateResult;
  try {
    result = decompress(algorithm, c.compressed, c.uncompressedLength);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw badCertificate(`CompressedCertificate (${name}) decompresses to more than its uncompressed_length ${c.uncompressedLength}`);
    }
    throw badCertificate(`CompressedCertificate does not decompress with ${name} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const out = result.buffer;
  if (result.engine.bytesWritten !== c.compressed.length) {
    throw badCertificate(`CompressedCertificate has ${c.compressed.length - result.engine.bytesWritten} bytes after the end of its ${name} stream`);
  }
  if (out.length !== c.uncompressedLength) {
    throw badCertificate(`CompressedCertificate (${name}) decompresses to ${out.length} bytes, not its uncompressed_length ${c.uncompressedLength}`);
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/**
 * The Certificate body a received certificate message carries, whichever form it came in:
 * a Certificate's own body, or a CompressedCertificate's, decompressed by
 * {@link decompressCertificate}. `offered` is the compress_certificate list the sender
 * answered (undefined when none was sent): a CompressedCertificate nobody asked for is
 * unexpected_message. The transcript keeps the message as received, not this body.
 */
export function receivedCertificateBody(msg: { readonly type: number; readonly body: Uint8Array }, offered: readonly number[] | undefined, maxBody: number): Uint8Array {
  if (msg.type === HandshakeType.certificate) return msg.body;
  if (msg.type !== HandshakeType.compressed_certificate) throw unexpectedMessage(`handshake message type ${msg.type} where a Certificate belongs`);
  if (!offered?.length) throw unexpectedMessage('CompressedCertificate without compress_certificate offered');
  return decompressCertificate(msg.body, offered, maxBody);
}
