/**
 * A front that keeps a delegated credential, run as its own process by the memory-scan
 * test of test/keys/delegatedCredentialManager.test.ts:
 *
 *   node dist/test/support/dcFront.js keyprocess|local KEYPATH CERTPATH
 *
 * `keyprocess`: the certificate key stays in a key process (the front only passes the
 * path on); `local`: the front reads the key file itself (the scan's control). It obtains
 * a credential through a DelegatedCredentialManager, signs a CertificateVerify-shaped
 * input with it, prints `READY <pid>` and stays until stdin closes.
 */
import { createPrivateKey, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { DelegatedCredentialManager } from '../../src/keys/delegatedCredentials.js';
import type { DelegatedCredentialIssuer } from '../../src/keys/delegatedCredentialIssuer.js';
import { startKeyProcess } from '../../src/keys/keyProcess.js';
import { LocalDelegatedCredentialIssuer } from '../../src/keys/localDelegatedCredentialIssuer.js';
import { certificateVerifyContent } from '../../src/tls/wire/handshake.js';

const [mode, keyPath, certPath] = process.argv.slice(2);
const certDer = Buffer.from(readFileSync(certPath, 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64');
let issuer: DelegatedCredentialIssuer & { close?(): Promise<void> };
if (mode === 'local') issuer = new LocalDelegatedCredentialIssuer(createPrivateKey(readFileSync(keyPath)));
else issuer = await startKeyProcess({ keyPath, delegatedCredentials: true });
const manager = new DelegatedCredentialManager({ issuer, certificate: certDer });
if (!(await manager.start())) throw new Error(`no credential: ${manager.stats.lastError ?? ''}`);
manager.current()!.sign(certificateVerifyContent(randomBytes(32)));
process.stdout.write(`READY ${process.pid}\n`);
process.stdin.resume();
process.stdin.on('end', () => {
  manager.stop();
  void Promise.resolve(issuer.close?.()).then(() => process.exit(0));
});
