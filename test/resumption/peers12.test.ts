// TLS 1.2 resumption with real peers against the keyward server (openssl s_client
// -sess_out/-sess_in with and without tickets, Python ssl, gnutls-cli --resume, node:tls),
// and the keyward client resuming against openssl s_server. Each resumed handshake is
// checked on the peer's side (openssl "Reused", Python session_reused, gnutls "resumed",
// node:tls isSessionReused) and on ours (negotiated.resumed), and makes no key operation.
// Tickets from a retired key or tampered with, and EMS dropped on resumption, are refused
// the way RFC 5077 and RFC 7627 ask.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import type { KeyOperations } from '../../src/keys/keyOperations.js';
import { LocalKey } from '../../src/keys/localKey.js';
import { connect, type KeywardClientSocket, type KeywardConnectOptions } from '../../src/node/clientSocket.js';
import { SessionCache12 } from '../../src/tls/resumption/sessionCache12.js';
import { TicketKeyRing } from '../../src/tls/resumption/ticketKeys.js';
import { tempDir } from '../support/keydFixture.js';
import { gnutlsCli, opensslClient, parseGnutlsOutput, parseOpensslOutput, LOOPBACK } from '../support/peers.js';
import { getPki, type PkiFixtures } from '../support/pki.js';
import { runProcess } from '../support/processes.js';
import { describeRun, startEchoServer, token, waitUntil, type EchoServer } from '../support/keywardServer.js';
import { sServer, stopSServers } from '../client/clientHelpers.js';

const TIMEOUT = 10_000;
const HOUR = 3_600_000;

let pki: PkiFixtures;
let dir: { dir: string; cleanup: () => Promise<void> };
/** Signatures the server's key made: a resumed handshake adds none. */
let signs = 0;
let clock = Date.now();
let ring: TicketKeyRing;
let cache: SessionCache12;
let server: EchoServer;

/** The server's P-256 key, counting its signatures. */
function countingKey(pem: string): KeyOperations {
  const inner = new LocalKey(pem);
  return {
    publicKey: inner.publicKey,
    schemes: inner.schemes,
    keyId: inner.keyId,
    sign: (...args) => {
      signs++;
      return inner.sign(...args);
    },
  };
}

before(async () => {
  pki = await getPki();
  dir = await tempDir('resume12-');
  ring = new TicketKeyRing({ now: () => clock, rotateEvery: HOUR, ticketLifetime: 7200 });
  cache = new SessionCache12();
  server = await startEchoServer({
    certificates: [{ cert: pki.server['ecdsa-p256'].chainPem, key: countingKey(pki.server['ecdsa-p256'].keyPem) }],
    maxVersion: 'TLSv1.2',
    ticketKeys: ring,
    sessionCache12: cache,
  });
});

after(async () => {
  stopSServers();
  await server?.close();
  await dir?.cleanup();
});

/** One s_client -tls1_2 run that echoes a line; `args` carry -sess_in/-sess_out/-no_ticket. */
async function sClient(args: string[]) {
  const sent = token('r12');
  const mark = server.mark();
  const before = signs;
  const run = await opensslClient(server.port, { cafile: pki.ca.certPath, args: ['-tls1_2', ...args], input: `${sent}\n`, waitFor: sent, timeoutMs: TIMEOUT });
  const summary = parseOpensslOutput(run);
  assert.equal(summary.protocol, 'TLSv1.2', describeRun(run));
  assert.ok(run.stdout.includes(sent), describeRun(run));
  await waitUntil(() => server.since(mark).sessions.length === 1, 'the server session');
  const session = server.since(mark).sessions[0];
  return { run, summary, serverResumed: session.negotiated.resumed === true, signed: signs - before };
}

/** The hex bytes s_client printed under "TLS session ticket:". */
function printedTicket(stdout: string): Buffer {
  const block = /TLS session ticket:\n((?:\s+[0-9a-f]{4} - .*\n)+)/.exec(stdout);
  assert.ok(block, 'a ticket in the session printout');
  const hex = block[1]
    .split('\n')
    .map((l) => /^\s+[0-9a-f]{4} - ((?:[0-9a-f]{2}[ -]{1,2}){1,16})/.exec(l)?.[1] ?? '')
    .join('')
    .replace(/[^0-9a-f]/g, '');
  return Buffer.from(hex, 'hex');
}

describe('openssl s_client -tls1_2 -sess_out / -sess_in', () => {
  it('with tickets: reused, no key operation', async () => {
    const file = join(dir.dir, 'ticket.pem');
    const first = await sClient(['-sess_out', file]);
    assert.equal(first.summary.reused, false);
    assert.equal(first.signed, 1);
    assert.ok(printedTicket(first.run.stdout).length > 0, 'the server sent a ticket');
    const again = await sClient(['-sess_in', file]);
    assert.equal(again.summary.reused, true, describeRun(again.run));
    assert.equal(again.serverResumed, true);
    assert.equal(again.signed, 0, 'no key operation');
  });

  it('-no_ticket: resumed by session id from the cache', async () => {
    const file = join(dir.dir, 'id.pem');
    const size = cache.size;
    const first = await sClient(['-no_ticket', '-sess_out', file]);
    assert.equal(cache.size, size + 1);
    assert.doesNotMatch(first.run.stdout, /TLS session ticket:/);
    const again = await sClient(['-no_ticket', '-sess_in', file]);
    assert.equal(again.summary.reused, true, describeRun(again.run));
    assert.equal(again.serverResumed, true);
    assert.equal(again.signed, 0);
  });

  it('a tampered ticket: full handshake, no error', async () => {
    const file = join(dir.dir, 'tampered.pem');
    const first = await sClient(['-sess_out', file]);
    const ticket = printedTicket(first.run.stdout);
    const pem = await readFile(file, 'utf8');
    const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s/g, ''), 'base64');
    const at = der.indexOf(ticket);
    assert.ok(at > 0, 'the ticket inside the saved session');
    der[at + ticket.length - 5] ^= 0x01;
    await writeFile(file, `-----BEGIN SSL SESSION PARAMETERS-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END SSL SESSION PARAMETERS-----\n`);
    const again = await sClient(['-sess_in', file]);
    assert.equal(again.summary.reused, false, describeRun(again.run));
    assert.equal(again.serverResumed, false);
    assert.equal(again.signed, 1);
  });

  it('a rotated key still opens its tickets (fresh ticket); a key the ring no longer holds does not (full handshake)', async () => {
    const firstFile = join(dir.dir, 'rotation-first.pem');
    const file = join(dir.dir, 'rotation.pem');
    const first = await sClient(['-sess_out', firstFile]);
    await writeFile(file, await readFile(firstFile));
    clock += HOUR + 1000;
    const renewed = await sClient(['-sess_in', file, '-sess_out', file]);
    assert.equal(renewed.summary.reused, true, describeRun(renewed.run));
    assert.equal(renewed.signed, 0);
    assert.notDeepEqual(printedTicket(renewed.run.stdout), printedTicket(first.run.stdout), 'a new ticket under the new key');
    assert.equal((await sClient(['-sess_in', file])).summary.reused, true, 'the renewed ticket resumes');
    // The fleet's keys were replaced (keyd rotated the old ones out): neither ticket opens.
    ring.install([{ name: Buffer.alloc(16, 0x42), secret: Buffer.alloc(32, 0x24), createdAt: clock }]);
    for (const f of [firstFile, file]) {
      const out = await sClient(['-sess_in', f]);
      assert.equal(out.summary.reused, false, describeRun(out.run));
      assert.equal(out.signed, 1);
    }
  });
});

const PYTHON_REUSE = String.raw`
import json, socket, ssl, sys
a = json.loads(sys.argv[1])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(a["cafile"])
ctx.maximum_version = ssl.TLSVersion.TLSv1_2
if a["noTicket"]:
    ctx.options |= ssl.OP_NO_TICKET
out = []
session = None
for i in range(2):
    if i == 1 and a["noEms"]:
        ctx.options |= 0x1  # SSL_OP_NO_EXTENDED_MASTER_SECRET (OpenSSL 3.0)
    raw = socket.create_connection(("127.0.0.1", a["port"]), timeout=5)
    try:
        s = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
        s.sendall(b"hi")
        s.recv(10)
        out.append({"version": s.version(), "reused": s.session_reused})
        session = s.session
        s.close()
    except Exception as e:
        out.append({"error": "%s: %s" % (type(e).__name__, e)})
print(json.dumps(out))
`;

async function pythonTwice(opts: { noTicket: boolean; noEms?: boolean }) {
  const run = await runProcess('python3', ['-c', PYTHON_REUSE, JSON.stringify({ port: server.port, cafile: pki.ca.certPath, noTicket: opts.noTicket, noEms: opts.noEms ?? false })], { timeoutMs: TIMEOUT });
  const line = run.stdout.trim().split('\n').pop() ?? '';
  assert.ok(line.startsWith('['), describeRun(run));
  return JSON.parse(line) as { version?: string; reused?: boolean; error?: string }[];
}

describe('Python ssl, maximum_version TLSv1_2', () => {
  for (const noTicket of [false, true]) {
    it(`session=s.session reuses the session (${noTicket ? 'OP_NO_TICKET: session id' : 'ticket'})`, async () => {
      const before = signs;
      const [a, b] = await pythonTwice({ noTicket });
      assert.deepEqual(a, { version: 'TLSv1.2', reused: false });
      assert.deepEqual(b, { version: 'TLSv1.2', reused: true });
      assert.equal(signs - before, 1, 'one signature, for the full handshake');
    });
  }

  it('a session with the extended master secret resumed without it: handshake_failure (RFC 7627 5.3)', async () => {
    const mark = server.mark();
    const [a, b] = await pythonTwice({ noTicket: true, noEms: true });
    assert.equal(a.reused, false);
    assert.match(b.error ?? '', /HANDSHAKE_FAILURE|handshake failure/i, JSON.stringify(b));
    await waitUntil(() => server.since(mark).errors.length === 1, 'the refusal');
    assert.equal(server.since(mark).errors[0].alertSent, 40);
    assert.match(server.since(mark).errors[0].error.message, /extended master secret/);
  });
});

describe('gnutls-cli --resume, TLS 1.2', () => {
  for (const [label, extra] of [
    ['ticket', ''],
    ['session id (%NO_TICKETS)', ':%NO_TICKETS'],
  ]) {
    it(label, async () => {
      const sent = token('g12r');
      const before = signs;
      const run = await gnutlsCli(server.port, {
        cafile: pki.ca.certPath,
        servername: 'localhost',
        priority: `NORMAL:-VERS-ALL:+VERS-TLS1.2${extra}`,
        args: ['--resume'],
        input: `${sent}\n`,
        waitFor: sent,
        timeoutMs: TIMEOUT,
      });
      const s = parseGnutlsOutput(run);
      assert.equal(s.protocol, 'TLSv1.2', describeRun(run));
      assert.equal(s.resumed, true, describeRun(run));
      assert.ok(run.stdout.includes(sent), describeRun(run));
      assert.equal(signs - before, 1, 'only the first connection signed');
    });
  }
});

describe('node:tls, maxVersion TLSv1.2', () => {
  async function nodeConnect(session?: Buffer): Promise<{ reused: boolean; session?: Buffer }> {
    const socket = tls.connect({ host: LOOPBACK, port: server.port, servername: 'localhost', ca: pki.ca.certPem, maxVersion: 'TLSv1.2', session });
    let got: Buffer | undefined;
    socket.on('session', (s: Buffer) => (got = s));
    try {
      await once(socket, 'secureConnect');
      socket.write('x');
      await once(socket, 'data');
      return { reused: socket.isSessionReused(), session: got ?? socket.getSession() };
    } finally {
      socket.destroy();
    }
  }
  it('session option: isSessionReused(), no key operation', async () => {
    const first = await nodeConnect();
    assert.equal(first.reused, false);
    assert.ok(first.session);
    const before = signs;
    const again = await nodeConnect(first.session);
    assert.equal(again.reused, true);
    assert.equal(signs, before);
  });
});

describe('keyward client against openssl s_server -tls1_2', () => {
  const serverArgs = () => ['-naccept', '2', '-cert', pki.server['ecdsa-p256'].chainPath, '-key', pki.server['ecdsa-p256'].keyPath, '-tls1_2'];
  /** A handshake, one line printed by s_server, and the session event (if any) of the connection. */
  async function once12(port: number, opts: Partial<KeywardConnectOptions>): Promise<{ c: KeywardClientSocket; session?: Buffer }> {
    const c = connect({ port, host: 'localhost', ca: pki.ca.certPem, handshakeTimeout: 5_000, ...opts });
    let session: Buffer | undefined;
    c.on('session', (s: Buffer) => (session = s));
    await once(c, 'secureConnect');
    c.write(`${token('kw')}\n`);
    // The session event follows the handshake; give the socket a turn to deliver it.
    await new Promise((r) => setImmediate(r));
    return { c, session };
  }
  for (const [label, extra] of [
    ['ticket', []],
    ['session id (-no_ticket)', ['-no_ticket']],
  ] as const) {
    it(label, async () => {
      const s = await sServer([...serverArgs(), ...extra]);
      const first = await once12(s.port, {});
      assert.equal(first.c.isSessionReused(), false);
      assert.ok(first.session, 'a session event');
      // close_notify: OpenSSL drops a session whose connection was not shut down cleanly.
      await closeCleanly(first.c);
      const again = await once12(s.port, { session: first.session });
      assert.equal(again.c.getProtocol(), 'TLSv1.2');
      assert.equal(again.c.isSessionReused(), true);
      assert.equal(again.c.authorized, true);
      await closeCleanly(again.c);
      await waitUntil(() => /Reused session-id/.test(s.output()), `s_server to report the reuse:\n${s.output()}`);
    });
  }
});

async function closeCleanly(c: KeywardClientSocket): Promise<void> {
  const closed = once(c, 'close');
  c.end();
  c.resume();
  await closed;
}
