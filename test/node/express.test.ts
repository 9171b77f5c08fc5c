/**
 * An Express 5 app served by createHttpsServer unchanged: routes with parameters, JSON
 * body parsing, the default 404, and Express seeing the request as https.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import { createHttpsServer } from '../../src/node/http.js';
import { httpsRequest } from './httpClient.js';
import { caPem, listen, serverCertificate, stopServer } from './helpers.js';

function app(): express.Express {
  const a = express();
  // 'test' keeps Express's final handler from printing the stack of the malformed-JSON 400 below.
  a.set('env', 'test');
  a.use(express.json({ limit: '2mb' }));
  a.get('/hello/:name', (req, res) => {
    res.json({ hello: req.params.name, secure: req.secure, protocol: req.protocol, ip: req.ip });
  });
  a.post('/sum', (req, res) => {
    const values = (req.body as { values?: unknown }).values;
    if (!Array.isArray(values) || !values.every((v) => typeof v === 'number')) {
      res.status(400).json({ error: 'values must be an array of numbers' });
      return;
    }
    res.json({ count: values.length, sum: values.reduce((x: number, y: number) => x + y, 0) });
  });
  const router = express.Router();
  router.get('/items/:id', (req, res) => {
    res.status(201).set('x-item', req.params.id).send(`item ${req.params.id}`);
  });
  a.use('/api', router);
  return a;
}

describe('Express on createHttpsServer', () => {
  let server: ReturnType<typeof createHttpsServer>;
  let port: number;
  let ca: string;

  before(async () => {
    ca = await caPem();
    server = createHttpsServer({ certificates: [await serverCertificate('ecdsa-p256')] }, app());
    port = await listen(server);
  });

  after(() => stopServer(server));

  it('routes with parameters; Express sees an https request', async () => {
    const r = await httpsRequest({ port, ca, path: '/hello/world' });
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^application\/json/);
    assert.deepEqual(JSON.parse(r.body.toString()), { hello: 'world', secure: true, protocol: 'https', ip: '127.0.0.1' });
  });

  it('a mounted router', async () => {
    const r = await httpsRequest({ port, ca, path: '/api/items/42' });
    assert.equal(r.status, 201);
    assert.equal(r.headers['x-item'], '42');
    assert.equal(r.body.toString(), 'item 42');
  });

  it('JSON body parsing, small and ~1 MB, and a 400 for a bad body', async () => {
    const small = await httpsRequest({ port, ca, method: 'POST', path: '/sum', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ values: [1, 2, 3.5] }) });
    assert.equal(small.status, 200);
    assert.deepEqual(JSON.parse(small.body.toString()), { count: 3, sum: 6.5 });

    const values = Array.from({ length: 150_000 }, (_, i) => i % 1000);
    const bigBody = JSON.stringify({ values });
    assert.ok(bigBody.length > 500_000);
    const big = await httpsRequest({ port, ca, method: 'POST', path: '/sum', headers: { 'content-type': 'application/json' }, body: bigBody });
    assert.equal(big.status, 200);
    assert.deepEqual(JSON.parse(big.body.toString()), { count: values.length, sum: values.reduce((a, b) => a + b, 0) });

    const bad = await httpsRequest({ port, ca, method: 'POST', path: '/sum', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ values: 'no' }) });
    assert.equal(bad.status, 400);
    const malformed = await httpsRequest({ port, ca, method: 'POST', path: '/sum', headers: { 'content-type': 'application/json' }, body: '{"values": [1,' });
    assert.equal(malformed.status, 400);
  });

  it('an unknown route gets Express\'s 404', async () => {
    const r = await httpsRequest({ port, ca, path: '/nope' });
    assert.equal(r.status, 404);
    assert.match(r.body.toString(), /Cannot GET \/nope/);
  });
});
