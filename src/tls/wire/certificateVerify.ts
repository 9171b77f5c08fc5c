/**
 * CertificateVerify (RFC 8446 4.4.3, RFC 5246 7.4.8) and the DigitallySigned shape both
 * versions share with the TLS 1.2 ServerKeyExchange: SignatureScheme algorithm; opaque
 * signature<0..2^16-1>. Also the content a TLS 1.3 CertificateVerify signs.
 */
import { HandshakeType } from './constants.js';
import { handshakeMessage } from './framing.js';
import { Reader } from './reader.js';
import { Writer } from './writer.js';

/** RFC 8446 4.4.3: the context strings of a TLS 1.3 CertificateVerify. */
export const CERTIFICATE_VERIFY_CONTEXT = {
  server: 'TLS 1.3, server CertificateVerify',
  client: 'TLS 1.3, client CertificateVerify',
} as const;

/** What a TLS 1.3 CertificateVerify signs (RFC 8446 4.4.3): 64 spaces, the context string, 0, the transcript hash. */
export function certificateVerifyContent(transcriptHash: Uint8Array, side: 'server' | 'client' = 'server'): Buffer {
  const ctx = CERTIFICATE_VERIFY_CONTEXT[side];
  // allocUnsafe: from the Buffer pool (every byte is written below).
  const out = Buffer.allocUnsafe(64 + ctx.length + 1 + transcriptHash.length).fill(0x20, 0, 64);
  out.write(ctx, 64, 'latin1');
  out[64 + ctx.length] = 0;
  out.set(transcriptHash, 64 + ctx.length + 1);
  return out;
}

/** A signature and the scheme it was made with. */
export interface DigitallySigned {
  readonly scheme: number;
  readonly signature: Uint8Array;
}

export function writeDigitallySigned(w: Writer, s: DigitallySigned): void {
  w.u16(s.scheme).vec16(s.signature);
}

export function readDigitallySigned(r: Reader): DigitallySigned {
  return { scheme: r.u16(), signature: r.vec16() };
}

/** A framed CertificateVerify (either version). */
export function encodeCertificateVerify(scheme: number, signature: Uint8Array): Uint8Array {
  const w = new Writer(signature.length + 8);
  writeDigitallySigned(w, { scheme, signature });
  return handshakeMessage(HandshakeType.certificate_verify, w.finish());
}

/** Decodes a CertificateVerify body (either version); whether the scheme was offered is the caller's check. */
export function parseCertificateVerify(body: Uint8Array): DigitallySigned {
  const r = new Reader(body, 'CertificateVerify');
  const s = readDigitallySigned(r);
  r.end();
  return s;
}
