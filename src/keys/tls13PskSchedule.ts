/**
 * The TLS 1.3 key schedule (RFC 8446 7.1) from a PSK, as a key holder runs it: each step
 * starts again from the PSK and returns only values bound to one connection's transcript
 * (docs/tls13-psk.md). The Early Secret, the binder key, Derive-Secret(ES, "derived", ""),
 * the Handshake and Master Secrets are made here, used, and zeroed before the step returns.
 * Stateless on purpose: a step can run in any holder (this process, a key process, keyd),
 * be retried or cancelled, and nothing PSK-equivalent outlives it.
 */
import { hashLength } from '../tls/crypto/hash.js';
import {
  tls13ApplicationSecrets,
  tls13BinderKey,
  tls13EarlySecret,
  tls13FinishedVerifyData,
  tls13HandshakeSecret,
  tls13HandshakeSecrets,
  tls13MasterSecret,
  tls13ResumptionMasterSecret,
} from '../tls/crypto/keySchedule13.js';

/** The hashes TLS 1.3 suites use. */
export type Tls13PskHash = 'sha256' | 'sha384';

/** Runs `f` on `secret` and zeroes it afterwards, whatever happens. */
function using<T>(secret: Buffer, f: (s: Buffer) => T): T {
  try {
    return f(secret);
  } finally {
    secret.fill(0);
  }
}

/**
 * The binder of an external PSK (RFC 8446 4.2.11.2): HMAC(finished_key(binder_key),
 * truncatedHelloHash), binder_key = Derive-Secret(Early Secret, "ext binder", "").
 */
export function tls13PskBinder(h: Tls13PskHash, psk: Uint8Array, truncatedHelloHash: Uint8Array): Buffer {
  return using(tls13EarlySecret(h, psk), (es) => using(tls13BinderKey(h, es, true), (binderKey) => tls13FinishedVerifyData(h, binderKey, truncatedHelloHash)));
}

/** Handshake Secret; psk_ke (dheSecret null) has no (EC)DHE, so Hash.length zeros go in (RFC 8446 7.1). */
function handshakeSecret(h: Tls13PskHash, psk: Uint8Array, dheSecret: Uint8Array | null): Buffer {
  return using(tls13EarlySecret(h, psk), (es) => tls13HandshakeSecret(h, es, dheSecret ?? Buffer.alloc(hashLength(h))));
}

/** Master Secret. */
function masterSecret(h: Tls13PskHash, psk: Uint8Array, dheSecret: Uint8Array | null): Buffer {
  return using(handshakeSecret(h, psk, dheSecret), (hs) => tls13MasterSecret(h, hs));
}

/** client/server_handshake_traffic_secret; `helloHash` = Hash(ClientHello..ServerHello). */
export function tls13PskHandshakeSecrets(h: Tls13PskHash, psk: Uint8Array, dheSecret: Uint8Array | null, helloHash: Uint8Array): { client: Buffer; server: Buffer } {
  const s = using(tls13EarlySecret(h, psk), (es) => tls13HandshakeSecrets(h, es, dheSecret ?? Buffer.alloc(hashLength(h)), helloHash));
  s.handshakeSecret.fill(0);
  return { client: s.clientHandshakeTraffic, server: s.serverHandshakeTraffic };
}

/** client/server_application_traffic_secret_0 and exporter_master_secret; `handshakeHash` = Hash(ClientHello..server Finished). */
export function tls13PskApplicationSecrets(h: Tls13PskHash, psk: Uint8Array, dheSecret: Uint8Array | null, handshakeHash: Uint8Array): { client: Buffer; server: Buffer; exporter: Buffer } {
  const s = using(handshakeSecret(h, psk, dheSecret), (hs) => tls13ApplicationSecrets(h, hs, handshakeHash));
  s.masterSecret.fill(0);
  return { client: s.clientApplicationTraffic, server: s.serverApplicationTraffic, exporter: s.exporterMaster };
}

/** resumption_master_secret; `clientFinishedHash` = Hash(ClientHello..client Finished). */
export function tls13PskResumptionMasterSecret(h: Tls13PskHash, psk: Uint8Array, dheSecret: Uint8Array | null, clientFinishedHash: Uint8Array): Buffer {
  return using(masterSecret(h, psk, dheSecret), (ms) => tls13ResumptionMasterSecret(h, ms, clientFinishedHash));
}
