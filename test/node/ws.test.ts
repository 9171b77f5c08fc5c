/**
 * The `ws` WebSocket server on createHttpsServer: a wss client with the fixture CA
 * connects, text and binary messages (up to 1 MiB) echo back intact, and both sides
 * close cleanly with the code and reason sent.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { createHttpsServer } from '../../src/node/http.js';
import type { KeywardTLSSocket } from '../../src/node/tlsSocket.js';
import { caPem, listen, once, patternBytes, serverCertificate, sha256, stopServer, withTimeout } from './helpers.js';

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

describe('ws over createHttpsServer', () => {
  let server: ReturnType<typeof createHttpsServer>;
  let wss: WebSocketServer;
  let port: number;
  let ca: string;
  const serverCloses: { code: number; reason: string }[] = [];
  const upgradeSockets: KeywardTLSSocket[] = [];

  before(async () => {
    ca = await caPem();
    server = createHttpsServer({ certificates: [await serverCertificate('ecdsa-p256')] });
    wss = new WebSocketServer({ server, maxPayload: 4 * 1024 * 1024 });
    wss.on('connection', (ws, req) => {
      upgradeSockets.push(req.socket as unknown as KeywardTLSSocket);
      ws.on('message', (data, isBinary) => ws.send(toBuffer(data), { binary: isBinary }));
      ws.on('close', (code, reason) => serverCloses.push({ code, reason: reason.toString() }));
    });
    port = await listen(server);
  });

  after(async () => {
    await withTimeout(new Promise<void>((resolve) => wss.close(() => resolve())), 5_000, 'wss close');
    await stopServer(server);
  });

  it('echoes text and binary messages, including 1 MiB, then closes cleanly', async () => {
    const client = new WebSocket(`wss://127.0.0.1:${port}/echo`, { ca });
    const messages: { data: Buffer; isBinary: boolean }[] = [];
    const waiters: (() => void)[] = [];
    client.on('message', (data, isBinary) => {
      messages.push({ data: toBuffer(data), isBinary });
      waiters.shift()?.();
    });
    const next = (): Promise<{ data: Buffer; isBinary: boolean }> =>
      withTimeout(
        new Promise((resolve) => {
          const take = () => resolve(messages.shift()!);
          if (messages.length > 0) take();
          else waiters.push(take);
        }),
        10_000,
        'websocket message',
      );
    await once(client, 'open');

    client.send('hello över TLS');
    const text = await next();
    assert.equal(text.isBinary, false);
    assert.equal(text.data.toString('utf8'), 'hello över TLS');

    for (const size of [1, 125, 126, 65_536, 1024 * 1024]) {
      const payload = patternBytes(size, size);
      client.send(payload, { binary: true });
      const echoed = await next();
      assert.equal(echoed.isBinary, true);
      assert.equal(echoed.data.length, size);
      assert.equal(sha256(echoed.data), sha256(payload));
    }

    // Many messages in flight at once come back in order.
    for (let i = 0; i < 200; i++) client.send(`m${i}`);
    for (let i = 0; i < 200; i++) assert.equal((await next()).data.toString(), `m${i}`);

    const socket = upgradeSockets[0];
    assert.equal(socket.getProtocol(), 'TLSv1.3');
    const closed = once<number>(client, 'close');
    const serverSocketClosed = once(socket, 'close');
    client.close(1000, 'done');
    assert.equal(await closed, 1000);
    await serverSocketClosed;
    assert.deepEqual(serverCloses, [{ code: 1000, reason: 'done' }]);
    assert.equal(server.tlsAcceptor.connections.size, 0);
  });
});
