/**
 * TLS 1.2 master secrets from a PSK that stays inside keyd (RFC 4279, RFC 5489, RFC 7627).
 * Only the 48-byte master secret leaves: it is per-connection, the PSK is not.
 */
import { createHmac } from 'node:crypto';
import type { PskMasterSecretRequest } from '../keys/keyOperations.js';

/**
 * TLS 1.2 PRF (RFC 5246 section 5): P_hash(secret, label + seed) truncated to `length`.
 * A local copy so keyd does not depend on the engine's module layout; it is a few HMACs.
 */
export function tls12Prf(hash: 'sha256' | 'sha384', secret: Uint8Array, label: string, seed: Uint8Array, length: number): Buffer {
  const labelSeed = Buffer.concat([Buffer.from(label, 'latin1'), seed]);
  const out = Buffer.allocUnsafe(length);
  let a: Buffer = labelSeed; // A(0)
  let off = 0;
  while (off < length) {
    a = createHmac(hash, secret).update(a).digest(); // A(i)
    const block = createHmac(hash, secret).update(a).update(labelSeed).digest();
    off += block.copy(out, off, 0, Math.min(block.length, length - off));
  }
  return out;
}

/**
 * The PSK premaster secret of RFC 4279 section 2 (plain PSK: `other` is zeros of the PSK's
 * length) and RFC 5489 section 2 (ECDHE_PSK: `other` is the ECDHE shared secret):
 * uint16 len(other) + other + uint16 len(psk) + psk.
 */
export function pskPremasterSecret(psk: Uint8Array, other: Uint8Array | null): Buffer {
  const o = other ?? new Uint8Array(psk.length);
  const out = Buffer.allocUnsafe(4 + o.length + psk.length);
  out.writeUInt16BE(o.length, 0);
  out.set(o, 2);
  out.writeUInt16BE(psk.length, 2 + o.length);
  out.set(psk, 4 + o.length);
  return out;
}

/** The 48-byte master secret for `req`, computed from `psk`. The premaster is wiped after use. */
export function pskMasterSecret(psk: Uint8Array, req: PskMasterSecretRequest): Buffer {
  const premaster = pskPremasterSecret(psk, req.otherSecret);
  try {
    return tls12Prf(req.hash, premaster, req.extended ? 'extended master secret' : 'master secret', req.seed, 48);
  } finally {
    premaster.fill(0);
  }
}
