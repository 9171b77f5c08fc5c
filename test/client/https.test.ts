/**
 * keyward's client under Node's HTTP stack: https.request and an https.Agent with
 * `createConnection: connect`, and a `ws` WebSocket client, against node's own servers.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, it } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { connect, type KeywardConnectOptions } from '../../src/node/clientSocket.js';
import { getPki, type PkiFixtures } from '../support/pki.js';

let pki: PkiFixtures;
let server: https.Server;
let port: number;

before(async () => {
  pki = await getPki();
  server = https.createServer({ key: pki.server['ecdsa-p256'].keyPem, cert: pki.server['ecdsa-p256'].chainPem }, (req, res) => {
    res.end(`${req.method} ${req.url} over ${(req.socket as import('node:tls').TLSSocket).getProtocol()}`);
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.on('message', (m) => ws.send(`echo ${String(m)}`)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});

after(() => {
  server.closeAllConnections();
  server.close();
});

const createConnection = (opts: object) => connect({ ...(opts as KeywardConnectOptions), ca: pki.ca.certPem });

function get(path: string, agent?: https.Agent): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: 'localhost', port, path, agent, createConnection: agent ? undefined : createConnection }, (res) => {
      let body = '';
      res.on('data', (d) => (body += String(d)));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}

it('https.request with createConnection: connect', async () => {
  assert.equal(await get('/one'), 'GET /one over TLSv1.3');
});

it('an https.Agent whose connections are keyward sockets, reused with keep-alive', async () => {
  class KeywardAgent extends https.Agent {
    override createConnection(opts: object): import('node:net').Socket {
      return createConnection(opts) as unknown as import('node:net').Socket;
    }
  }
  const agent = new KeywardAgent({ keepAlive: true });
  assert.equal(await get('/a', agent), 'GET /a over TLSv1.3');
  assert.equal(await get('/b', agent), 'GET /b over TLSv1.3');
  agent.destroy();
});

it('a ws client over keyward', async () => {
  const ws = new WebSocket(`wss://localhost:${port}/socket`, { createConnection } as unknown as WebSocket.ClientOptions);
  await once(ws, 'open');
  ws.send('ping');
  const [msg] = await once(ws, 'message');
  assert.equal(String(msg), 'echo ping');
  ws.close();
  await once(ws, 'close');
});
