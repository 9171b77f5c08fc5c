/**
 * KeywardAgent: https.request through keyward sockets resumes the origin's TLS session on
 * the next connection, as node's https.Agent does with node:tls.
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import { after, before, it } from 'node:test';
import { LocalKey } from '../../src/keys/localKey.js';
import { KeywardAgent } from '../../src/node/agent.js';
import { createHttpsServer, tlsSocketOf } from '../../src/node/http.js';
import { closeServer, listen } from '../support/keywardServer.js';
import { getPki, type PkiFixtures } from '../support/pki.js';

let pki: PkiFixtures;
let server: ReturnType<typeof createHttpsServer>;
let port: number;
const reused: boolean[] = [];

before(async () => {
  pki = await getPki();
  const f = pki.server['ecdsa-p256'];
  server = createHttpsServer({ certificates: [{ cert: f.chainPem, key: new LocalKey(f.keyPem) }] }, (req, res) => {
    reused.push(tlsSocketOf(req)?.isSessionReused() ?? false);
    // A new connection per request: what is resumed is the TLS session, not the connection.
    res.setHeader('Connection', 'close');
    res.end(`${req.url}`);
  });
  port = await listen(server);
});

after(() => closeServer(server, () => server.tlsAcceptor.destroyAll()));

function get(path: string, agent: https.Agent): Promise<string> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: 'localhost', port, path, agent }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += String(d)));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

it('the second request resumes the session of the first; maxCachedSessions: 0 keeps none', async () => {
  const agent = new KeywardAgent({ connect: { ca: pki.ca.certPem } });
  assert.equal(await get('/one', agent), '/one');
  assert.equal(await get('/two', agent), '/two');
  assert.deepEqual(reused, [false, true]);
  const none = new KeywardAgent({ maxCachedSessions: 0, connect: { ca: pki.ca.certPem } });
  await get('/three', none);
  await get('/four', none);
  assert.deepEqual(reused.slice(2), [false, false]);
  agent.destroy();
  none.destroy();
});
