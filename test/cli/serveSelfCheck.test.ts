/**
 * `serve` wraps every certificate key to note which connection used it; the wrapper must
 * keep what the key holder vouches for. A key in this process (as a key process or keyd)
 * signs with node:crypto under a key matched to its certificate at start, so the engine
 * does not verify its signatures again; an application's own KeyOperations are verified.
 * Counted with crypto.verify calls in this process while curl (another process) makes the
 * handshakes.
 */
import assert from 'node:assert/strict';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { after, before, describe, test } from 'node:test';
import type { KeyOperations } from '../../src/keys/keyOperations.js';
import { localKey } from '../../src/keys/localKey.js';
import { curl, curlResolve } from '../support/peers.js';
import { getPki, type PkiFixtures } from '../support/pki.js';

const require = createRequire(import.meta.url);
const crypto = require('node:crypto') as typeof import('node:crypto');
let verifies = 0;
const realVerify = crypto.verify;

before(() => {
  // The engine imports verify from node:crypto; syncBuiltinESMExports makes it see this one.
  crypto.verify = ((...args: Parameters<typeof realVerify>) => {
    verifies++;
    return realVerify(...args);
  }) as typeof realVerify;
  syncBuiltinESMExports();
});

after(() => {
  crypto.verify = realVerify;
  syncBuiltinESMExports();
});

/** crypto.verify calls in this process during `n` curl requests (each a full TLS handshake). */
async function verifiesDuring(pki: PkiFixtures, port: number, n: number): Promise<number> {
  const before = verifies;
  for (let i = 0; i < n; i++) {
    const c = await curl(`https://localhost:${port}/`, { cacert: pki.ca.certPath, resolve: [curlResolve('localhost', port)] });
    assert.equal(c.status, 200, c.stderr);
  }
  return verifies - before;
}

describe("serve keeps a key holder's vouching", { timeout: 60_000 }, () => {
  test('a key file (in process): no verify of its own signatures; an application key: one per handshake', async () => {
    // Loaded after the hook so that the engine's modules bind the counting verify.
    const { serve } = await import('../../src/cli/serve.js');
    const pki = await getPki();
    const f = pki.server['ecdsa-p256'];
    const local = await serve({ listen: '127.0.0.1:0', certs: [f.chainPath], keys: [{ kind: 'file', path: f.keyPath }] });
    try {
      assert.equal(await verifiesDuring(pki, local.address.port, 3), 0);
    } finally {
      await local.close();
    }
    // The control: the same key behind the application's own KeyOperations is checked.
    const k = localKey(f.keyPem);
    const own: KeyOperations = { publicKey: k.publicKey, schemes: k.schemes, keyId: k.keyId, sign: k.sign.bind(k) };
    const custom = await serve({ listen: '127.0.0.1:0', certs: [f.chainPath], keyFor: async () => own, keyDescription: 'the application key' });
    try {
      assert.equal(await verifiesDuring(pki, custom.address.port, 3), 3);
    } finally {
      await custom.close();
    }
  });
});
