/**
 * The TLS 1.3 certificate messages (RFC 8446 4.4.2, 4.3.2; RFC 8879 4): Certificate with
 * its request context and per-entry extensions, CertificateRequest, and the framing of
 * CompressedCertificate (decompression is the caller's).
 */
import { AlertDescription } from './alerts.js';
import { ExtensionType, HandshakeType } from './constants.js';
import { TlsAlertError } from './errors.js';
import {
  certificateAuthoritiesExt,
  certificateStatusExt,
  compressCertificateExt,
  delegatedCredentialSchemesExt,
  signatureAlgorithmsCertExt,
  signatureAlgorithmsExt,
} from './extensionCodecs.js';
import { checkAllowed13, findExtension, readExtensions, writeExtensions, type Extension } from './extensions.js';
import { delegatedCredentialExt, type DelegatedCredential } from './delegatedCredential.js';
import { handshakeMessage } from './framing.js';
import { Reader } from './reader.js';
import { Writer } from './writer.js';

// ---- Certificate (4.4.2) ----

/** A server's Certificate message depends only on its chain: encoded once per chain. */
const serverCertificate13 = new WeakMap<readonly Uint8Array[], Uint8Array>();

/**
 * Encodes a Certificate: `chain` leaf first (DER), `entryExtensions[i]` the extensions of
 * entry i (none when absent). A server's (empty context, no extensions) is cached per chain.
 */
export function encodeCertificate13(context: Uint8Array, chain: readonly Uint8Array[], entryExtensions?: readonly (readonly Extension[])[]): Uint8Array {
  const cacheable = context.length === 0 && entryExtensions === undefined;
  const cached = cacheable ? serverCertificate13.get(chain) : undefined;
  if (cached) return cached;
  const w = new Writer(4096);
  w.vec8(context);
  w.block(3, () => {
    chain.forEach((der, i) => {
      w.vec24(der);
      writeExtensions(w, entryExtensions?.[i] ?? []);
    });
  });
  const msg = handshakeMessage(HandshakeType.certificate, w.finish());
  if (cacheable) serverCertificate13.set(chain, msg);
  return msg;
}

/** One CertificateEntry: the DER certificate and its extensions, the ones keyward reads decoded. */
export interface CertificateEntry13 {
  readonly data: Uint8Array;
  readonly extensions: readonly Extension[];
  /** status_request: a stapled OCSP response (DER). */
  readonly ocspResponse?: Uint8Array;
  /** delegated_credential (RFC 9345), on the end-entity entry. */
  readonly delegatedCredential?: DelegatedCredential;
}

export interface Certificate13 {
  /** certificate_request_context: empty from a server, the CertificateRequest's from a client. */
  readonly context: Uint8Array;
  /** Leaf first; empty when a client has no certificate to send. */
  readonly entries: readonly CertificateEntry13[];
}

/** Decodes a Certificate body; an entry extension not allowed in a Certificate is illegal_parameter (4.2). */
export function parseCertificate13(body: Uint8Array): Certificate13 {
  const r = new Reader(body, 'Certificate');
  const context = r.vec8();
  const list = r.sub24('certificate_list');
  r.end();
  const entries: CertificateEntry13[] = [];
  while (!list.atEnd()) {
    const data = list.vec24(1);
    const extensions = readExtensions(list, 'CertificateEntry');
    checkAllowed13(extensions, 'CT');
    const status = findExtension(extensions, ExtensionType.status_request);
    const dc = findExtension(extensions, ExtensionType.delegated_credential);
    entries.push({
      data,
      extensions,
      ocspResponse: status && certificateStatusExt.parse(status).response,
      delegatedCredential: dc && delegatedCredentialExt.parse(dc),
    });
  }
  return { context, entries };
}

// ---- CertificateRequest (4.3.2) ----

export interface CertificateRequest13Fields {
  /** certificate_request_context<0..2^8-1>: empty during the handshake. */
  readonly context: Uint8Array;
  /** Extensions; signature_algorithms is required. */
  readonly extensions: readonly Extension[];
}

export function encodeCertificateRequest13(f: CertificateRequest13Fields): Uint8Array {
  const w = new Writer(128);
  w.vec8(f.context);
  writeExtensions(w, f.extensions);
  return handshakeMessage(HandshakeType.certificate_request, w.finish());
}

export interface CertificateRequest13 extends CertificateRequest13Fields {
  readonly signatureAlgorithms: readonly number[];
  readonly signatureAlgorithmsCert?: readonly number[];
  /** DER distinguished names of the CAs the server accepts. */
  readonly certificateAuthorities?: readonly Uint8Array[];
  readonly compressCertificate?: readonly number[];
  readonly delegatedCredentialSchemes?: readonly number[];
}

/** Decodes a CertificateRequest body; without signature_algorithms it is missing_extension (4.3.2). */
export function parseCertificateRequest13(body: Uint8Array): CertificateRequest13 {
  const r = new Reader(body, 'CertificateRequest');
  const context = r.vec8();
  const extensions = readExtensions(r, 'CertificateRequest');
  r.end();
  checkAllowed13(extensions, 'CR');
  const get = (t: ExtensionType) => findExtension(extensions, t);
  const sigAlgs = get(ExtensionType.signature_algorithms);
  if (!sigAlgs) throw new TlsAlertError(AlertDescription.missing_extension, 'CertificateRequest without signature_algorithms');
  const sigAlgsCert = get(ExtensionType.signature_algorithms_cert);
  const cas = get(ExtensionType.certificate_authorities);
  const compress = get(ExtensionType.compress_certificate);
  const dc = get(ExtensionType.delegated_credential);
  return {
    context,
    extensions,
    signatureAlgorithms: signatureAlgorithmsExt.parse(sigAlgs),
    signatureAlgorithmsCert: sigAlgsCert && signatureAlgorithmsCertExt.parse(sigAlgsCert),
    certificateAuthorities: cas && certificateAuthoritiesExt.parse(cas),
    compressCertificate: compress && compressCertificateExt.parse(compress),
    delegatedCredentialSchemes: dc && delegatedCredentialSchemesExt.parse(dc),
  };
}

// ---- CompressedCertificate (RFC 8879 4) ----

export interface CompressedCertificate {
  /** CertificateCompressionAlgorithm: zlib(1), brotli(2), zstd(3). */
  readonly algorithm: number;
  /** uint24 uncompressed_length: the size of the Certificate message body once decompressed. */
  readonly uncompressedLength: number;
  /** compressed_certificate_message<1..2^24-1>. */
  readonly compressed: Uint8Array;
}

export function encodeCompressedCertificate(c: CompressedCertificate): Uint8Array {
  const w = new Writer(c.compressed.length + 8);
  w.u16(c.algorithm).u24(c.uncompressedLength).vec24(c.compressed);
  return handshakeMessage(HandshakeType.compressed_certificate, w.finish());
}

export function parseCompressedCertificate(body: Uint8Array): CompressedCertificate {
  const r = new Reader(body, 'CompressedCertificate');
  const c = { algorithm: r.u16(), uncompressedLength: r.u24(), compressed: r.vec24(1) };
  r.end();
  return c;
}
