/**
 * Test certificates: one CA, a server certificate per key type for the loopback names,
 * a second set for SNI tests, client certificates, and an unrelated CA for negative tests.
 * Made once per test process (lazily, on first use), kept in a temp dir removed at exit.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, issueCertificate, KEY_TYPES, type Issuer, type KeyType } from '../../src/cli/pki.js';

export { KEY_TYPES, type KeyType };

/** A certificate and key, as PEM and as files. */
export interface CertFiles {
  /** Leaf alone. */
  certPem: string;
  /** PKCS#8. */
  keyPem: string;
  /** Leaf + CA: what a server or client should send. */
  chainPem: string;
  certPath: string;
  keyPath: string;
  chainPath: string;
}

/** A CA as PEM and file. */
export interface CaFiles extends Issuer {
  certPath: string;
}

export interface PkiFixtures {
  dir: string;
  /** ECDSA P-256 CA that issued everything below except `untrusted`. */
  ca: CaFiles;
  /** Server certificates (CN localhost; SANs localhost, 127.0.0.1, ::1), one per key type. */
  server: Record<KeyType, CertFiles>;
  /** Server certificates for SNI tests (CN example.test; SANs example.test, *.wild.test). */
  sni: Record<KeyType, CertFiles>;
  /** Client certificate (ECDSA P-256, CN keyward-test-client, clientAuth). */
  client: CertFiles;
  /** Client certificate per key type (CN keyward-test-client-<type>). */
  clients: Record<KeyType, CertFiles>;
  /** A CA nobody trusts, with a server and a client certificate under it. */
  untrusted: { ca: CaFiles; server: CertFiles; client: CertFiles };
}

/** Names in `server` certificates. */
export const SERVER_DNS = ['localhost'];
export const SERVER_IPS = ['127.0.0.1', '::1'];
/** Names in `sni` certificates. */
export const SNI_NAMES = ['example.test', '*.wild.test'];

let cached: Promise<PkiFixtures> | undefined;

function save(dir: string, name: string, issued: { certPem: string; keyPem: string; chainPem: string }): CertFiles {
  const certPath = join(dir, `${name}-cert.pem`);
  const keyPath = join(dir, `${name}-key.pem`);
  const chainPath = join(dir, `${name}-chain.pem`);
  writeFileSync(certPath, issued.certPem);
  writeFileSync(keyPath, issued.keyPem, { mode: 0o600 });
  writeFileSync(chainPath, issued.chainPem);
  return { ...issued, certPath, keyPath, chainPath };
}

function saveCa(dir: string, name: string, ca: Issuer): CaFiles {
  const certPath = join(dir, `${name}.pem`);
  writeFileSync(certPath, ca.certPem);
  return { ...ca, certPath };
}

async function perKeyType(make: (t: KeyType) => Promise<CertFiles>): Promise<Record<KeyType, CertFiles>> {
  const entries = await Promise.all(KEY_TYPES.map(async (t) => [t, await make(t)] as const));
  return Object.fromEntries(entries) as Record<KeyType, CertFiles>;
}

async function build(): Promise<PkiFixtures> {
  const dir = mkdtempSync(join(tmpdir(), 'keyward-pki-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

  const caIssuer = await createCa({ commonName: 'keyward test CA', keyType: 'ecdsa-p256' });
  const ca = saveCa(dir, 'ca', caIssuer);
  const server = await perKeyType(async (t) =>
    save(dir, `server-${t}`, await issueCertificate(caIssuer, { keyType: t, commonName: 'localhost', dnsNames: SERVER_DNS, ipAddresses: SERVER_IPS, usage: 'server' })),
  );
  const sni = await perKeyType(async (t) =>
    save(dir, `sni-${t}`, await issueCertificate(caIssuer, { keyType: t, commonName: 'example.test', dnsNames: SNI_NAMES, usage: 'server' })),
  );
  const clients = await perKeyType(async (t) =>
    save(dir, `client-${t}`, await issueCertificate(caIssuer, { keyType: t, commonName: `keyward-test-client-${t}`, usage: 'client' })),
  );
  const client = save(dir, 'client', await issueCertificate(caIssuer, { keyType: 'ecdsa-p256', commonName: 'keyward-test-client', usage: 'client' }));

  const otherIssuer = await createCa({ commonName: 'untrusted test CA', keyType: 'ecdsa-p256' });
  const untrusted = {
    ca: saveCa(dir, 'untrusted-ca', otherIssuer),
    server: save(dir, 'untrusted-server', await issueCertificate(otherIssuer, { keyType: 'ecdsa-p256', commonName: 'localhost', dnsNames: SERVER_DNS, ipAddresses: SERVER_IPS, usage: 'server' })),
    client: save(dir, 'untrusted-client', await issueCertificate(otherIssuer, { keyType: 'ecdsa-p256', commonName: 'untrusted-client', usage: 'client' })),
  };
  return { dir, ca, server, sni, client, clients, untrusted };
}

/** The fixture set, created on the first call and shared by every later call in this process. */
export function getPki(): Promise<PkiFixtures> {
  cached ??= build();
  return cached;
}
