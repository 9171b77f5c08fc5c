/**
 * keyward's client engine against keyward's server engine, sans-IO: records go across as
 * soon as they are written, sign requests are answered by the requested key holder, and
 * peer chains are accepted (the chain is not what these tests are about). Each side may
 * run on a clock of its own.
 */
import type { ClientConfig } from '../../src/tls/engine/clientConfig.js';
import { TlsClientConnection } from '../../src/tls/engine/clientConnection.js';
import type { ServerConfig } from '../../src/tls/engine/config.js';
import type { TlsConnection } from '../../src/tls/engine/connection.js';
import type { EngineEvent, SignRequest } from '../../src/tls/engine/events.js';
import { TlsServerConnection } from '../../src/tls/engine/serverConnection.js';

/** What one side did. */
export interface SideLog {
  /** Sign requests it made (each answered by its key holder). */
  signs: SignRequest[];
  events: EngineEvent[];
  /** The bytes it sent, in order. */
  sent: Buffer[];
  /** The error event, if the side failed. */
  error?: { message: string; alertSent?: number; alertReceived?: number };
}

export interface Pair {
  client: TlsClientConnection;
  server: TlsServerConnection;
  c: SideLog;
  s: SideLog;
}

async function answer(conn: TlsConnection, log: SideLog): Promise<void> {
  for (const e of conn.takeEvents()) {
    log.events.push(e);
    if (e.type === 'error') log.error = { message: e.error.message, alertSent: e.alertSent, alertReceived: e.alertReceived };
    else if (e.type === 'verifyPeer') conn.completePeerVerification(e.request.id, { ok: true });
    else if (e.type === 'keyOperation' && e.request.kind === 'sign') {
      log.signs.push(e.request);
      const r = e.request;
      conn.completeKeyOperation(r.id, await r.key.sign(r.scheme, r.message, r.context, new AbortController().signal));
    }
  }
}

/** Per-side clocks, and a hook run after each round trip (round 0: the client's first flight answered). */
export interface PairOptions {
  server?: () => number;
  client?: () => number;
  afterRound?: (round: number) => void;
}

/** Runs a handshake between the two configurations until both are connected or one failed. */
export async function handshakePair(serverConfig: ServerConfig, clientConfig: ClientConfig, clocks: PairOptions = {}): Promise<Pair> {
  const server = new TlsServerConnection(serverConfig, clocks.server ? { now: clocks.server } : {});
  const client = new TlsClientConnection(clientConfig, clocks.client ? { now: clocks.client } : {});
  const c: SideLog = { signs: [], events: [], sent: [] };
  const s: SideLog = { signs: [], events: [], sent: [] };
  const pass = (from: TlsConnection, log: SideLog, to: TlsConnection) => {
    for (const b of from.takeOutput()) {
      log.sent.push(Buffer.from(b));
      to.receive(b);
    }
  };
  for (let i = 0; i < 20 && !(client.isConnected && server.isConnected) && !c.error && !s.error; i++) {
    pass(client, c, server);
    await answer(server, s);
    pass(server, s, client);
    await answer(client, c);
    clocks.afterRound?.(i);
  }
  // The side that failed sent an alert: let the other read it.
  pass(client, c, server);
  pass(server, s, client);
  await answer(server, s);
  await answer(client, c);
  return { client, server, c, s };
}
