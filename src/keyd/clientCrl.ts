/**
 * Client certificate revocation for keyd's mutual-TLS port (`tls.crl`): a PEM file of CRLs
 * issued by the client CA(s). OpenSSL checks every new connection against them; this module
 * reads and checks the file (each CRL signed by a CA of `tls.clientCa`, not past its
 * nextUpdate, which would make OpenSSL refuse every front) and says which established
 * connections hold a certificate a newer CRL revokes, so that keyd can close them.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { unwatchFile, watchFile, type Stats } from 'node:fs';
import { readFile } from 'node:fs/promises';

const PEM_CRL = /-----BEGIN X509 CRL-----[\s\S]+?-----END X509 CRL-----/g;
const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The CRLs of one `tls.crl` file, checked. */
export interface ClientCrls {
  /** The file's CRLs as PEM, for the TLS server's `crl` option. */
  readonly pem: string;
  /** How many CRLs, and how many certificates they revoke, for logs. */
  readonly crls: number;
  readonly revokedCount: number;
  /** The earliest nextUpdate, when any CRL has one. */
  readonly nextUpdate?: Date;
  /** Whether the certificate (DER) is revoked by one of these CRLs (same issuer name and serial). */
  revokes(certDer: Uint8Array): boolean;
}

/**
 * Reads `crlFile` and checks each CRL against the CAs of `caFile`. Throws an Error naming
 * the file and the problem: no CRL in it, a CRL no CA of the file signed, or one past its
 * nextUpdate (at `now`).
 */
export async function loadClientCrls(crlFile: string, caFile: string, now = Date.now()): Promise<ClientCrls> {
  const crypto = webcrypto as unknown as Crypto;
  const [crlText, caText] = await Promise.all([readFile(crlFile, 'utf8'), readFile(caFile, 'utf8')]);
  const blocks = crlText.match(PEM_CRL) ?? [];
  if (blocks.length === 0) throw new Error(`${crlFile} holds no PEM CRL ("-----BEGIN X509 CRL-----")`);
  const cas = (caText.match(PEM_CERT) ?? []).map((b) => new x509.X509Certificate(b));
  const revoked = new Set<string>();
  let nextUpdate: Date | undefined;
  for (const [i, block] of blocks.entries()) {
    let crl: x509.X509Crl;
    try {
      crl = new x509.X509Crl(block);
    } catch {
      throw new Error(`${crlFile}: CRL ${i + 1} does not parse`);
    }
    const issuer = crl.issuerName.toString();
    const ca = cas.find((c) => c.subjectName.toString() === issuer);
    if (!ca || !(await crl.verify({ publicKey: ca }, crypto))) {
      throw new Error(`${crlFile}: CRL ${i + 1} (issuer ${issuer}) is not signed by a CA of ${caFile}`);
    }
    if (crl.nextUpdate) {
      if (crl.nextUpdate.getTime() < now) throw new Error(`${crlFile}: CRL ${i + 1} (issuer ${issuer}) is out of date since ${crl.nextUpdate.toISOString()}: every front would be refused`);
      if (!nextUpdate || crl.nextUpdate < nextUpdate) nextUpdate = crl.nextUpdate;
    }
    for (const e of crl.entries) revoked.add(`${issuer}|${e.serialNumber.toLowerCase()}`);
  }
  return {
    pem: blocks.join('\n') + '\n',
    crls: blocks.length,
    revokedCount: revoked.size,
    ...(nextUpdate ? { nextUpdate } : {}),
    revokes(certDer: Uint8Array): boolean {
      if (revoked.size === 0) return false;
      const cert = new x509.X509Certificate(Uint8Array.from(certDer));
      return revoked.has(`${cert.issuerName.toString()}|${cert.serialNumber.toLowerCase()}`);
    },
  };
}

/**
 * Watches `crlFile` (its status polled every `intervalMs`) and, when it changes, hands the
 * new CRLs to `onLoaded`; `onRejected` gets the reason when loadClientCrls refuses them or
 * `onLoaded` fails. Returns the function that stops watching.
 */
export function watchClientCrls(crlFile: string, caFile: string, intervalMs: number, onLoaded: (crls: ClientCrls) => Promise<void>, onRejected: (e: Error) => void): () => void {
  const listener = (now: Stats, before: Stats): void => {
    if (now.mtimeMs === before.mtimeMs && now.size === before.size && now.ino === before.ino) return;
    loadClientCrls(crlFile, caFile).then(onLoaded).catch(onRejected);
  };
  watchFile(crlFile, { interval: intervalMs, persistent: false }, listener);
  return () => unwatchFile(crlFile, listener);
}
