import { createHmac } from 'node:crypto';
import { type HashName, hashLength, emptyHash, digest } from './hash.js';
import { hkdfExtract, hkdfExpandLabel, deriveSecret } from './hkdf.js';
import { type AeadName, aeadKeyLength, AEAD_NONCE_LENGTH } from './cipherSuites.js';
import { RecordAead } from './aead.js';

const EMPTY = new Uint8Array(0);

// The TLS 1.3 key schedule (RFC 8446 7.1):
//
//   0 -> HKDF-Extract(0, PSK or 0) = Early Secret
//        -> Derive-Secret(., "derived", "") -> HKDF-Extract(., (EC)DHE) = Handshake Secret
//        -> Derive-Secret(., "derived", "") -> HKDF-Extract(., 0)       = Master Secret

// Without a PSK the early secret and its "derived" child are constants per hash:
// cached, they save two HMACs per full handshake.
interface NoPskCache {
  early: Buffer;
  derived: Buffer;
}
const noPsk = new Map<HashName, NoPskCache>();

function noPskSecrets(h: HashName): NoPskCache {
  let c = noPsk.get(h);
  if (c === undefined) {
    const zero = Buffer.alloc(hashLength(h));
    const early = hkdfExtract(h, zero, zero);
    c = { early, derived: deriveSecret(h, early, 'derived', emptyHash(h)) };
    noPsk.set(h, c);
  }
  return c;
}

/** Early Secret = HKDF-Extract(0, PSK), with Hash.length zeros for the PSK when there is none. */
export function tls13EarlySecret(h: HashName, psk?: Uint8Array): Buffer {
  if (psk === undefined) return Buffer.from(noPskSecrets(h).early); // a copy: callers may wipe it
  return hkdfExtract(h, Buffer.alloc(hashLength(h)), psk);
}

/** Derive-Secret(secret, "derived", ""): the salt of the next HKDF-Extract stage. */
export function tls13DerivedSecret(h: HashName, secret: Uint8Array): Buffer {
  const c = noPskSecrets(h);
  if (secret.length === c.early.length && c.early.equals(secret)) return Buffer.from(c.derived);
  return deriveSecret(h, secret, 'derived', emptyHash(h));
}

/** Handshake Secret = HKDF-Extract(Derive-Secret(Early Secret, "derived", ""), (EC)DHE); the salt is wiped. */
export function tls13HandshakeSecret(h: HashName, earlySecret: Uint8Array, sharedSecret: Uint8Array): Buffer {
  const derived = tls13DerivedSecret(h, earlySecret);
  const hs = hkdfExtract(h, derived, sharedSecret);
  derived.fill(0);
  return hs;
}

/** Master Secret = HKDF-Extract(Derive-Secret(Handshake Secret, "derived", ""), 0); the salt is wiped. */
export function tls13MasterSecret(h: HashName, handshakeSecret: Uint8Array): Buffer {
  const derived = deriveSecret(h, handshakeSecret, 'derived', emptyHash(h));
  const ms = hkdfExtract(h, derived, Buffer.alloc(hashLength(h)));
  derived.fill(0);
  return ms;
}

/**
 * Handshake Secret and the two handshake traffic secrets.
 * `helloHash` is Transcript-Hash(ClientHello..ServerHello).
 */
export function tls13HandshakeSecrets(
  h: HashName,
  earlySecret: Uint8Array,
  sharedSecret: Uint8Array,
  helloHash: Uint8Array,
): { handshakeSecret: Buffer; clientHandshakeTraffic: Buffer; serverHandshakeTraffic: Buffer } {
  const handshakeSecret = tls13HandshakeSecret(h, earlySecret, sharedSecret);
  return {
    handshakeSecret,
    clientHandshakeTraffic: deriveSecret(h, handshakeSecret, 'c hs traffic', helloHash),
    serverHandshakeTraffic: deriveSecret(h, handshakeSecret, 's hs traffic', helloHash),
  };
}

/**
 * Master Secret, the first application traffic secrets and the exporter master secret.
 * `handshakeHash` is Transcript-Hash(ClientHello..server Finished).
 */
export function tls13ApplicationSecrets(
  h: HashName,
  handshakeSecret: Uint8Array,
  handshakeHash: Uint8Array,
): { masterSecret: Buffer; clientApplicationTraffic: Buffer; serverApplicationTraffic: Buffer; exporterMaster: Buffer } {
  const masterSecret = tls13MasterSecret(h, handshakeSecret);
  return {
    masterSecret,
    clientApplicationTraffic: deriveSecret(h, masterSecret, 'c ap traffic', handshakeHash),
    serverApplicationTraffic: deriveSecret(h, masterSecret, 's ap traffic', handshakeHash),
    exporterMaster: deriveSecret(h, masterSecret, 'exp master', handshakeHash),
  };
}

/** resumption_master_secret; `transcriptHash` runs through the client Finished. */
export function tls13ResumptionMasterSecret(h: HashName, masterSecret: Uint8Array, transcriptHash: Uint8Array): Buffer {
  return deriveSecret(h, masterSecret, 'res master', transcriptHash);
}

/** The PSK a NewSessionTicket stands for (RFC 8446 4.6.1). */
export function tls13ResumptionPsk(h: HashName, resumptionMaster: Uint8Array, ticketNonce: Uint8Array): Buffer {
  return hkdfExpandLabel(h, resumptionMaster, 'resumption', ticketNonce, hashLength(h));
}

/** binder_key (RFC 8446 7.1): "ext binder" for external PSKs, "res binder" for tickets. */
export function tls13BinderKey(h: HashName, earlySecret: Uint8Array, external: boolean): Buffer {
  return deriveSecret(h, earlySecret, external ? 'ext binder' : 'res binder', emptyHash(h));
}

/**
 * One connection's TLS 1.3 key schedule computed in the front: without a PSK (a
 * certificate handshake) or with a resumption PSK (which lives in the front, RFC 8446
 * 4.6.1). Its stages take transcript hashes and return only transcript-bound secrets, as a
 * key holder's do for an external PSK (docs/tls13-psk.md); the secrets between stages
 * (Early, Handshake and Master Secret) stay inside and are wiped by `wipe`.
 */
export class KeySchedule13 {
  private early: Buffer;
  private handshakeSecret: Buffer | null = null;
  private masterSecret: Buffer | null = null;

  /** `psk`: a resumption PSK ("res binder"); none for a handshake without PSK. */
  constructor(
    readonly hash: HashName,
    psk?: Uint8Array,
  ) {
    this.early = tls13EarlySecret(hash, psk);
  }

  /** The binder over Hash(ClientHello truncated before the binders) (RFC 8446 4.2.11.2). */
  binder(truncatedHelloHash: Uint8Array): Buffer {
    return tls13FinishedVerifyData(this.hash, tls13BinderKey(this.hash, this.early, false), truncatedHelloHash);
  }

  /**
   * Client and server handshake traffic secrets; `dheSecret` is the (EC)DHE shared secret,
   * null for psk_ke (the Handshake Secret then comes from zeros); `helloHash` is
   * Hash(ClientHello..ServerHello).
   */
  handshakeSecrets(dheSecret: Uint8Array | null, helloHash: Uint8Array): { client: Buffer; server: Buffer } {
    const hs = tls13HandshakeSecrets(this.hash, this.early, dheSecret ?? Buffer.alloc(hashLength(this.hash)), helloHash);
    this.handshakeSecret = hs.handshakeSecret;
    return { client: hs.clientHandshakeTraffic, server: hs.serverHandshakeTraffic };
  }

  /** Application traffic secrets and the exporter master secret; `handshakeHash` is Hash(ClientHello..server Finished). */
  applicationSecrets(handshakeHash: Uint8Array): { client: Buffer; server: Buffer; exporter: Buffer } {
    if (!this.handshakeSecret) throw new Error('application secrets before the handshake secrets');
    const app = tls13ApplicationSecrets(this.hash, this.handshakeSecret, handshakeHash);
    this.handshakeSecret.fill(0);
    this.handshakeSecret = null;
    this.masterSecret = app.masterSecret;
    return { client: app.clientApplicationTraffic, server: app.serverApplicationTraffic, exporter: app.exporterMaster };
  }

  /** resumption_master_secret; `clientFinishedHash` is Hash(ClientHello..client Finished). */
  resumptionMasterSecret(clientFinishedHash: Uint8Array): Buffer {
    if (!this.masterSecret) throw new Error('resumption master secret before the application secrets');
    return tls13ResumptionMasterSecret(this.hash, this.masterSecret, clientFinishedHash);
  }

  /** Forgets every secret it holds (the handshake is over or failed). */
  wipe(): void {
    for (const s of [this.early, this.handshakeSecret, this.masterSecret]) s?.fill(0);
    this.handshakeSecret = null;
    this.masterSecret = null;
  }
}

/**
 * Finished verify_data (RFC 8446 4.4.4): HMAC(finished_key, transcriptHash) with
 * finished_key = HKDF-Expand-Label(baseKey, "finished", "", Hash.length).
 * Also the PSK binder, with the binder key as base key.
 */
export function tls13FinishedVerifyData(h: HashName, baseTrafficSecret: Uint8Array, transcriptHash: Uint8Array): Buffer {
  const finishedKey = hkdfExpandLabel(h, baseTrafficSecret, 'finished', EMPTY, hashLength(h));
  const verifyData = createHmac(h, finishedKey).update(transcriptHash).digest();
  finishedKey.fill(0); // PSK-derived for a binder
  return verifyData;
}

/** application_traffic_secret_N+1 (RFC 8446 7.2, KeyUpdate). */
export function tls13NextTrafficSecret(h: HashName, secret: Uint8Array): Buffer {
  return hkdfExpandLabel(h, secret, 'traffic upd', EMPTY, hashLength(h));
}

/** write_key and write_iv for a traffic secret (RFC 8446 7.3). */
export function tls13TrafficKeys(h: HashName, secret: Uint8Array, aead: AeadName): { key: Buffer; iv: Buffer } {
  return {
    key: hkdfExpandLabel(h, secret, 'key', EMPTY, aeadKeyLength(aead)),
    iv: hkdfExpandLabel(h, secret, 'iv', EMPTY, AEAD_NONCE_LENGTH),
  };
}

/** Record protection for one TLS 1.3 epoch: the traffic key and IV of `secret` (RFC 8446 7.3). */
export function tls13RecordAead(h: HashName, aead: AeadName, secret: Uint8Array): RecordAead {
  const k = tls13TrafficKeys(h, secret, aead);
  return new RecordAead(aead, k.key, k.iv, 'tls13');
}

/**
 * TLS-Exporter (RFC 8446 7.5):
 * HKDF-Expand-Label(Derive-Secret(Secret, label, ""), "exporter", Hash(context_value), key_length).
 * As with every Derive-Secret, the label gets the "tls13 " prefix (e.g. "tls13 EXPORTER-my-app").
 */
export function tls13ExportKeyingMaterial(
  h: HashName,
  exporterMaster: Uint8Array,
  label: string,
  context: Uint8Array,
  length: number,
): Buffer {
  const secret = deriveSecret(h, exporterMaster, label, emptyHash(h));
  return hkdfExpandLabel(h, secret, 'exporter', digest(h, context), length);
}
