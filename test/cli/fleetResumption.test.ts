/**
 * Two `keyward serve` fronts sharing keyd-served ticket keys resume each other's sessions,
 * TLS 1.3 and TLS 1.2 (RFC 5077 tickets): front A issues the ticket (openssl s_client
 * -sess_out), front B resumes it (-sess_in), and keyd's audit log shows the full
 * handshake's signature and none for the resumed one.
 */
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connectKeydAdmin } from '../../src/keys/remoteKey.js';
import { makeKeydPki, readAudit, startTestKeyd, tempDir, tlsClientOptions, type KeydPki } from '../support/keydFixture.js';
import { startServe, type KeywardChild } from '../support/keywardCli.js';
import { opensslClient, parseOpensslOutput } from '../support/peers.js';
import { getPki, type PkiFixtures } from '../support/pki.js';

let root: { dir: string; cleanup: () => Promise<void> };
let pki: PkiFixtures;
let linkPki: KeydPki;
let keyd: Awaited<ReturnType<typeof startTestKeyd>>;
const fronts: KeywardChild[] = [];

before(async () => {
  root = await tempDir('keyward-fleet-');
  pki = await getPki();
  linkPki = await makeKeydPki(root.dir, ['front-a', 'front-b', 'admin']);
  keyd = await startTestKeyd(root.dir, linkPki, {
    clients: [
      { id: 'cn:front-a', keys: ['*'], ticketKeys: true },
      { id: 'cn:front-b', keys: ['*'], ticketKeys: true },
      { id: 'cn:admin', admin: true },
    ],
  });
  const admin = await connectKeydAdmin(tlsClientOptions(linkPki, 'admin', keyd.keyd.tlsAddress!));
  try {
    await admin.putKey(createPrivateKey(pki.server['ecdsa-p256'].keyPem), ['localhost']);
  } finally {
    admin.close();
  }
  for (const name of ['front-a', 'front-b']) {
    const c = linkPki.clients[name];
    fronts.push(
      await startServe([
        '--cert',
        pki.server['ecdsa-p256'].chainPath,
        '--keyd',
        `tls://127.0.0.1:${keyd.keyd.tlsAddress!.port}`,
        '--keyd-ca',
        linkPki.caPath,
        '--keyd-cert',
        c.certPath,
        '--keyd-key',
        c.keyPath,
        '--ticket-keys-keyd',
      ]),
    );
  }
});

after(async () => {
  await Promise.all(fronts.map((f) => f.stop()));
  await keyd?.keyd.close();
  await root?.cleanup();
});

async function signs(): Promise<number> {
  return (await readAudit(join(root.dir, 'audit.log'))).filter((l) => l.op === 'sign' && l.outcome === 'ok').length;
}

describe('a fleet of fronts with keyd-served ticket keys', { timeout: 120_000 }, () => {
  test("TLS 1.3: a ticket from front A resumes on front B, with no signature in keyd", async () => {
    const [a, b] = fronts;
    const sess = join(root.dir, 'a.sess');
    const first = await opensslClient(a.port, { servername: 'localhost', cafile: pki.ca.certPath, args: ['-tls1_3', '-sess_out', sess], waitFor: /Post-Handshake New Session Ticket arrived/, keepOpenMs: 3_000 });
    const s1 = parseOpensslOutput(first);
    assert.ok(s1.handshakeOk && !s1.reused, first.stdout + first.stderr);
    const afterFull = await signs();
    assert.ok(afterFull >= 1, 'the full handshake was signed in keyd');

    const second = await opensslClient(b.port, { servername: 'localhost', cafile: pki.ca.certPath, args: ['-tls1_3', '-sess_in', sess] });
    const s2 = parseOpensslOutput(second);
    assert.equal(s2.protocol, 'TLSv1.3', second.stdout + second.stderr);
    assert.ok(s2.reused, `front B did not resume front A's session:\n${second.stdout}`);
    assert.equal(await signs(), afterFull, 'the resumed handshake made no key-holder call');

    // The control: a front with ticket keys of its own (no --ticket-keys-keyd) cannot open
    // the ticket and falls back to a full handshake, signed in keyd.
    const c = linkPki.clients['front-a'];
    const loner = await startServe(['--cert', pki.server['ecdsa-p256'].chainPath, '--keyd', `tls://127.0.0.1:${keyd.keyd.tlsAddress!.port}`, '--keyd-ca', linkPki.caPath, '--keyd-cert', c.certPath, '--keyd-key', c.keyPath]);
    fronts.push(loner);
    const third = await opensslClient(loner.port, { servername: 'localhost', cafile: pki.ca.certPath, args: ['-tls1_3', '-sess_in', sess] });
    const s3 = parseOpensslOutput(third);
    assert.ok(s3.handshakeOk && !s3.reused, third.stdout + third.stderr);
    assert.equal(await signs(), afterFull + 1);
  });

  test('TLS 1.2: an RFC 5077 ticket from front A resumes on front B, with no signature in keyd', async () => {
    const [a, b] = fronts;
    const sess = join(root.dir, 'a12.sess');
    const first = await opensslClient(a.port, { servername: 'localhost', cafile: pki.ca.certPath, args: ['-tls1_2', '-sess_out', sess] });
    const s1 = parseOpensslOutput(first);
    assert.ok(s1.handshakeOk && !s1.reused && s1.protocol === 'TLSv1.2', first.stdout + first.stderr);
    const afterFull = await signs();
    const second = await opensslClient(b.port, { servername: 'localhost', cafile: pki.ca.certPath, args: ['-tls1_2', '-sess_in', sess] });
    const s2 = parseOpensslOutput(second);
    assert.ok(s2.reused && s2.protocol === 'TLSv1.2', `front B did not resume front A's TLS 1.2 session:\n${second.stdout}`);
    assert.equal(await signs(), afterFull, 'the resumed handshake made no key-holder call');
  });
});
