// Headless Chromium loads pages from keyward servers, trusting the test CA by its key (no
// certificate error ignored). Chromium sends an X25519MLKEM768 share first: a server
// preferring the hybrid negotiates it on every Node; a server with the default groups picks
// what the README says for this Node. Chromium's net log (every handshake message, and what
// each connection negotiated) confirms it from the client's side and shows its ClientHello
// offering brotli certificate compression, and the server flight it received: a brotli
// CompressedCertificate (RFC 8879) standing for the chain's Certificate.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext } from 'playwright-core';
import { NamedGroup, groupName } from '../../src/tls/crypto/groups.js';
import { SignatureScheme } from '../../src/tls/crypto/signatureSchemes.js';
import { parseClientHello } from '../../src/tls/wire/clientHello.js';
import { CertificateCompressionAlgorithm } from '../../src/tls/wire/compressedCertificate.js';
import { HandshakeType } from '../../src/tls/wire/constants.js';
import { encodeCertificate13, parseCompressedCertificate } from '../../src/tls/wire/certificate13.js';
import { parseHandshakeMessage } from '../../src/tls/wire/framing.js';
import { parsePemChain } from '../../src/tls/engine/certificates.js';
import { launchChromium, readNetLog, tlsConnections, type ChromiumTlsConnection } from '../support/chromium.js';
import { groupWithHybridClient } from '../support/expectedGroup.js';
import { tempDir } from '../support/keydFixture.js';
import { certificate } from '../support/keywardServer.js';
import { startPageServer, type PageServer } from '../support/pageServer.js';
import { getPki, type PkiFixtures } from '../support/pki.js';

let pki: PkiFixtures;
let root: { dir: string; cleanup: () => Promise<void> };
let browser: BrowserContext | undefined;
let netLogPath: string;
/** Ports of the servers each test loaded, to find their connections in the net log. */
const ports: { hybridFirst?: number; defaults?: number } = {};

before(async () => {
  pki = await getPki();
  root = await tempDir('keyward-chromium-');
  netLogPath = join(root.dir, 'netlog.json');
  browser = await launchChromium({ profileDir: join(root.dir, 'profile'), trust: [pki.ca.certPem], netLogPath });
});

after(async () => {
  await browser?.close();
  await root?.cleanup();
});

/** Loads the page in a new tab and returns what it says about its own connection (server side). */
async function load(url: string): Promise<string> {
  assert.ok(browser, 'Chromium started');
  const tab = await browser.newPage();
  try {
    const res = await tab.goto(url, { timeout: 10_000 });
    assert.equal(res?.status(), 200);
    return await tab.locator('#tls').innerText({ timeout: 5_000 });
  } finally {
    await tab.close();
  }
}

/** Every connection the server established, all with `group`. */
function assertAllSessions(server: PageServer, group: number): void {
  assert.ok(server.sessions.length >= 1, `no connection established; handshake errors: ${server.errors.join('; ') || 'none'}`);
  for (const s of server.sessions) {
    assert.equal(s.version, 'TLSv1.3');
    assert.equal(groupName(s.group ?? 0), groupName(group));
  }
  assert.deepEqual(server.errors, [], 'no failed handshake: the CA is trusted');
}

/** The handshake messages received up to and including the server's Finished. */
function serverFlight(c: ChromiumTlsConnection): number[] {
  const types = c.received.map((m) => m.type);
  return types.slice(0, types.indexOf(HandshakeType.finished) + 1);
}

describe('Chromium (headless)', () => {
  it('sends X25519MLKEM768 first and negotiates it with a server preferring it', async () => {
    const server = await startPageServer({ certificates: [certificate(pki.server['ecdsa-p256'])], groups: [NamedGroup.X25519MLKEM768, NamedGroup.x25519] });
    ports.hybridFirst = server.port;
    try {
      assert.equal(await load(server.url), 'TLSv1.3 X25519MLKEM768');
      assertAllSessions(server, NamedGroup.X25519MLKEM768);
      // RFC 8879: Chromium offers brotli, and the server says it sent its Certificate so (a resumed connection sends none).
      for (const s of server.sessions.filter((x) => !x.resumed)) assert.equal(s.certificateCompression, CertificateCompressionAlgorithm.brotli);
      assert.ok(server.sessions.some((x) => x.certificateCompression === CertificateCompressionAlgorithm.brotli));
    } finally {
      await server.close();
    }
  });

  it(`with the default groups the server picks ${groupWithHybridClient} on this Node (README: groups)`, async () => {
    const server = await startPageServer({ certificates: [certificate(pki.server['ecdsa-p256'])] });
    ports.defaults = server.port;
    try {
      assert.equal(await load(server.url), `TLSv1.3 ${groupWithHybridClient}`);
      assertAllSessions(server, groupWithHybridClient === 'X25519MLKEM768' ? NamedGroup.X25519MLKEM768 : NamedGroup.x25519);
    } finally {
      await server.close();
    }
  });

  it("its net log agrees: the groups, its ClientHello (hybrid share first, brotli compression offered), the server's flight", async () => {
    assert.ok(browser && ports.hybridFirst && ports.defaults, 'the page tests ran');
    await browser.close();
    browser = undefined;
    const connections = tlsConnections(await readNetLog(netLogPath));
    const to = (port: number) => connections.filter((c) => c.remoteAddress === `127.0.0.1:${port}`);

    const hybrid = to(ports.hybridFirst);
    assert.ok(hybrid.length >= 1, `connections in the net log: ${connections.map((c) => c.remoteAddress).join(', ')}`);
    for (const c of hybrid) {
      assert.equal(c.netError, undefined, 'no handshake failed');
      assert.equal(c.result?.version, 'TLS 1.3');
      assert.equal(groupName(c.result.keyExchangeGroup), 'X25519MLKEM768');
    }
    // Chromium may resume a later connection with the server's ticket: no Certificate then.
    const full = hybrid.filter((c) => c.result?.isResumed === false);
    assert.ok(full.length >= 1, 'at least one full handshake');
    for (const c of full) {
      assert.equal(c.result!.peerSignatureAlgorithm, SignatureScheme.ecdsa_secp256r1_sha256);
      const hello = c.sent.find((m) => m.type === HandshakeType.client_hello);
      assert.ok(hello, 'the ClientHello is in the net log');
      const ch = parseClientHello(hello.bytes.subarray(4));
      // Chromium puts a GREASE share first; the first real one is the hybrid.
      const shares = ch.keyShares?.map((s) => s.group).filter((g) => (g & 0x0f0f) !== 0x0a0a);
      assert.deepEqual(shares, [NamedGroup.X25519MLKEM768, NamedGroup.x25519]);
      assert.deepEqual(ch.compressCertificate, [CertificateCompressionAlgorithm.brotli]);
      assert.deepEqual(serverFlight(c), [HandshakeType.server_hello, HandshakeType.encrypted_extensions, HandshakeType.compressed_certificate, HandshakeType.certificate_verify, HandshakeType.finished]);
      const compressed = parseCompressedCertificate(c.received.find((m) => m.type === HandshakeType.compressed_certificate)!.bytes.subarray(4));
      assert.equal(compressed.algorithm, CertificateCompressionAlgorithm.brotli);
      const chain = parsePemChain(pki.server['ecdsa-p256'].chainPem).map((x) => new Uint8Array(x.raw));
      assert.equal(compressed.uncompressedLength, parseHandshakeMessage(encodeCertificate13(new Uint8Array(0), chain)).body.length);
    }

    const defaults = to(ports.defaults);
    assert.ok(defaults.length >= 1);
    for (const c of defaults) assert.equal(groupName(c.result?.keyExchangeGroup ?? 0), groupWithHybridClient);
  });
});
