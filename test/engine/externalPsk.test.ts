/**
 * TLS 1.3 external PSKs between keyward's own client and server engines, sans-IO, with the
 * key schedule in a PSK holder (docs/tls13-psk.md): which steps go to the holder (binder,
 * verify-binder, handshake, application and resumption secrets, each naming the identity),
 * psk_dhe_ke and psk_ke, a retry (the binder recomputed over the second hello), the
 * PSK's hash choosing the suite, a wrong PSK or an unknown identity (decrypt_error), an
 * unlisted identity beside a certificate (the certificate handshake), a holder that answers
 * badly, and the configurations that are refused.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, randomBytes, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { LocalKey } from '../../src/keys/localKey.js';
import { localPsk } from '../../src/keys/localPsk.js';
import type { OperationContext, Tls13PskOperations } from '../../src/keys/keyOperations.js';
import { connect } from '../../src/node/clientSocket.js';
import { runKeyOperation } from '../../src/node/keyOperationRunner.js';
import { createServer } from '../../src/node/server.js';
import { CipherSuite } from '../../src/tls/crypto/cipherSuites.js';
import { NamedGroup } from '../../src/tls/crypto/groups.js';
import { cryptoParams, schemeInfo } from '../../src/tls/crypto/signatureSchemes.js';
import { certifiedKey } from '../../src/tls/engine/certificates.js';
import { resolveClientConfig, type ClientConfigInput, type ClientTls13PskConfig } from '../../src/tls/engine/clientConfig.js';
import { TlsClientConnection } from '../../src/tls/engine/clientConnection.js';
import { resolveServerConfig, type ServerConfigInput, type Tls13PskServerConfig } from '../../src/tls/engine/config.js';
import type { TlsConnection } from '../../src/tls/engine/connection.js';
import type { EngineEvent } from '../../src/tls/engine/events.js';
import { TlsServerConnection } from '../../src/tls/engine/serverConnection.js';
import { TicketKeyRing } from '../../src/tls/resumption/ticketKeys.js';
import { alertName } from '../../src/tls/wire/alerts.js';
import { getPki } from '../support/pki.js';

const PSK = randomBytes(32);
const ID = 'sensor-7';

/** One call a holder got: the step and what it was asked. */
interface Call {
  step: string;
  identity: string;
  transcriptHash: string;
  dheSecret?: Uint8Array | null;
}

/** A holder that records each call and passes it on (or, with `answer`, answers instead). */
function recording(inner: Tls13PskOperations, calls: Call[], answer?: (step: string) => Uint8Array | undefined): Tls13PskOperations {
  const note = (step: string, req: { identity: Uint8Array; transcriptHash: Uint8Array; dheSecret?: Uint8Array | null }) =>
    calls.push({ step, identity: Buffer.from(req.identity).toString(), transcriptHash: Buffer.from(req.transcriptHash).toString('hex'), dheSecret: req.dheSecret });
  return {
    tls13Binder: (req, ctx, signal) => (note('binder', req), inner.tls13Binder(req, ctx, signal)),
    tls13VerifyBinder: (req, ctx, signal) => (note('verify-binder', req), inner.tls13VerifyBinder(req, ctx, signal)),
    tls13HandshakeSecrets: async (req, ctx, signal) => {
      note('handshake-secrets', req);
      const bad = answer?.('handshake-secrets');
      return bad ? { client: bad, server: bad } : inner.tls13HandshakeSecrets(req, ctx, signal);
    },
    tls13ApplicationSecrets: (req, ctx, signal) => (note('application-secrets', req), inner.tls13ApplicationSecrets(req, ctx, signal)),
    ...(inner.tls13ResumptionMasterSecret ? { tls13ResumptionMasterSecret: (req: Parameters<NonNullable<Tls13PskOperations['tls13ResumptionMasterSecret']>>[0], ctx: OperationContext, signal: AbortSignal) => (note('resumption-master-secret', req), inner.tls13ResumptionMasterSecret!(req, ctx, signal)) } : {}),
  };
}

interface Side {
  conn: TlsConnection;
  events: EngineEvent[];
  signatures: number;
}

/** Answers one side's events: PSK steps through the holder (as the Node adapters do), signatures with `key`. */
async function answer(side: Side, key: KeyObject): Promise<void> {
  for (;;) {
    const ev = side.conn.takeEvents();
    if (ev.length === 0) return;
    side.events.push(...ev);
    for (const e of ev) {
      if (e.type === 'verifyPeer') side.conn.completePeerVerification(e.request.id, { ok: true });
      if (e.type !== 'keyOperation') continue;
      if (e.request.kind === 'sign') {
        side.signatures++;
        const p = cryptoParams(schemeInfo(e.request.scheme)!, key);
        side.conn.completeKeyOperation(e.request.id, cryptoSign(p.algorithm, e.request.message, p.key));
        continue;
      }
      try {
        side.conn.completeKeyOperation(e.request.id, await runKeyOperation(e.request, new AbortController().signal));
      } catch (err) {
        side.conn.failKeyOperation(e.request.id, err as Error);
      }
    }
  }
}

interface Run {
  server: Side;
  client: Side;
  serverCalls: Call[];
  clientCalls: Call[];
  serverError?: string;
  clientError?: string;
  /** Both sides completed the handshake. */
  done: boolean;
}

interface Setup {
  server?: Partial<ServerConfigInput>;
  client?: ClientConfigInput;
  /** tls13Psk settings beside the holder. */
  serverPsk?: Omit<Tls13PskServerConfig, 'holder'>;
  clientPsk?: Partial<Omit<ClientTls13PskConfig, 'holder'>>;
  /** The server's holder (default: the PSK under ID). */
  serverHolder?: Tls13PskOperations;
  clientHolder?: Tls13PskOperations;
  /** With the server's certificate (and then `identities`). */
  certificate?: boolean;
}

async function handshake(o: Setup = {}): Promise<Run> {
  const pki = await getPki();
  const serverKey = createPrivateKey(pki.server['ecdsa-p256'].keyPem);
  const serverCalls: Call[] = [];
  const clientCalls: Call[] = [];
  const serverHolder = recording(o.serverHolder ?? localPsk(new Map([[ID, PSK]])), serverCalls);
  const clientHolder = recording(o.clientHolder ?? localPsk(new Map([[ID, PSK]])), clientCalls);
  const certificates = o.certificate ? [certifiedKey(pki.server['ecdsa-p256'].chainPem, new LocalKey(serverKey))] : [];
  const server: Side = {
    conn: new TlsServerConnection(resolveServerConfig({ certificates, ticketKeys: new TicketKeyRing(), ...o.server, tls13Psk: { holder: serverHolder, ...o.serverPsk } })),
    events: [],
    signatures: 0,
  };
  const client: Side = {
    conn: new TlsClientConnection(resolveClientConfig({ serverName: 'localhost', ...o.client, tls13Psk: { holder: clientHolder, identity: ID, ...o.clientPsk } })),
    events: [],
    signatures: 0,
  };
  for (let i = 0; i < 50; i++) {
    await answer(client, serverKey);
    await answer(server, serverKey);
    const toServer = Buffer.concat(client.conn.takeOutput());
    const toClient = Buffer.concat(server.conn.takeOutput());
    if (toServer.length === 0 && toClient.length === 0) break;
    if (toServer.length > 0) server.conn.receive(toServer);
    if (toClient.length > 0) client.conn.receive(toClient);
  }
  const error = (s: Side) => {
    const e = s.events.find((x): x is Extract<EngineEvent, { type: 'error' }> => x.type === 'error');
    return e && (e.alertSent !== undefined ? `sent ${alertName(e.alertSent)}` : e.alertReceived !== undefined ? `received ${alertName(e.alertReceived)}` : e.error.message);
  };
  const done = [server, client].every((s) => s.events.some((e) => e.type === 'handshakeComplete'));
  return { server, client, serverCalls, clientCalls, serverError: error(server), clientError: error(client), done };
}

const steps = (calls: Call[]) => calls.map((c) => c.step);

describe('TLS 1.3 external PSK: keyward client and server, the key schedule in the holder', () => {
  it('psk_dhe_ke: every secret from the holder, no certificate, tickets from the holder\'s resumption master secret', async () => {
    // x25519 on every Node (X25519MLKEM768 comes first where node:crypto has ML-KEM).
    const r = await handshake({ client: { groups: [NamedGroup.x25519] } });
    assert.ok(r.done, `${r.serverError} / ${r.clientError}`);
    assert.deepEqual(steps(r.clientCalls), ['binder', 'handshake-secrets', 'application-secrets']);
    assert.deepEqual(steps(r.serverCalls), ['verify-binder', 'handshake-secrets', 'application-secrets', 'resumption-master-secret']);
    assert.ok([...r.clientCalls, ...r.serverCalls].every((c) => c.identity === ID));
    // Both sides named the same transcript to the holder at each stage.
    for (const step of ['handshake-secrets', 'application-secrets']) {
      assert.equal(r.clientCalls.find((c) => c.step === step)!.transcriptHash, r.serverCalls.find((c) => c.step === step)!.transcriptHash);
    }
    assert.equal(r.clientCalls[0].transcriptHash, r.serverCalls[0].transcriptHash, 'the binder covers the same truncated hello on both sides');
    const dhe = r.serverCalls.find((c) => c.step === 'handshake-secrets')!.dheSecret;
    assert.ok(dhe instanceof Uint8Array && dhe.length === 32, 'psk_dhe_ke: the X25519 secret goes to the holder');
    for (const side of [r.server, r.client]) {
      const info = side.conn.info;
      assert.equal(info.pskIdentity, ID);
      assert.equal(info.group, NamedGroup.x25519);
      assert.equal(info.resumed, undefined);
      assert.equal(info.peerCertificates, undefined, 'no Certificate in a PSK handshake');
      assert.equal(side.signatures, 0);
    }
    assert.ok(!r.server.events.some((e) => e.type === 'verifyPeer') && !r.client.events.some((e) => e.type === 'verifyPeer'));
    // The client keeps no session after an external PSK handshake (docs/tls13-psk.md).
    assert.ok(!r.client.events.some((e) => e.type === 'session'));
  });

  it('psk_ke (opt-in on both sides): no key share, no (EC)DHE secret', async () => {
    const r = await handshake({ serverPsk: { allowPskOnly: true }, clientPsk: { keyExchange: 'psk_ke' } });
    assert.ok(r.done, `${r.serverError} / ${r.clientError}`);
    assert.equal(r.server.conn.info.group, undefined);
    assert.equal(r.client.conn.info.group, undefined);
    assert.ok(r.serverCalls.filter((c) => c.step !== 'verify-binder').every((c) => c.dheSecret === null));
    assert.ok(r.clientCalls.filter((c) => c.step !== 'binder').every((c) => c.dheSecret === null));
  });

  it('psk_ke offered to a server that does not allow it: no PSK, and a PSK-only server fails with handshake_failure', async () => {
    const r = await handshake({ clientPsk: { keyExchange: 'psk_ke' } });
    assert.equal(r.serverError, 'sent handshake_failure');
    assert.deepEqual(steps(r.serverCalls), [], 'the holder is not asked about a PSK the server will not use');
  });

  it('a retry: the binder is computed again over the second ClientHello, and the server checks that one', async () => {
    const r = await handshake({ server: { groups: [NamedGroup.x25519] }, client: { groups: [NamedGroup.secp384r1, NamedGroup.x25519] } });
    assert.ok(r.done, `${r.serverError} / ${r.clientError}`);
    assert.equal(r.client.conn.info.helloRetry, true);
    const binders = r.clientCalls.filter((c) => c.step === 'binder');
    assert.equal(binders.length, 2);
    assert.notEqual(binders[0].transcriptHash, binders[1].transcriptHash);
    assert.deepEqual(r.serverCalls.filter((c) => c.step === 'verify-binder').map((c) => c.transcriptHash), [binders[1].transcriptHash]);
  });

  it('a SHA-384 PSK: the suite is one of its hash; a server that takes SHA-256 PSKs cannot use it', async () => {
    const holder = () => localPsk(new Map([[ID, { secret: PSK, hash: 'sha384' as const }]]));
    const r = await handshake({ serverHolder: holder(), clientHolder: holder(), serverPsk: { hash: 'sha384' }, clientPsk: { hash: 'sha384' } });
    assert.ok(r.done, `${r.serverError} / ${r.clientError}`);
    assert.equal(r.server.conn.info.cipherSuite, CipherSuite.TLS_AES_256_GCM_SHA384);
    const mismatch = await handshake({ serverHolder: holder(), clientHolder: holder(), clientPsk: { hash: 'sha384' } });
    assert.equal(mismatch.serverError, 'sent handshake_failure');
    assert.deepEqual(steps(mismatch.serverCalls), []);
  });

  it('a wrong PSK and an unknown identity end alike: decrypt_error after one binder check', async () => {
    const wrong = await handshake({ clientHolder: localPsk(new Map([[ID, randomBytes(32)]])) });
    assert.equal(wrong.serverError, 'sent decrypt_error');
    assert.equal(wrong.clientError, 'received decrypt_error');
    const stranger = 'not-provisioned';
    const unknown = await handshake({ clientHolder: localPsk(new Map([[stranger, PSK]])), clientPsk: { identity: stranger } });
    assert.equal(unknown.serverError, 'sent decrypt_error');
    assert.deepEqual(steps(wrong.serverCalls), ['verify-binder']);
    assert.deepEqual(steps(unknown.serverCalls), ['verify-binder']);
  });

  it('beside a certificate: an unlisted identity gets the certificate handshake, a listed one with a wrong PSK decrypt_error', async () => {
    const other = 'someone-else';
    const fallback = await handshake({ certificate: true, serverPsk: { identities: [ID] }, clientHolder: localPsk(new Map([[other, PSK]])), clientPsk: { identity: other } });
    assert.ok(fallback.done, `${fallback.serverError} / ${fallback.clientError}`);
    assert.deepEqual(steps(fallback.serverCalls), [], 'an unlisted identity never reaches the holder');
    assert.equal(fallback.server.signatures, 1, 'CertificateVerify signed');
    assert.equal(fallback.client.conn.info.pskIdentity, undefined);
    assert.ok(fallback.client.events.some((e) => e.type === 'verifyPeer'), 'the client judged the certificate');
    const wrong = await handshake({ certificate: true, serverPsk: { identities: [ID] }, clientHolder: localPsk(new Map([[ID, randomBytes(32)]])) });
    assert.equal(wrong.serverError, 'sent decrypt_error');
  });

  it('a server asking for client certificates asks none of a PSK client (RFC 8446 4.3.2)', async () => {
    const r = await handshake({ server: { clientAuth: { certificateAuthorities: [] } } });
    assert.ok(r.done, `${r.serverError} / ${r.clientError}`);
    assert.ok(!r.server.events.some((e) => e.type === 'verifyPeer'));
  });

  it('a holder without the resumption master secret: the handshake works, no tickets are asked for', async () => {
    const inner = localPsk(new Map([[ID, PSK]]));
    const noRms: Tls13PskOperations = {
      tls13Binder: (...a) => inner.tls13Binder(...a),
      tls13VerifyBinder: (...a) => inner.tls13VerifyBinder(...a),
      tls13HandshakeSecrets: (...a) => inner.tls13HandshakeSecrets(...a),
      tls13ApplicationSecrets: (...a) => inner.tls13ApplicationSecrets(...a),
    };
    const r = await handshake({ serverHolder: noRms });
    assert.ok(r.done, `${r.serverError} / ${r.clientError}`);
    assert.deepEqual(steps(r.serverCalls), ['verify-binder', 'handshake-secrets', 'application-secrets']);
  });

  it('a holder answering secrets of the wrong length fails the handshake with internal_error', async () => {
    const calls: Call[] = [];
    const short = recording(localPsk(new Map([[ID, PSK]])), calls, (step) => (step === 'handshake-secrets' ? new Uint8Array(16) : undefined));
    const r = await handshake({ serverHolder: short });
    assert.equal(r.serverError, 'sent internal_error');
  });

  it('configurations that cannot work are refused, naming the field', () => {
    const holder = localPsk(new Map([[ID, PSK]]));
    assert.throws(() => resolveServerConfig({ certificates: [] }), /needs at least one certificate \(or a PSK holder: psk, tls13Psk\)/);
    assert.equal(resolveServerConfig({ certificates: [], tls13Psk: { holder } }).maxVersion, 'TLSv1.3');
    assert.throws(() => resolveServerConfig({ certificates: [], tls13Psk: { holder, hash: 'sha384' }, tls13CipherSuites: [CipherSuite.TLS_AES_128_GCM_SHA256] }), /no TLS 1.3 cipher suite of the PSK hash sha384/);
    assert.throws(() => resolveServerConfig({ certificates: [], tls13Psk: { holder: {} as Tls13PskOperations } }), /tls13Psk.holder must implement tls13VerifyBinder/);
    assert.throws(() => resolveServerConfig({ certificates: [], tls13Psk: { holder, identities: [''] } }), /an identity is 1 to 65535 bytes/);
    assert.throws(() => resolveClientConfig({ tls13Psk: { holder, identity: '' } }), /tls13Psk.identity must be 1 to 65535 bytes/);
    assert.throws(() => resolveClientConfig({ tls13Psk: { holder, identity: ID }, maxVersion: 'TLSv1.2' }), /minVersion is above maxVersion|maxVersion is TLSv1.2/);
    const c = resolveClientConfig({ tls13Psk: { holder, identity: ID, hash: 'sha384' } });
    assert.deepEqual(c.tls13CipherSuites, [CipherSuite.TLS_AES_256_GCM_SHA384], 'only suites of the PSK hash are offered');
    assert.equal(c.minVersion, 'TLSv1.3');
  });
});

describe('TLS 1.3 external PSK through the Node adapter', () => {
  it('a holder step is cancelled when the connection goes away (the handshake timeout here)', async () => {
    const inner = localPsk(new Map([[ID, PSK]]));
    let aborted: unknown;
    const stuck: Tls13PskOperations = {
      ...Object.fromEntries((['tls13Binder', 'tls13HandshakeSecrets', 'tls13ApplicationSecrets'] as const).map((m) => [m, inner[m].bind(inner)])),
      // A holder that never answers on its own: only the abort ends the wait.
      tls13VerifyBinder: (_req, _ctx, signal) =>
        new Promise<boolean>((_resolve, reject) =>
          signal.addEventListener('abort', () => {
            aborted = signal.reason;
            reject(signal.reason as Error);
          }),
        ),
    } as Tls13PskOperations;
    const server = createServer({ certificates: [], tls13Psk: { holder: stuck }, handshakeTimeout: 300 });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const port = (server.address() as { port: number }).port;
      const client = connect({ port, host: '127.0.0.1', tls13Psk: { holder: inner, identity: ID }, handshakeTimeout: 5_000 });
      client.on('error', () => undefined);
      await once(server, 'tlsClientError');
      await new Promise((r) => setTimeout(r, 50));
      assert.ok(aborted instanceof Error && (aborted as { code?: string }).code === 'aborted', `the holder's signal was aborted: ${String(aborted)}`);
      client.destroy();
    } finally {
      server.close();
      server.closeAllConnections();
    }
  });
});
