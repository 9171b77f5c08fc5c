// Interop with `openssl s_client -tls1_3` against the keyward echo server: every cipher
// suite x group x certificate key type (the whole matrix: OpenSSL is the reference peer and a
// run costs ~0.1 s), RSA-PSS with SHA-256/384/512, HelloRetryRequest, KeyUpdate both ways,
// and the middlebox-compatibility ChangeCipherSpec as seen on the wire. Each run checks the
// echoed bytes and the negotiated parameters on both sides, and that the chain verifies
// against the fixture CA.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NamedGroup } from '../../src/tls/crypto/groups.js';
import { SignatureScheme } from '../../src/tls/crypto/signatureSchemes.js';
import { opensslClient, parseOpensslOutput, type OpensslSummary, type RunResult } from '../support/peers.js';
import { KEY_TYPES, type KeyType, type PkiFixtures } from '../support/pki.js';
import {
  certificate,
  ContentType,
  describeRun,
  GROUPS,
  HandshakeType,
  HELLO_RETRY_RANDOM,
  KEY_TYPE_NAMES,
  keyShareGroups,
  onlySession,
  parseClientHello,
  parseServerHello,
  plaintextHandshakes,
  receivedText,
  serverKeyShareGroup,
  startEchoServer,
  echoServersPerKeyType,
  startRecordProxy,
  SUITES,
  waitUntil,
  type EchoServer,
  type GroupNames,
  type SuiteNames,
  token,
} from '../support/keywardServer.js';

let pki: PkiFixtures;
const serverFor = echoServersPerKeyType((p) => (pki = p));


interface EchoRun {
  run: RunResult;
  summary: OpensslSummary;
  sent: string;
}

/**
 * One s_client connection verifying the chain (and the IP SAN) against the fixture CA,
 * sending one line and waiting for its echo.
 */
async function opensslEcho(port: number, args: string[]): Promise<EchoRun> {
  const sent = token('ping');
  const run = await opensslClient(port, {
    cafile: pki.ca.certPath,
    args: ['-tls1_3', '-verify_ip', '127.0.0.1', ...args],
    input: `${sent}\n`,
    waitFor: sent,
    timeoutMs: 10_000,
  });
  return { run, summary: parseOpensslOutput(run), sent };
}

/** Asserts a full matrix point on both sides. */
async function checkCombination(suite: SuiteNames, group: GroupNames, kt: KeyType): Promise<void> {
  const server = serverFor(kt);
  const mark = server.mark();
  const { run, summary, sent } = await opensslEcho(server.port, ['-ciphersuites', suite.name, '-groups', group.openssl]);
  const why = describeRun(run);
  assert.equal(run.timedOut, false, `s_client timed out\n${why}`);
  assert.equal(summary.handshakeOk, true, `handshake failed\n${why}`);
  assert.equal(summary.protocol, 'TLSv1.3', why);
  assert.equal(summary.cipher, suite.name, why);
  assert.equal(summary.group, group.openssl, why);
  assert.equal(summary.verifyCode, 0, `chain did not verify: ${summary.verifyMessage}\n${why}`);
  const names = KEY_TYPE_NAMES[kt];
  assert.equal(summary.peerSignatureType, names.opensslType, why);
  if (names.opensslDigest) assert.equal(summary.peerSigningDigest, names.opensslDigest, why);
  assert.ok(run.stdout.includes(sent), `echo not received\n${why}`);

  const session = onlySession(server, mark);
  assert.equal(session.protocol, 'TLSv1.3');
  assert.equal(session.negotiated.cipherName, suite.name);
  assert.equal(session.cipher?.standardName, suite.name);
  assert.equal(session.negotiated.group, group.group);
  assert.equal(session.negotiated.signatureScheme, names.scheme);
  assert.ok(!session.negotiated.helloRetry, 'no HelloRetryRequest expected: the client sent a share for its only group');
  assert.equal(receivedText(session), `${sent}\n`);
}

describe('openssl s_client: suite x group x key type', () => {
  for (const kt of KEY_TYPES) {
    for (const suite of SUITES) {
      for (const group of GROUPS) {
        it(`${suite.name} ${group.openssl} ${kt}`, () => checkCombination(suite, group, kt));
      }
    }
  }
});

describe('openssl s_client: RSA-PSS digests via -sigalgs', () => {
  const cases: [string, SignatureScheme, string][] = [
    ['rsa_pss_rsae_sha256', SignatureScheme.rsa_pss_rsae_sha256, 'SHA256'],
    ['rsa_pss_rsae_sha384', SignatureScheme.rsa_pss_rsae_sha384, 'SHA384'],
    ['rsa_pss_rsae_sha512', SignatureScheme.rsa_pss_rsae_sha512, 'SHA512'],
  ];
  for (const [name, scheme, digest] of cases) {
    it(name, async () => {
      const server = serverFor('rsa-2048');
      const mark = server.mark();
      const { run, summary, sent } = await opensslEcho(server.port, ['-sigalgs', name]);
      const why = describeRun(run);
      assert.equal(summary.handshakeOk, true, why);
      assert.equal(summary.verifyCode, 0, why);
      assert.equal(summary.peerSignatureType, 'RSA-PSS', why);
      assert.equal(summary.peerSigningDigest, digest, why);
      assert.ok(run.stdout.includes(sent), why);
      assert.equal(onlySession(server, mark).negotiated.signatureScheme, scheme);
    });
  }

  it('a client that accepts no scheme the key can make gets handshake_failure', async () => {
    const server = serverFor('rsa-2048');
    const mark = server.mark();
    const { run, summary } = await opensslEcho(server.port, ['-sigalgs', 'ecdsa_secp256r1_sha256:ed25519']);
    const why = describeRun(run);
    assert.equal(summary.handshakeOk, false, why);
    assert.match(run.stderr, /alert handshake failure|alert number 40/, why);
    const { sessions, errors } = server.since(mark);
    assert.equal(sessions.length, 0);
    assert.equal(errors.length, 1);
    assert.equal(errors[0].alertSent, 40, errors[0].error.message);
  });
});

describe('openssl s_client: HelloRetryRequest', () => {
  let server: EchoServer;
  before(async () => {
    server = await startEchoServer({ certificates: [certificate(pki.server['ecdsa-p256'])], groups: [NamedGroup.secp384r1] });
  });
  after(() => server.close());

  it('X25519 share first, P-384 only acceptable: HRR, then P-384; one CCS; the second ClientHello answers the HRR', async () => {
    const proxy = await startRecordProxy(server.port);
    try {
      const mark = server.mark();
      const { run, summary, sent } = await opensslEcho(proxy.port, ['-groups', 'X25519:P-384']);
      const why = describeRun(run);
      assert.equal(summary.handshakeOk, true, why);
      assert.equal(summary.group, 'P-384', why);
      assert.equal(summary.verifyCode, 0, why);
      assert.ok(run.stdout.includes(sent), why);

      const session = onlySession(server, mark);
      assert.equal(session.negotiated.helloRetry, true);
      assert.equal(session.negotiated.group, NamedGroup.secp384r1);
      assert.equal(receivedText(session), `${sent}\n`);

      await waitUntil(() => proxy.connections.length === 1 && proxy.connections[0].closed, 'the proxied connection to close');
      const conn = proxy.connections[0];
      const clientHellos = plaintextHandshakes(conn.clientRecords()).filter((m) => m.type === HandshakeType.client_hello).map((m) => parseClientHello(m.body));
      assert.equal(clientHellos.length, 2, 'two ClientHellos');
      assert.deepEqual(keyShareGroups(clientHellos[0]), [NamedGroup.x25519]);
      assert.deepEqual(keyShareGroups(clientHellos[1]), [NamedGroup.secp384r1]);

      const serverRecords = conn.serverRecords();
      const serverHellos = plaintextHandshakes(serverRecords).filter((m) => m.type === HandshakeType.server_hello).map((m) => parseServerHello(m.body));
      assert.equal(serverHellos.length, 2, 'HelloRetryRequest and ServerHello');
      assert.ok(serverHellos[0].random.equals(HELLO_RETRY_RANDOM), 'the first ServerHello is a HelloRetryRequest');
      assert.equal(serverKeyShareGroup(serverHellos[0]), NamedGroup.secp384r1, 'HRR asks for P-384');
      assert.ok(!serverHellos[1].random.equals(HELLO_RETRY_RANDOM));
      assert.equal(serverKeyShareGroup(serverHellos[1]), NamedGroup.secp384r1);
      for (const sh of serverHellos) assert.ok(sh.sessionId.equals(clientHellos[0].sessionId), 'legacy_session_id echoed');
      // RFC 8446 D.4: one dummy CCS, right after the first handshake message (the HRR).
      const ccs = serverRecords.filter((r) => r.type === ContentType.change_cipher_spec);
      assert.equal(ccs.length, 1, `one CCS from the server, saw types ${serverRecords.map((r) => r.type).join(',')}`);
      assert.equal(serverRecords[1].type, ContentType.change_cipher_spec, 'CCS right after the HRR');
    } finally {
      await proxy.close();
    }
  });

  it('a client with no group in common gets handshake_failure', async () => {
    const mark = server.mark();
    const { run, summary } = await opensslEcho(server.port, ['-groups', 'X25519:P-256']);
    const why = describeRun(run);
    assert.equal(summary.handshakeOk, false, why);
    assert.match(run.stderr, /alert handshake failure|alert number 40/, why);
    const { sessions, errors } = server.since(mark);
    assert.equal(sessions.length, 0);
    assert.equal(errors[0]?.alertSent, 40);
  });
});

describe('openssl s_client offering only a group late in the default preference (issue 16)', () => {
  for (const [groups, name] of [
    ['P-521', 'P-521'],
    ['ffdhe2048', 'ffdhe2048'],
    ['ffdhe3072', 'ffdhe3072'],
  ] as const) {
    it(`-groups ${groups} negotiates ${name} with the default groups (no HelloRetryRequest)`, async () => {
      const server = serverFor('ecdsa-p256');
      const mark = server.mark();
      const { run, summary, sent } = await opensslEcho(server.port, ['-groups', groups]);
      const why = describeRun(run);
      assert.equal(summary.handshakeOk, true, why);
      assert.equal(summary.group, name, why);
      assert.match(run.stdout, new RegExp(sent), why);
      assert.equal(onlySession(server, mark).negotiated.helloRetry, undefined);
    });
  }
});

/** KeyUpdate messages s_client -msg printed in one direction: their request_update byte each. */
function keyUpdatesSeen(stdout: string, direction: '<<<' | '>>>'): number[] {
  const re = new RegExp(`^${direction} TLS 1\\.3, Handshake \\[length 0005\\], KeyUpdate\\n\\s+18 00 00 01 (0[01])`, 'gm');
  return [...stdout.matchAll(re)].map((m) => Number(m[1]));
}

describe('openssl s_client: KeyUpdate', () => {
  let server: EchoServer;
  before(async () => {
    server = await startEchoServer(
      { certificates: [certificate(pki.server['ecdsa-p256'])] },
      {
        // Lets the test ask the server for its own KeyUpdate before the echo goes out.
        onData: (socket, chunk) => {
          const text = chunk.toString('utf8');
          if (text.startsWith('rekey-request')) socket.keyUpdate(true);
          else if (text.startsWith('rekey-plain')) socket.keyUpdate(false);
        },
      },
    );
  });
  after(() => server.close());

  it('client k and K: data keeps flowing both ways; K is answered by one update_not_requested', async () => {
    const [one, two, three] = [token('one'), token('two'), token('three')];
    const mark = server.mark();
    const run = await opensslClient(server.port, {
      cafile: pki.ca.certPath,
      args: ['-tls1_3', '-msg'],
      input: [`${one}\n`, 'k\n', `${two}\n`, 'K\n', `${three}\n`],
      waitFor: three,
      timeoutMs: 10_000,
    });
    const why = describeRun(run, 4000);
    const summary = parseOpensslOutput(run);
    assert.equal(summary.handshakeOk, true, why);
    assert.equal(summary.keyUpdates, 2, `s_client acted on k and K\n${why}`);
    for (const t of [one, two, three]) assert.ok(run.stdout.includes(t), `echo of ${t} missing\n${why}`);
    assert.deepEqual(keyUpdatesSeen(run.stdout, '>>>'), [0, 1], `client sent k then K\n${why}`);
    assert.deepEqual(keyUpdatesSeen(run.stdout, '<<<'), [0], `server answers K (only) with update_not_requested\n${why}`);
    const session = onlySession(server, mark);
    assert.equal(receivedText(session), `${one}\n${two}\n${three}\n`);
  });

  it('server keyUpdate(true): the client answers, and data flows both ways after it', async () => {
    const [req, afterIt] = [token('rekey-request'), token('after')];
    const mark = server.mark();
    const run = await opensslClient(server.port, {
      cafile: pki.ca.certPath,
      args: ['-tls1_3', '-msg'],
      input: [`${req}\n`, `${afterIt}\n`],
      waitFor: afterIt,
      timeoutMs: 10_000,
    });
    const why = describeRun(run, 4000);
    assert.ok(run.stdout.includes(req) && run.stdout.includes(afterIt), `echoes missing\n${why}`);
    assert.deepEqual(keyUpdatesSeen(run.stdout, '<<<'), [1], `server sent update_requested\n${why}`);
    assert.deepEqual(keyUpdatesSeen(run.stdout, '>>>'), [0], `client answered with update_not_requested\n${why}`);
    assert.equal(receivedText(onlySession(server, mark)), `${req}\n${afterIt}\n`);
  });

  it('server keyUpdate(false): the client updates its receive key only', async () => {
    const [req, afterIt] = [token('rekey-plain'), token('after')];
    const mark = server.mark();
    const run = await opensslClient(server.port, {
      cafile: pki.ca.certPath,
      args: ['-tls1_3', '-msg'],
      input: [`${req}\n`, `${afterIt}\n`],
      waitFor: afterIt,
      timeoutMs: 10_000,
    });
    const why = describeRun(run, 4000);
    assert.ok(run.stdout.includes(req) && run.stdout.includes(afterIt), `echoes missing\n${why}`);
    assert.deepEqual(keyUpdatesSeen(run.stdout, '<<<'), [0], why);
    assert.deepEqual(keyUpdatesSeen(run.stdout, '>>>'), [], why);
    assert.equal(receivedText(onlySession(server, mark)), `${req}\n${afterIt}\n`);
  });
});

describe('openssl s_client: middlebox compatibility', () => {
  it('the server echoes the session id and sends one CCS right after its ServerHello, then only encrypted records', async () => {
    const server = serverFor('ecdsa-p256');
    const proxy = await startRecordProxy(server.port);
    try {
      const { run, summary, sent } = await opensslEcho(proxy.port, []);
      assert.equal(summary.handshakeOk, true, describeRun(run));
      assert.ok(run.stdout.includes(sent));
      await waitUntil(() => proxy.connections.length === 1 && proxy.connections[0].closed, 'the proxied connection to close');
      const conn = proxy.connections[0];
      const [ch] = plaintextHandshakes(conn.clientRecords()).map((m) => parseClientHello(m.body));
      assert.equal(ch.sessionId.length, 32, 'OpenSSL offers a legacy_session_id in compatibility mode');
      const records = conn.serverRecords();
      assert.equal(records[0].type, ContentType.handshake);
      const hellos = plaintextHandshakes(records);
      assert.equal(hellos.length, 1, 'only the ServerHello is unencrypted');
      assert.equal(hellos[0].type, HandshakeType.server_hello);
      const sh = parseServerHello(hellos[0].body);
      assert.equal(sh.legacyVersion, 0x0303);
      assert.ok(sh.sessionId.equals(ch.sessionId), 'legacy_session_id_echo');
      assert.equal(records[1].type, ContentType.change_cipher_spec, 'CCS right after ServerHello');
      assert.deepEqual([...records[1].fragment], [1]);
      const rest = records.slice(2);
      assert.ok(rest.length > 0);
      assert.deepEqual([...new Set(rest.map((r) => r.type))], [ContentType.application_data], 'everything after the CCS is encrypted');
      for (const r of records) assert.equal(r.version, 0x0303, 'legacy_record_version 0x0303');
    } finally {
      await proxy.close();
    }
  });
});
