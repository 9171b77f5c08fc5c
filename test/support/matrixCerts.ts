/**
 * Certificates the interop matrix needs beyond the fixture PKI (pki.ts): key types its
 * generator does not make (ECDSA P-521, Ed448, RSASSA-PSS) and a leaf of about 60 KB (a
 * long SAN list, the size of a big real chain). Each is issued by the fixture CA with the
 * `openssl` command (an installed peer), once per test process, into the fixture directory.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runProcess } from './processes.js';
import { getPki, type CertFiles, type PkiFixtures } from './pki.js';

/** Key types of the matrix's extra certificates. */
export type ExtraKeyType = 'ecdsa-p521' | 'ed448' | 'rsa-pss';

/** The extra certificates, each for localhost / 127.0.0.1 (serverAuth and clientAuth). */
export interface MatrixCerts {
  pki: PkiFixtures;
  byType: Record<ExtraKeyType, CertFiles>;
  /** ECDSA P-256 leaf whose DER is about 60 KB (1150 SAN entries). */
  large: CertFiles;
}

const GENPKEY_ARGS: Record<ExtraKeyType, string[]> = {
  'ecdsa-p521': ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-521'],
  ed448: ['-algorithm', 'ED448'],
  'rsa-pss': ['-algorithm', 'RSA-PSS', '-pkeyopt', 'rsa_keygen_bits:2048'],
};

async function openssl(args: string[]): Promise<void> {
  const run = await runProcess('openssl', args, { timeoutMs: 20_000 });
  if (run.code !== 0) throw new Error(`openssl ${args.slice(0, 2).join(' ')} failed (exit ${String(run.code)}): ${run.stderr}`);
}

async function issue(pki: PkiFixtures, caKeyPath: string, name: string, keyArgs: string[] | { keyPath: string }, extraSans: string[] = []): Promise<CertFiles> {
  const dir = pki.dir;
  const keyPath = 'keyPath' in keyArgs ? keyArgs.keyPath : join(dir, `${name}-key.pem`);
  if (!('keyPath' in keyArgs)) await openssl(['genpkey', ...keyArgs, '-out', keyPath]);
  const csrPath = join(dir, `${name}.csr`);
  const extPath = join(dir, `${name}.ext`);
  const certPath = join(dir, `${name}-cert.pem`);
  writeFileSync(extPath, `subjectAltName=${['DNS:localhost', 'IP:127.0.0.1', ...extraSans].join(',')}\nextendedKeyUsage=serverAuth,clientAuth\n`);
  await openssl(['req', '-new', '-key', keyPath, '-subj', '/CN=localhost', '-out', csrPath]);
  await openssl(['x509', '-req', '-in', csrPath, '-CA', pki.ca.certPath, '-CAkey', caKeyPath, '-set_serial', String(Date.now()), '-days', '2', '-extfile', extPath, '-out', certPath]);
  const certPem = readFileSync(certPath, 'utf8');
  const chainPem = certPem + pki.ca.certPem;
  const chainPath = join(dir, `${name}-chain.pem`);
  writeFileSync(chainPath, chainPem);
  return { certPem, keyPem: readFileSync(keyPath, 'utf8'), chainPem, certPath, keyPath, chainPath };
}

async function build(): Promise<MatrixCerts> {
  const pki = await getPki();
  const caKeyPath = join(pki.dir, 'ca-key.pem');
  writeFileSync(caKeyPath, pki.ca.keyPem, { mode: 0o600 });
  const [p521, ed448, pss, large] = await Promise.all([
    issue(pki, caKeyPath, 'matrix-ecdsa-p521', GENPKEY_ARGS['ecdsa-p521']),
    issue(pki, caKeyPath, 'matrix-ed448', GENPKEY_ARGS.ed448),
    issue(pki, caKeyPath, 'matrix-rsa-pss', GENPKEY_ARGS['rsa-pss']),
    issue(
      pki,
      caKeyPath,
      'matrix-large',
      { keyPath: pki.server['ecdsa-p256'].keyPath },
      Array.from({ length: 1150 }, (_, i) => `DNS:host${String(i).padStart(4, '0')}.a-long-name-to-fill-the-certificate.test`),
    ),
  ]);
  return { pki, byType: { 'ecdsa-p521': p521, ed448, 'rsa-pss': pss }, large };
}

let cached: Promise<MatrixCerts> | undefined;

/** The extra certificates, made on the first call and shared by every later call in this process. */
export function getMatrixCerts(): Promise<MatrixCerts> {
  cached ??= build();
  return cached;
}
