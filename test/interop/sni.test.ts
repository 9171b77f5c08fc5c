// Certificate choice by SNI and key type, seen by real clients: exact names, a wildcard that
// covers one label only, one name served by both an RSA and an ECDSA chain (picked by the
// client's signature_algorithms), and unknown names answered with the default chain or,
// when configured, with unrecognized_name.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { SignatureScheme } from '../../src/tls/crypto/signatureSchemes.js';
import type { CertificateWithKey } from '../../src/node/server.js';
import { nodeTlsClient, opensslClient, parseOpensslOutput, type OpensslSummary, type RunResult } from '../support/peers.js';
import { getPki, type PkiFixtures } from '../support/pki.js';
import { certificate, describeRun, onlySession, startEchoServer, type EchoServer, type ServerSession } from '../support/keywardServer.js';

let pki: PkiFixtures;
/** RSA listed before ECDSA for example.test; unknown names get the default (localhost) chain. */
let lenient: EchoServer;
/** ECDSA listed before RSA for example.test; unknown names are refused. */
let strict: EchoServer;

/**
 * localhost: ECDSA P-256 (default, first); example.test: RSA-2048 and ECDSA P-384;
 * *.wild.test: Ed25519. The fixture SNI chains all carry both names, so the `names`
 * given here are what selects them.
 */
function chains(order: 'rsa-first' | 'ecdsa-first'): CertificateWithKey[] {
  const rsa = certificate(pki.sni['rsa-2048'], ['example.test']);
  const ecdsa = certificate(pki.sni['ecdsa-p384'], ['example.test']);
  return [
    certificate(pki.server['ecdsa-p256']),
    ...(order === 'rsa-first' ? [rsa, ecdsa] : [ecdsa, rsa]),
    certificate(pki.sni['ed25519'], ['*.wild.test']),
  ];
}

before(async () => {
  pki = await getPki();
  lenient = await startEchoServer({ certificates: chains('rsa-first') });
  strict = await startEchoServer({ certificates: chains('ecdsa-first'), unknownServerName: 'reject' });
});

after(async () => {
  await lenient.close();
  await strict.close();
});

interface Outcome {
  run: RunResult;
  summary: OpensslSummary;
  /** Subject of the leaf the client got, e.g. "CN = example.test". */
  subject?: string;
  why: string;
}

async function connect(server: EchoServer, servername: string | undefined, extra: string[] = [], verifyName = servername): Promise<Outcome> {
  const sent = `sni-${randomBytes(6).toString('hex')}`;
  const args = ['-tls1_3', ...extra];
  if (verifyName) args.push('-verify_hostname', verifyName);
  const run = await opensslClient(server.port, { servername, cafile: pki.ca.certPath, args, input: `${sent}\n`, waitFor: sent, timeoutMs: 10_000 });
  const summary = parseOpensslOutput(run);
  const why = describeRun(run);
  if (summary.handshakeOk) assert.ok(run.stdout.includes(sent), `echo missing\n${why}`);
  return { run, summary, subject: /^subject=(.*)$/m.exec(run.stdout)?.[1].trim(), why };
}

/** Connects expecting success and returns what both sides saw. */
async function served(server: EchoServer, servername: string | undefined, extra: string[] = [], verifyName = servername): Promise<Outcome & { session: ServerSession }> {
  const mark = server.mark();
  const o = await connect(server, servername, extra, verifyName);
  assert.equal(o.summary.handshakeOk, true, o.why);
  return { ...o, session: onlySession(server, mark) };
}

describe('SNI: exact and wildcard names', () => {
  it('example.test with every scheme allowed: the first chain for that name (RSA)', async () => {
    const o = await served(lenient, 'example.test');
    assert.equal(o.subject, 'CN = example.test', o.why);
    assert.equal(o.summary.verifyCode, 0, o.why);
    assert.equal(o.summary.peerSignatureType, 'RSA-PSS', o.why);
    assert.equal(o.session.servername, 'example.test');
    assert.equal(o.session.negotiated.signatureScheme, SignatureScheme.rsa_pss_rsae_sha256);
  });

  it('example.test, ECDSA-only client: the ECDSA chain although RSA is listed first', async () => {
    const o = await served(lenient, 'example.test', ['-sigalgs', 'ecdsa_secp384r1_sha384:ecdsa_secp256r1_sha256']);
    assert.equal(o.subject, 'CN = example.test', o.why);
    assert.equal(o.summary.verifyCode, 0, o.why);
    assert.equal(o.summary.peerSignatureType, 'ECDSA', o.why);
    assert.equal(o.session.negotiated.signatureScheme, SignatureScheme.ecdsa_secp384r1_sha384);
  });

  it('example.test, RSA-only client: the RSA chain although ECDSA is listed first', async () => {
    const o = await served(strict, 'example.test', ['-sigalgs', 'rsa_pss_rsae_sha256']);
    assert.equal(o.subject, 'CN = example.test', o.why);
    assert.equal(o.summary.peerSignatureType, 'RSA-PSS', o.why);
    assert.equal(o.session.negotiated.signatureScheme, SignatureScheme.rsa_pss_rsae_sha256);
  });

  it('example.test, every scheme allowed, ECDSA listed first: ECDSA', async () => {
    const o = await served(strict, 'example.test');
    assert.equal(o.summary.peerSignatureType, 'ECDSA', o.why);
    assert.equal(o.session.negotiated.signatureScheme, SignatureScheme.ecdsa_secp384r1_sha384);
  });

  it('host names compare case-insensitively (EXAMPLE.TEST)', async () => {
    const o = await served(strict, 'EXAMPLE.TEST', [], 'example.test');
    assert.equal(o.subject, 'CN = example.test', o.why);
    assert.equal(o.session.negotiated.signatureScheme, SignatureScheme.ecdsa_secp384r1_sha384);
  });

  it('a.wild.test matches *.wild.test', async () => {
    const o = await served(strict, 'a.wild.test');
    assert.equal(o.subject, 'CN = example.test', o.why);
    assert.equal(o.summary.verifyCode, 0, o.why);
    assert.equal(o.summary.peerSignatureType, 'ed25519', o.why);
    assert.equal(o.session.servername, 'a.wild.test');
    assert.equal(o.session.negotiated.signatureScheme, SignatureScheme.ed25519);
  });

  it('a.b.wild.test does not match *.wild.test: the default chain when lenient', async () => {
    const o = await served(lenient, 'a.b.wild.test', [], 'localhost');
    assert.equal(o.subject, 'CN = localhost', o.why);
    assert.equal(o.session.negotiated.signatureScheme, SignatureScheme.ecdsa_secp256r1_sha256);
  });

  it('localhost: the localhost chain', async () => {
    const o = await served(strict, 'localhost');
    assert.equal(o.subject, 'CN = localhost', o.why);
    assert.equal(o.summary.verifyCode, 0, o.why);
  });

  it('no SNI: the default chain, even when unknown names are refused', async () => {
    const o = await served(strict, undefined, ['-verify_ip', '127.0.0.1']);
    assert.equal(o.subject, 'CN = localhost', o.why);
    assert.equal(o.summary.verifyCode, 0, o.why);
    assert.equal(o.session.servername, false);
  });
});

describe('SNI: unknown names', () => {
  it('unknown.test gets the default chain when lenient', async () => {
    const o = await served(lenient, 'unknown.test', [], 'localhost');
    assert.equal(o.subject, 'CN = localhost', o.why);
    assert.equal(o.summary.verifyCode, 0, o.why);
    assert.equal(o.session.servername, 'unknown.test');
  });

  for (const name of ['unknown.test', 'a.b.wild.test']) {
    it(`${name} gets unrecognized_name with unknownServerName 'reject' (openssl)`, async () => {
      const mark = strict.mark();
      const o = await connect(strict, name);
      assert.equal(o.summary.handshakeOk, false, o.why);
      assert.match(o.run.stderr, /unrecognized name|alert number 112/, o.why);
      const { sessions, errors } = strict.since(mark);
      assert.equal(sessions.length, 0);
      assert.equal(errors.length, 1);
      assert.equal(errors[0].alertSent, 112, errors[0].error.message);
    });
  }

  it("unknown.test gets unrecognized_name with unknownServerName 'reject' (node:tls)", async () => {
    const r = await nodeTlsClient(strict.port, { servername: 'unknown.test', ca: pki.ca.certPem, timeoutMs: 10_000 });
    assert.equal(r.connected, false, JSON.stringify(r));
    assert.equal(r.errorCode, 'ERR_SSL_TLSV1_UNRECOGNIZED_NAME', JSON.stringify(r));
  });

  it('the server keeps serving after refusing a name', async () => {
    const r = await nodeTlsClient(strict.port, { servername: 'x.wild.test', ca: pki.ca.certPem, send: 'still-here', until: 'still-here', timeoutMs: 10_000 });
    assert.equal(r.authorized, true, JSON.stringify(r));
    assert.equal(r.peerCommonName, 'example.test');
    assert.equal(r.received, 'still-here');
  });
});
