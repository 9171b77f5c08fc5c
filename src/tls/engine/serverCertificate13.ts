/**
 * The Certificate message a TLS 1.3 server sends in one handshake, and how it signs
 * CertificateVerify: with the chain's own key through its holder, or, for a client that
 * takes delegated credentials (RFC 9345), with the current credential's key in this
 * process. Every message is made once and reused: the plain one per chain, the one
 * carrying a credential per credential, and each compressed form (RFC 8879) per message
 * and algorithm (certificateCompression.ts), so no handshake pays for an encoding or a
 * compression another already made.
 */
import { verifyDelegatedCredential } from '../../keys/delegatedCredentialIssuer.js';
import type { CurrentDelegatedCredential } from '../../keys/delegatedCredentials.js';
import { encodeCertificate13 } from '../wire/certificate13.js';
import type { ClientHello } from '../wire/clientHello.js';
import { ExtensionType } from '../wire/constants.js';
import { chooseCertificateCompression, compressCertificateMessage, type SupportedCompressionAlgorithm } from './certificateCompression.js';
import type { CertifiedKey } from './certificates.js';

/** What the server sends as its certificate, and with what it signs. */
export interface ServerCertificate13 {
  /** The framed Certificate or CompressedCertificate message. */
  readonly message: Uint8Array;
  /** The algorithm it is compressed with, if it is. */
  readonly compression?: SupportedCompressionAlgorithm;
  /** The delegated credential on the end-entity entry: CertificateVerify is signed with its key. */
  readonly delegatedCredential?: CurrentDelegatedCredential;
}

/** Per credential: the chain it was checked against and the Certificate carrying it (null: it is not this chain's). */
const credentialMessages = new WeakMap<CurrentDelegatedCredential, { readonly leaf: Uint8Array; readonly message: Uint8Array | null }>();

/**
 * The certificate to send `ch` from `cert`: with the current delegated credential when the
 * client offered delegated_credential with its scheme and lists its algorithm in
 * signature_algorithms (RFC 9345 4.1.1) and it has not expired at `now`; compressed with
 * the first of `compression` the client offered.
 */
export function serverCertificate13(cert: CertifiedKey, ch: ClientHello, compression: readonly SupportedCompressionAlgorithm[], now: number): ServerCertificate13 {
  const dc = usableCredential(cert, ch, now);
  const withCredential = dc && credentialMessage(cert, dc);
  const plain = withCredential ?? encodeCertificate13(new Uint8Array(0), cert.chain);
  const algorithm = chooseCertificateCompression(ch.compressCertificate, compression);
  return {
    message: algorithm === undefined ? plain : compressCertificateMessage(plain, algorithm),
    ...(algorithm !== undefined ? { compression: algorithm } : {}),
    ...(dc && withCredential ? { delegatedCredential: dc } : {}),
  };
}

function usableCredential(cert: CertifiedKey, ch: ClientHello, now: number): CurrentDelegatedCredential | undefined {
  if (!cert.delegatedCredentials || !ch.delegatedCredentialSchemes || !ch.signatureAlgorithms) return undefined;
  const dc = cert.delegatedCredentials.current(now);
  // The source should never hand out an expired credential; the engine does not trust that.
  if (!dc || dc.expiresAt <= now || !dc.usableFor(ch.delegatedCredentialSchemes, ch.signatureAlgorithms)) return undefined;
  return dc;
}

/**
 * The Certificate carrying `dc`, made once per credential after checking, once, that the
 * certificate's key signed it for this very leaf: a credential made for another
 * certificate (a renewed one with the same key) would fail every client, so it is not
 * served and the handshake falls back to the key holder.
 */
function credentialMessage(cert: CertifiedKey, dc: CurrentDelegatedCredential): Uint8Array | null {
  const leaf = cert.chain[0];
  let made = credentialMessages.get(dc);
  if (made?.leaf !== leaf) {
    const request = { certificate: leaf, credential: dc.credential.cred, algorithm: dc.algorithm, side: 'server' as const };
    const belongs = verifyDelegatedCredential(cert.publicKey, request, dc.credential.signature);
    const entryExtensions = [[{ type: ExtensionType.delegated_credential, data: dc.dcBytes }]];
    made = { leaf, message: belongs ? encodeCertificate13(new Uint8Array(0), cert.chain, entryExtensions) : null };
    credentialMessages.set(dc, made);
  }
  return made.message;
}
