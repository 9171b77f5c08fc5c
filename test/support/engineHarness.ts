/**
 * Drives a TlsServerConnection synchronously for sans-IO tests: key operations are
 * answered at once with a signature made here.
 */
import { createPrivateKey, sign as cryptoSign, type KeyObject } from 'node:crypto';
import type { KeyOperations } from '../../src/keys/keyOperations.js';
import { LocalKey } from '../../src/keys/localKey.js';
import { cryptoParams, schemeInfo } from '../../src/tls/crypto/signatureSchemes.js';
import { certifiedKey } from '../../src/tls/engine/certificates.js';
import { resolveServerConfig, type ServerConfig, type ServerConfigInput } from '../../src/tls/engine/config.js';
import type { EngineEvent } from '../../src/tls/engine/events.js';
import { TlsServerConnection } from '../../src/tls/engine/serverConnection.js';
import { getPki, type KeyType } from './pki.js';

export interface Harness {
  config: ServerConfig;
  privateKey: KeyObject;
}

/** `holder` makes the certificate's key holder from the private key (default: a LocalKey; see heldElsewhere.ts). */
export async function harness(overrides: Partial<ServerConfigInput> = {}, keyType: KeyType = 'ecdsa-p256', holder: (k: KeyObject) => KeyOperations = (k) => new LocalKey(k)): Promise<Harness> {
  const pki = await getPki();
  const files = pki.server[keyType];
  const privateKey = createPrivateKey(files.keyPem);
  const config = resolveServerConfig({ certificates: [certifiedKey(files.chainPem, holder(privateKey))], ...overrides });
  return { config, privateKey };
}

export interface Step {
  out: Buffer[];
  events: EngineEvent[];
}

/** Feeds `input` and answers key operations until the engine is quiet. */
export function feed(conn: TlsServerConnection, input: Uint8Array | Uint8Array[], privateKey: KeyObject, tamper?: (sig: Buffer) => Buffer): Step {
  const out: Buffer[] = [];
  const events: EngineEvent[] = [];
  for (const chunk of Array.isArray(input) ? input : [input]) conn.receive(chunk);
  for (;;) {
    out.push(...conn.takeOutput().map((b) => Buffer.from(b)));
    const ev = conn.takeEvents();
    if (ev.length === 0) break;
    events.push(...ev);
    for (const e of ev) {
      if (e.type !== 'keyOperation' || e.request.kind !== 'sign') continue;
      const info = schemeInfo(e.request.scheme)!;
      const p = cryptoParams(info, privateKey);
      let sig: Buffer = cryptoSign(p.algorithm, e.request.message, p.key);
      if (tamper) sig = tamper(sig);
      conn.completeKeyOperation(e.request.id, sig);
    }
  }
  return { out, events };
}

/** Splits a byte stream of records into [type, body] pairs. */
export function records(out: Buffer[]): { type: number; body: Buffer }[] {
  const all = Buffer.concat(out);
  const recs: { type: number; body: Buffer }[] = [];
  let off = 0;
  while (off + 5 <= all.length) {
    const len = all.readUInt16BE(off + 3);
    recs.push({ type: all[off], body: all.subarray(off + 5, off + 5 + len) });
    off += 5 + len;
  }
  return recs;
}

/** The alert the engine reported sending, if any. */
export function alertSent(events: EngineEvent[]): number | undefined {
  for (const e of events) if (e.type === 'error') return e.alertSent;
  return undefined;
}
