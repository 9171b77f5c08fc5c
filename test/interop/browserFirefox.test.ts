// Headless Firefox ESR (153) loads pages from keyward servers, over Marionette, trusting the
// test CA through its profile's NSS database (no certificate errors are ignored). Firefox
// sends an X25519MLKEM768 share first: a server preferring the hybrid negotiates it, seen on
// both sides (the server's record, Firefox's own security info); a server with the default
// groups picks what the README says for this Node (the hybrid on Node 24.7+, x25519 before).
// Its ClientHello, captured through a proxy, also offers certificate compression and
// delegated credentials; the server compresses its Certificate with brotli. Firefox accepts
// a delegated credential (RFC 9345) from a server whose certificate key is in keyd or in a
// key process, reports it, and keyd signs nothing for those handshakes.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NamedGroup, groupName } from '../../src/tls/crypto/groups.js';
import { SignatureScheme, schemeName } from '../../src/tls/crypto/signatureSchemes.js';
import { parseClientHello } from '../../src/tls/wire/clientHello.js';
import { CertificateCompressionAlgorithm } from '../../src/tls/wire/compressedCertificate.js';
import { HandshakeType } from '../../src/tls/wire/constants.js';
import { startDcFronts, type DcFronts } from '../support/dcFronts.js';
import { groupWithHybridClient } from '../support/expectedGroup.js';
import { Firefox } from '../support/firefox.js';
import { tempDir } from '../support/keydFixture.js';
import { certificate, plaintextHandshakes, startRecordProxy } from '../support/keywardServer.js';
import { startPageServer, type PageServer } from '../support/pageServer.js';
import { getPki, type PkiFixtures } from '../support/pki.js';

/** Firefox's (NSS's) names for the groups it reports in its security info. */
const FIREFOX_GROUP: Record<string, string> = { X25519MLKEM768: 'mlkem768x25519', x25519: 'x25519' };

let pki: PkiFixtures;
let root: { dir: string; cleanup: () => Promise<void> };
let firefox: Firefox | undefined;

before(async () => {
  root = await tempDir('keyward-firefox-');
  // Firefox starts while the test PKI is made; the CA is trusted once both are ready.
  const started = Firefox.launch({ profileDir: root.dir }).then(async (ff) => {
    firefox = ff;
    return ff.newSession();
  });
  [pki] = await Promise.all([getPki(), started]);
  assert.match((await started).browserVersion, /^\d+\./);
  await browser().trustCa(pki.ca.certPem);
});

after(async () => {
  await firefox?.close();
  await root?.cleanup();
});

function browser(): Firefox {
  assert.ok(firefox, 'Firefox started');
  return firefox;
}

/** Loads the page and returns what it says about its own connection (server side). */
async function load(url: string): Promise<string> {
  await browser().navigate(url);
  return browser().executeScript<string>('return document.getElementById("tls").textContent');
}

/** The connections that were not resumed: at least one. */
function fullHandshakes(server: PageServer): PageServer['sessions'] {
  const full = server.sessions.filter((s) => !s.resumed);
  assert.ok(full.length >= 1, `no full handshake; handshake errors: ${server.errors.join('; ') || 'none'}`);
  return full;
}

/** Every connection the server established, all with `group`. */
function assertAllSessions(server: PageServer, group: number): void {
  assert.ok(server.sessions.length >= 1, `no connection established; handshake errors: ${server.errors.join('; ') || 'none'}`);
  for (const s of server.sessions) {
    assert.equal(s.version, 'TLSv1.3');
    assert.equal(groupName(s.group ?? 0), groupName(group));
  }
  assert.deepEqual(server.errors, []);
}

describe('Firefox ESR (headless, Marionette)', () => {
  it('sends X25519MLKEM768 first and negotiates it with a server preferring it; offers compression and DCs', async () => {
    const server = await startPageServer({ certificates: [certificate(pki.server['ecdsa-p256'])], groups: [NamedGroup.X25519MLKEM768, NamedGroup.x25519] });
    const proxy = await startRecordProxy(server.port);
    try {
      assert.equal(await load(`https://localhost:${proxy.port}/`), 'TLSv1.3 X25519MLKEM768');
      assertAllSessions(server, NamedGroup.X25519MLKEM768);
      // Firefox may open a second connection that resumes the first (no certificate then).
      for (const session of fullHandshakes(server)) assert.equal(session.certificateCompression, CertificateCompressionAlgorithm.brotli);

      const info = await browser().securityInfo();
      assert.deepEqual(info, {
        protocolVersion: 4,
        cipherName: 'TLS_AES_128_GCM_SHA256',
        keaGroupName: 'mlkem768x25519',
        signatureSchemeName: 'ECDSA-P256-SHA256',
        isDelegatedCredential: false,
        serverCertSubject: 'CN=localhost',
      });

      const hellos = proxy.connections.flatMap((c) => plaintextHandshakes(c.clientRecords()).filter((m) => m.type === HandshakeType.client_hello));
      assert.ok(hellos.length >= 1, 'a ClientHello went through the proxy');
      const ch = parseClientHello(hellos[0].body);
      assert.deepEqual(
        ch.keyShares?.map((s) => groupName(s.group)),
        ['X25519MLKEM768', 'x25519', 'secp256r1'],
        'the hybrid share first',
      );
      assert.deepEqual(ch.compressCertificate, [CertificateCompressionAlgorithm.zlib, CertificateCompressionAlgorithm.brotli, CertificateCompressionAlgorithm.zstd]);
      assert.ok(ch.delegatedCredentialSchemes?.includes(SignatureScheme.ecdsa_secp256r1_sha256), `DC schemes: ${String(ch.delegatedCredentialSchemes?.map(schemeName))}`);
    } finally {
      await proxy.close();
      await server.close();
    }
  });

  it(`with the default groups the server picks ${groupWithHybridClient} on this Node (README: groups)`, async () => {
    const server = await startPageServer({ certificates: [certificate(pki.server['ecdsa-p256'])] });
    try {
      assert.equal(await load(server.url), `TLSv1.3 ${groupWithHybridClient}`);
      const expected = groupWithHybridClient === 'X25519MLKEM768' ? NamedGroup.X25519MLKEM768 : NamedGroup.x25519;
      assertAllSessions(server, expected);
      assert.equal((await browser().securityInfo())?.keaGroupName, FIREFOX_GROUP[groupWithHybridClient]);
    } finally {
      await server.close();
    }
  });

  describe('delegated credentials', () => {
    let fronts: DcFronts;
    before(async () => {
      fronts = await startDcFronts();
    });
    after(async () => {
      await fronts?.close();
    });

    for (const name of ['keyd', 'key process']) {
      it(`accepts a delegated credential and reports it, the certificate key in ${name}; keyd signs nothing for it`, async () => {
        const holder = name === 'keyd' ? fronts.keyd : fronts.keyProcess;
        const before = await fronts.audit();
        const server = await startPageServer({ certificates: [holder.certificate] });
        try {
          assert.match(await load(server.url), /^TLSv1\.3 /);
          const info = await browser().securityInfo();
          assert.equal(info?.isDelegatedCredential, true, JSON.stringify(info));
          assert.equal(info?.signatureSchemeName, 'ECDSA-P256-SHA256');
          for (const session of fullHandshakes(server)) assert.equal(session.delegatedCredential, true);
          assert.deepEqual(server.errors, []);
        } finally {
          await server.close();
        }
        assert.deepEqual(await fronts.audit(), { ...before, delegatedCredential: 1 }, 'one credential signed at start, no sign since');
      });
    }
  });
});
