/**
 * serve() embedded in a program with keys of its own (the `keyFor` hook): the page says
 * where the program says its key lives, close() closes the keys, and a key that does
 * not match its certificate is refused at start and closed.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CliError, serve } from '../../src/cli/serve.js';
import type { KeyOperations } from '../../src/keys/keyOperations.js';
import { localKey } from '../../src/keys/localKey.js';
import { curl, curlResolve } from '../support/peers.js';
import { getPki } from '../support/pki.js';

/** A local key that records whether it was closed. */
function closable(pem: string): KeyOperations & { closed: boolean } {
  const k = localKey(pem);
  const out = {
    publicKey: k.publicKey,
    schemes: k.schemes,
    keyId: k.keyId,
    sign: k.sign.bind(k),
    closed: false,
    close: async () => {
      out.closed = true;
    },
  };
  return out;
}

describe('serve() with keyFor', { timeout: 60_000 }, () => {
  test('serves with the given key and describes it; close() closes it', async () => {
    const pki = await getPki();
    const f = pki.server['ecdsa-p256'];
    const key = closable(f.keyPem);
    const running = await serve({ listen: '127.0.0.1:0', certs: [f.chainPath], keyFor: async () => key, keyDescription: 'with the embedding test' });
    try {
      assert.equal(running.certificates[0].backend, 'custom');
      const port = running.address.port;
      const c = await curl(`https://localhost:${port}/`, { cacert: pki.ca.certPath, resolve: [curlResolve('localhost', port)] });
      assert.equal(c.status, 200, c.stderr);
      assert.match(c.body, /^private key: with the embedding test$/m);
    } finally {
      await running.close(500);
    }
    assert.equal(key.closed, true);
  });

  test('a key that does not match its certificate: refused, and the key is closed', async () => {
    const pki = await getPki();
    const key = closable(pki.server['ecdsa-p384'].keyPem);
    await assert.rejects(
      serve({ listen: '127.0.0.1:0', certs: [pki.server['ecdsa-p256'].chainPath], keyFor: async () => key }),
      (e: unknown) => e instanceof CliError && /the certificate .*server-ecdsa-p256-chain\.pem and the key do not match/.test(e.message),
    );
    assert.equal(key.closed, true);
  });
});
