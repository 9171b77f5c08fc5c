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

/** The hashes TLS 1.3 suites use. */
export type Tls13PskHash = 'sha256' | 'sha384';

/** "ext binder" for an external PSK (every holder's), "res binder" for a resumption PSK (RFC 8448's traces). */
export type BinderKind = 'external' | 'resumption';

const EMPTY = new Uint8Array(0);

/** Early Secret = HKDF-Extract(0, PSK). PSK-equivalent: the caller zeroes it. */
function earlySecret(h: Tls13PskHash, psk: Uint8Array): Buffer {
  return hkdfExtract(h, Buffer.alloc(hashLength(h)), psk);
}

/** Runs `f` on `secret` and zeroes it afterwards, whatever happens. */
function using<T>(secret: Buffer, f: (s: Buffer) => T): T {
  try {
    return f(secret);
  } finally {
    secret.fill(0);
  }
}

/**
 * The PSK binder (RFC 8446 4.2.11.2): HMAC(finished_key(binder_key), truncatedHelloHash),
 * binder_key = Derive-Secret(Early Secret, "ext binder" | "res binder", "").
 */
export function tls13PskBinder(h: Tls13PskHash, psk: Uint8Array, truncatedHelloHash: Uint8Array, kind: BinderKind = 'external'): Buffer {
  return using(earlySecret(h, psk), (es) =>
    using(deriveSecret(h, es, kind === 'external' ? 'ext binder' : 'res binder', emptyHash(h)), (binderKey) =>
      using(hkdfExpandLabel(h, binderKey, 'finished', EMPTY, hashLength(h)), (finishedKey) => createHmac(h, finishedKey).update(truncatedHelloHash).digest()),
    ),
  );
}

/**
 * Handshake Secret = HKDF-Extract(Derive-Secret(ES, "derived", ""), (EC)DHE or zeros):
 * psk_ke (dheSecret null) has no (EC)DHE, so Hash.length zeros go in (RFC 8446 7.1).
 */
function handshakeSecret(h: Tls13PskHash, psk: Uint8Array, dheSecret: Uint8Array | null): Buffer {
  return using(earlySecret(h, psk), (es) =>
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
  return using(masterSecret(h, psk, dheSecret), (ms) => deriveSecret(h, ms, 'res master', clientFinishedHash));
}
