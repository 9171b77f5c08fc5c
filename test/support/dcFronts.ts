/**
 * Key holders that sign delegated credentials, for the interop tests of RFC 9345: two ECDSA
 * P-256 certificates with DelegationUsage from the test CA (the type Firefox takes DCs
 * for), one whose key is in keyd (which audits every operation) and one whose key is in a
 * key process, each with a DelegatedCredentialManager over its holder; and the certificate
 * to give a keyward server for each.
 */
import { createPrivateKey } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { issueCertificate } from '../../src/cli/pki.js';
import { DelegatedCredentialManager } from '../../src/keys/delegatedCredentials.js';
import { startKeyProcess, type KeyProcessKey } from '../../src/keys/keyProcess.js';
import { KeydClient, connectKeydAdmin, type RemoteKey } from '../../src/keys/remoteKey.js';
import type { CertificateWithKey } from '../../src/node/server.js';
import { makeKeydPki, readAudit, startTestKeyd, tempDir, tlsClientOptions } from './keydFixture.js';
import { SERVER_DNS, SERVER_IPS, getPki, type PkiFixtures } from './pki.js';

/** One certificate whose key is in a holder that signs credentials, and its manager. */
export interface DcHolder {
  /** 'keyd' or 'key process', for test names. */
  name: string;
  chainPem: string;
  key: RemoteKey | KeyProcessKey;
  manager: DelegatedCredentialManager;
  /** For a keyward server's `certificates`: the chain, the holder, the credentials. */
  certificate: CertificateWithKey;
}

export interface DcFronts {
  pki: PkiFixtures;
  keyd: DcHolder;
  keyProcess: DcHolder;
  /** keyd's audit lines for the keyd holder's key, by operation. */
  audit(): Promise<{ sign: number; delegatedCredential: number }>;
  close(): Promise<void>;
}

async function holder(name: string, chainPem: string, key: RemoteKey | KeyProcessKey): Promise<DcHolder> {
  const leaf = Buffer.from(chainPem.split('-----END CERTIFICATE-----')[0].replace(/-----BEGIN CERTIFICATE-----|\s/g, ''), 'base64');
  const manager = new DelegatedCredentialManager({ issuer: key, certificate: leaf });
  if (!(await manager.start())) throw new Error(`no delegated credential from the ${name}: ${manager.stats.lastError ?? ''}`);
  return { name, chainPem, key, manager, certificate: { cert: chainPem, key, delegatedCredentials: manager } };
}

/** Starts keyd (its front rule allows delegated credentials) and a key process, each holding a DC-capable certificate's key. */
export async function startDcFronts(): Promise<DcFronts> {
  const pki = await getPki();
  const root = await tempDir('keyward-dc-');
  const issue = () => issueCertificate(pki.ca, { keyType: 'ecdsa-p256', commonName: 'localhost', dnsNames: SERVER_DNS, ipAddresses: SERVER_IPS, usage: 'server', delegation: true });
  const [inKeyd, inProcess] = await Promise.all([issue(), issue()]);
  const keyPath = join(root.dir, 'process-key.pem');
  await writeFile(keyPath, inProcess.keyPem, { mode: 0o600 });

  const linkPki = await makeKeydPki(root.dir, ['front', 'admin']);
  const { keyd } = await startTestKeyd(root.dir, linkPki, {
    clients: [
      { id: 'cn:front', keys: ['*'], psks: [], delegatedCredentials: true },
      { id: 'cn:admin', admin: true },
    ],
  });
  let client: KeydClient | undefined;
  let processKey: KeyProcessKey | undefined;
  const managers: DelegatedCredentialManager[] = [];
  const close = async () => {
    for (const m of managers) m.stop();
    client?.close();
    await processKey?.close();
    await keyd.close();
    await root.cleanup();
  };
  try {
    const admin = await connectKeydAdmin(tlsClientOptions(linkPki, 'admin', keyd.tlsAddress!));
    try {
      await admin.putKey(createPrivateKey(inKeyd.keyPem), ['localhost']);
    } finally {
      admin.close();
    }
    client = await KeydClient.connect({ ...tlsClientOptions(linkPki, 'front', keyd.tlsAddress!), pingIntervalMs: 0 });
    const remote = await client.key({ serverName: 'localhost' });
    processKey = await startKeyProcess({ keyPath, delegatedCredentials: true });
    const inKeydHolder = await holder('keyd', inKeyd.chainPem, remote);
    managers.push(inKeydHolder.manager);
    const inProcessHolder = await holder('key process', inProcess.chainPem, processKey);
    managers.push(inProcessHolder.manager);
    const auditPath = join(root.dir, 'audit.log');
    return {
      pki,
      keyd: inKeydHolder,
      keyProcess: inProcessHolder,
      audit: async () => {
        const lines = (await readAudit(auditPath)).filter((l) => l.keyId === remote.keyId && l.outcome === 'ok');
        return { sign: lines.filter((l) => l.op === 'sign').length, delegatedCredential: lines.filter((l) => l.op === 'delegated-credential').length };
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
