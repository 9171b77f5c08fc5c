/**
 * The TLS 1.3 key schedule (RFC 8446 7.1) from a PSK, as a key holder runs it: each step
 * starts again from the PSK and returns only values bound to one connection's transcript
 * (docs/tls13-psk.md). The Early Secret, the binder key, Derive-Secret(ES, "derived", ""),
 * the Handshake and Master Secrets are made here, used, and zeroed before the step returns.
 * Stateless on purpose: a step can run in any holder (this process, a key process, keyd),
 * be retried or cancelled, and nothing PSK-equivalent outlives it.
 */
import { createHmac } from 'node:crypto';
import { emptyHash, hashLength } from '../tls/crypto/hash.js';
import { deriveSecret, hkdfExpandLabel, hkdfExtract } from '../tls/crypto/hkdf.js';
import { tls13BinderKey, tls13EarlySecret, tls13ResumptionMasterSecret } from '../tls/crypto/keySchedule13.js';

/** The hashes TLS 1.3 suites use. */
export type Tls13PskHash = 'sha256' | 'sha384';

const EMPTY = new Uint8Array(0);

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
 * truncatedHelloHash), binder_key = Derive-Secret(Early Secret, "ext binder", ""). The
 * engine's tls13FinishedVerifyData computes the same HMAC but leaves its finished_key
 * (PSK-derived) unwiped, hence this one.
 */
export function tls13PskBinder(h: Tls13PskHash, psk: Uint8Array, truncatedHelloHash: Uint8Array): Buffer {
  return using(tls13EarlySecret(h, psk), (es) =>
    using(tls13BinderKey(h, es, true), (binderKey) =>
      using(hkdfExpandLabel(h, binderKey, 'finished', EMPTY, hashLength(h)), (finishedKey) => createHmac(h, finishedKey).update(truncatedHelloHash).digest()),
    ),
  );
}

/**
 * Handshake Secret = HKDF-Extract(Derive-Secret(ES, "derived", ""), (EC)DHE or zeros):
 * psk_ke (dheSecret null) has no (EC)DHE, so Hash.length zeros go in (RFC 8446 7.1). The
 * engine's tls13HandshakeSecrets and tls13ApplicationSecrets leave their "derived" salt
 * (PSK-equivalent under psk_ke) unwiped, hence these.
 */
function handshakeSecret(h: Tls13PskHash, psk: Uint8Array, dheSecret: Uint8Array | null): Buffer {
  return using(tls13EarlySecret(h, psk), (es) =>
    using(deriveSecret(h, es, 'derived', emptyHash(h)), (derived) => hkdfExtract(h, derived, dheSecret ?? Buffer.alloc(hashLength(h)))),
  );
}

/** Master Secret = HKDF-Extract(Derive-Secret(HS, "derived", ""), zeros). */
function masterSecret(h: Tls13PskHash, psk: Uint8Array, dheSecret: Uint8Array | null): Buffer {
  return using(handshakeSecret(h, psk, dheSecret), (hs) => using(deriveSecret(h, hs, 'derived', emptyHash(h)), (derived) => hkdfExtract(h, derived, Buffer.alloc(hashLength(h)))));
}

/** client/server_handshake_traffic_secret; `helloHash` = Hash(ClientHello..ServerHello). */
export function tls13PskHandshakeSecrets(h: Tls13PskHash, psk: Uint8Array, dheSecret: Uint8Array | null, helloHash: Uint8Array): { client: Buffer; server: Buffer } {
  return using(handshakeSecret(h, psk, dheSecret), (hs) => ({
    client: deriveSecret(h, hs, 'c hs traffic', helloHash),
    server: deriveSecret(h, hs, 's hs traffic', helloHash),
  }));
}

/** client/server_application_traffic_secret_0 and exporter_master_secret; `handshakeHash` = Hash(ClientHello..server Finished). */
export function tls13PskApplicationSecrets(h: Tls13PskHash, psk: Uint8Array, dheSecret: Uint8Array | null, handshakeHash: Uint8Array): { client: Buffer; server: Buffer; exporter: Buffer } {
  return using(masterSecret(h, psk, dheSecret), (ms) => ({
    client: deriveSecret(h, ms, 'c ap traffic', handshakeHash),
    server: deriveSecret(h, ms, 's ap traffic', handshakeHash),
    exporter: deriveSecret(h, ms, 'exp master', handshakeHash),
  }));
}

/** resumption_master_secret; `clientFinishedHash` = Hash(ClientHello..client Finished). */
export function tls13PskResumptionMasterSecret(h: Tls13PskHash, psk: Uint8Array, dheSecret: Uint8Array | null, clientFinishedHash: Uint8Array): Buffer {
  return using(masterSecret(h, psk, dheSecret), (ms) => tls13ResumptionMasterSecret(h, ms, clientFinishedHash));
}
