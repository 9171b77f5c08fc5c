// Interop with `gnutls-cli` (GnuTLS 3.7) against the keyward echo server: priority strings
// that pin one suite and one group, for every key type (the whole matrix, ~0.1 s a run);
// one signature scheme only (RSA-PSS SHA-256/384/512, Ed25519); HelloRetryRequest; KeyUpdate
// through its inline commands; and record_size_limit (RFC 8449), checked on the raw records
// through a proxy.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NamedGroup } from '../../src/tls/crypto/groups.js';
import { SignatureScheme } from '../../src/tls/crypto/signatureSchemes.js';
import { gnutlsCli, parseGnutlsOutput, type GnutlsSummary, type RunResult } from '../support/peers.js';
import { KEY_TYPES, type KeyType, type PkiFixtures } from '../support/pki.js';
import {
  certificate,
  ContentType,
  describeRun,
  GROUPS,
  HandshakeType,
  KEY_TYPE_NAMES,
  keyShareGroups,
  onlySession,
  parseClientHello,
  plaintextHandshakes,
  receivedText,
  recordSizeLimit,
  startEchoServer,
  echoServersPerKeyType,
  startRecordProxy,
  SUITES,
  waitUntil,
  type GroupNames,
  type SuiteNames,
  token,
} from '../support/keywardServer.js';

let pki: PkiFixtures;
const serverFor = echoServersPerKeyType((p) => (pki = p));

const TLS13_ONLY = 'NORMAL:-VERS-ALL:+VERS-TLS1.3';

/** A priority string for TLS 1.3 with exactly this suite and group (and optionally signature scheme). */
function priority(suite: SuiteNames, group: GroupNames, sign?: string): string {
  let p = `${TLS13_ONLY}:-CIPHER-ALL:+${suite.gnutls}:-GROUP-ALL:+${group.gnutls}`;
  // The fixture CA signs with ECDSA P-256/SHA-256: keep that allowed for the chain.
  if (sign) p += `:-SIGN-ALL:+${sign}:+SIGN-ECDSA-SECP256R1-SHA256`;
  return p;
}

interface EchoRun {
  run: RunResult;
  summary: GnutlsSummary;
  sent: string;
}

async function gnutlsEcho(port: number, prio: string, args: string[] = []): Promise<EchoRun> {
  const sent = token('ping');
  const run = await gnutlsCli(port, { cafile: pki.ca.certPath, priority: prio, args, input: `${sent}\n`, waitFor: sent, timeoutMs: 10_000 });
  return { run, summary: parseGnutlsOutput(run), sent };
}

async function checkCombination(suite: SuiteNames, group: GroupNames, kt: KeyType, sign?: { gnutls: string; printed: string; scheme: SignatureScheme }): Promise<void> {
  const server = serverFor(kt);
  const mark = server.mark();
  const { run, summary, sent } = await gnutlsEcho(server.port, priority(suite, group, sign?.gnutls));
  const why = describeRun(run);
  assert.equal(run.timedOut, false, `gnutls-cli timed out\n${why}`);
  assert.equal(summary.handshakeCompleted, true, `handshake failed: ${summary.errors.join(' | ')}\n${why}`);
  assert.equal(summary.protocol, 'TLSv1.3', why);
  assert.equal(summary.cipher, suite.gnutls, why);
  assert.equal(summary.group, group.openssl, why);
  assert.equal(summary.signature, sign?.printed ?? KEY_TYPE_NAMES[kt].gnutls, why);
  assert.equal(summary.trusted, true, `chain not trusted\n${why}`);
  assert.ok(run.stdout.includes(sent), `echo not received\n${why}`);

  const session = onlySession(server, mark);
  assert.equal(session.negotiated.cipherName, suite.name);
  assert.equal(session.negotiated.group, group.group);
  assert.equal(session.negotiated.signatureScheme, sign?.scheme ?? KEY_TYPE_NAMES[kt].scheme);
  assert.ok(!session.negotiated.helloRetry, 'no HelloRetryRequest: the client offers only one group');
  assert.equal(receivedText(session), `${sent}\n`);
}

const [AES128, , CHACHA] = SUITES;
const [X25519] = GROUPS;

describe('gnutls-cli: suite x group x key type', () => {
  for (const kt of KEY_TYPES) {
    for (const suite of SUITES) {
      for (const group of GROUPS) it(`${suite.gnutls} ${group.gnutls} ${kt}`, () => checkCombination(suite, group, kt));
    }
  }
});

describe('gnutls-cli: one signature scheme only', () => {
  const pss: [string, string, SignatureScheme][] = [
    ['SIGN-RSA-PSS-RSAE-SHA256', 'RSA-PSS-RSAE-SHA256', SignatureScheme.rsa_pss_rsae_sha256],
    ['SIGN-RSA-PSS-RSAE-SHA384', 'RSA-PSS-RSAE-SHA384', SignatureScheme.rsa_pss_rsae_sha384],
    ['SIGN-RSA-PSS-RSAE-SHA512', 'RSA-PSS-RSAE-SHA512', SignatureScheme.rsa_pss_rsae_sha512],
  ];
  for (const [kw, printed, scheme] of pss) {
    it(`RSA-2048 with ${kw} only`, () => checkCombination(AES128, X25519, 'rsa-2048', { gnutls: kw, printed, scheme }));
  }
  it('Ed25519 with SIGN-EDDSA-ED25519 only', () =>
    checkCombination(CHACHA, X25519, 'ed25519', { gnutls: 'SIGN-EDDSA-ED25519', printed: 'EdDSA-Ed25519', scheme: SignatureScheme.ed25519 }));
});

describe('gnutls-cli: HelloRetryRequest', () => {
  it('shares for X25519 and P-256 to an X448-only server: HRR, then X448', async () => {
    const server = await startEchoServer({ certificates: [certificate(pki.server['ecdsa-p256'])], groups: [NamedGroup.x448] });
    const proxy = await startRecordProxy(server.port);
    try {
      const mark = server.mark();
      const { run, summary, sent } = await gnutlsEcho(proxy.port, `${TLS13_ONLY}:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-X448`);
      const why = describeRun(run);
      assert.equal(summary.handshakeCompleted, true, why);
      assert.equal(summary.group, 'X448', why);
      assert.equal(summary.trusted, true, why);
      assert.ok(run.stdout.includes(sent), why);
      const session = onlySession(server, mark);
      assert.equal(session.negotiated.helloRetry, true);
      assert.equal(session.negotiated.group, NamedGroup.x448);
      await waitUntil(() => proxy.connections.length === 1 && proxy.connections[0].closed, 'the proxied connection to close');
      const hellos = plaintextHandshakes(proxy.connections[0].clientRecords())
        .filter((m) => m.type === HandshakeType.client_hello)
        .map((m) => parseClientHello(m.body));
      assert.equal(hellos.length, 2);
      assert.ok(!keyShareGroups(hellos[0]).includes(NamedGroup.x448), 'the first ClientHello has no X448 share');
      assert.deepEqual(keyShareGroups(hellos[1]), [NamedGroup.x448]);
    } finally {
      await proxy.close();
      await server.close();
    }
  });
});

describe('gnutls-cli: KeyUpdate', () => {
  it('^rekey^ and ^rekey1^ between lines: every line is echoed under the new keys', async () => {
    const server = serverFor('ed25519');
    const [one, two, three] = [token('one'), token('two'), token('three')];
    const mark = server.mark();
    const run = await gnutlsCli(server.port, {
      cafile: pki.ca.certPath,
      priority: TLS13_ONLY,
      args: ['--inline-commands'],
      input: [`${one}\n`, '^rekey^\n', `${two}\n`, '^rekey1^\n', `${three}\n`],
      waitFor: three,
      timeoutMs: 10_000,
    });
    const why = describeRun(run);
    for (const t of [one, two, three]) assert.ok(run.stdout.includes(t), `echo of ${t} missing\n${why}`);
    assert.equal((run.stdout.match(/^- Rekey was completed/gm) ?? []).length, 2, why);
    assert.equal(receivedText(onlySession(server, mark)), `${one}\n${two}\n${three}\n`);
  });
});

describe('gnutls-cli: record_size_limit', () => {
  it('--recordsize=512: a 20 kB reply arrives whole, and no server record exceeds the client limit', async () => {
    // gnutls-cli sends only one record's worth of each stdin read when --recordsize is set,
    // so the client asks for the bulk instead of sending it: the server answers a line
    // starting "big-please" with 20 kB, then echoes the line. RSA makes the Certificate
    // message large enough to need several records as well.
    const bulk = `${'y'.repeat(20_000)}-${token('end')}`;
    const server = await startEchoServer(
      { certificates: [certificate(pki.server['rsa-2048'])] },
      {
        onData: (socket, chunk) => {
          if (chunk.toString('utf8').startsWith('big-please')) socket.write(bulk);
        },
      },
    );
    const proxy = await startRecordProxy(server.port);
    try {
      const mark = server.mark();
      const request = token('big-please');
      const run = await gnutlsCli(proxy.port, {
        cafile: pki.ca.certPath,
        priority: TLS13_ONLY,
        args: ['--recordsize=512'],
        input: `${request}\n`,
        waitFor: request,
        timeoutMs: 10_000,
      });
      const why = describeRun(run);
      const summary = parseGnutlsOutput(run);
      assert.equal(summary.handshakeCompleted, true, why);
      assert.ok(run.stdout.includes(`${bulk}${request}\n`), `the 20 kB reply and the echo did not come back whole\n${why}`);
      assert.equal(receivedText(onlySession(server, mark)), `${request}\n`);

      await waitUntil(() => proxy.connections.length === 1 && proxy.connections[0].closed, 'the proxied connection to close');
      const conn = proxy.connections[0];
      const [ch] = plaintextHandshakes(conn.clientRecords())
        .filter((m) => m.type === HandshakeType.client_hello)
        .map((m) => parseClientHello(m.body));
      const limit = recordSizeLimit(ch);
      // GnuTLS 3.7 advertises 513: 512 bytes of content plus the TLS 1.3 content-type byte.
      assert.ok(limit !== undefined && limit <= 513, `gnutls-cli advertised record_size_limit ${String(limit)}`);
      // RFC 8449 4: in TLS 1.3 the limit bounds TLSInnerPlaintext (content + type + padding);
      // the AEAD adds a 16-byte tag on the wire.
      const encrypted = conn.serverRecords().filter((r) => r.type === ContentType.application_data);
      assert.ok(encrypted.length >= 40, `20 kB in records of at most ${limit} bytes needs >= 40 records, saw ${encrypted.length}`);
      const over = encrypted.filter((r) => r.length > limit + 16);
      assert.deepEqual(
        over.map((r) => r.length),
        [],
        `server records longer than limit ${limit} + 16 (out of ${encrypted.length})`,
      );
    } finally {
      await proxy.close();
      await server.close();
    }
  });
});
