// AES-CCM (RFC 6655, RFC 7251, RFC 8446): the record protection itself against node:crypto
// computed independently, then real handshakes both ways with openssl and gnutls: the PSK
// CCM and CCM_8 suites (on by default with a PSK), the ECDHE_ECDSA CCM suites and
// TLS_AES_128_CCM(_8)_SHA256 (off unless configured; a default server refuses them).
import assert from 'node:assert/strict';
import { createDecipheriv, randomBytes, type CipherCCMTypes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { localPsk } from '../../src/keys/localPsk.js';
import { RecordAead } from '../../src/tls/crypto/aead.js';
import { CipherSuite, aeadKeyLength, type AeadName } from '../../src/tls/crypto/cipherSuites.js';
import { DEFAULT_CLIENT_PSK_SUITES } from '../../src/tls/engine/clientConfig.js';
import { gnutlsCli, opensslClient, parseGnutlsOutput, parseOpensslOutput } from '../support/peers.js';
import { getPki, type PkiFixtures } from '../support/pki.js';
import { certificate, describeRun, onlySession, receivedText, startEchoServer, token, waitUntil, type EchoServer } from '../support/keywardServer.js';
import { handshake, sServer, stopSServers } from '../client/clientHelpers.js';

const TIMEOUT = 10_000;
const PSK = randomBytes(32);
const IDENTITY = 'lwm2m-device';
const C = CipherSuite;

describe('AES-CCM record protection', () => {
  const CCM: AeadName[] = ['aes-128-ccm', 'aes-256-ccm', 'aes-128-ccm-8', 'aes-256-ccm-8'];
  const aad = Buffer.from('17030300000000000000000000', 'hex');
  for (const aead of CCM) {
    const tag = aead.endsWith('-8') ? 8 : 16;
    const cipher = aead.replace(/-8$/, '') as CipherCCMTypes;
    it(`${aead}, TLS 1.2: salt || explicit 8-byte sequence number, tag of ${tag}, as node:crypto computes it`, () => {
      const key = randomBytes(aeadKeyLength(aead));
      const salt = randomBytes(4);
      const a = new RecordAead(aead, key, salt, 'tls12');
      assert.equal(a.tagLength, tag);
      assert.equal(a.explicitNonceLength, 8);
      for (const [seq, pt] of [
        [0, Buffer.alloc(0)],
        [1, Buffer.from('x')],
        [0x1_0000_0001, randomBytes(16384)],
      ] as const) {
        const sealed = a.seal(seq, aad, [pt]);
        assert.equal(sealed.length, a.sealedLength(pt.length));
        const explicit = sealed.subarray(0, 8);
        assert.equal(explicit.readBigUInt64BE(), BigInt(seq));
        // RFC 6655 3: nonce = client_write_IV (4-byte salt) || nonce_explicit.
        const d = createDecipheriv(cipher, key, Buffer.concat([salt, explicit]), { authTagLength: tag });
        d.setAuthTag(sealed.subarray(sealed.length - tag));
        d.setAAD(aad, { plaintextLength: pt.length });
        const out = d.update(sealed.subarray(8, sealed.length - tag));
        d.final();
        assert.deepEqual(out, pt);
        assert.deepEqual(new RecordAead(aead, key, salt, 'tls12').open(seq, aad, sealed), pt);
      }
    });
    it(`${aead}, TLS 1.3 style: the XOR nonce, parts joined for CCM's single pass; any change fails`, () => {
      const key = randomBytes(aeadKeyLength(aead));
      const iv = randomBytes(12);
      const a = new RecordAead(aead, key, iv, 'tls13');
      const b = new RecordAead(aead, key, iv, 'tls13');
      const sealed = a.seal(7, aad, [Buffer.from('attack at dawn'), Buffer.of(23)]);
      assert.deepEqual(b.open(7, aad, sealed), Buffer.from('attack at dawn\x17'));
      for (let i = 0; i < sealed.length; i++) {
        const bad = Buffer.from(sealed);
        bad[i] ^= 0x80;
        assert.equal(b.open(7, aad, bad), null, `flip at ${i}`);
      }
      assert.equal(b.open(8, aad, sealed), null, 'another sequence number');
      assert.equal(b.open(7, Buffer.from(aad).fill(1, 12), sealed), null, 'another AAD');
      assert.equal(b.open(7, aad, sealed.subarray(0, tag - 1)), null, 'shorter than a tag');
    });
  }
});

let pki: PkiFixtures;
/** Default suites with a PSK holder: the PSK CCM suites are among them. */
let pskServer: EchoServer;
/** ECDSA P-256 with the ECDHE_ECDSA CCM suites and the TLS 1.3 CCM suites enabled. */
let ccmServer: EchoServer;
/** ECDSA P-256 with the default suites: no CCM but with a PSK. */
let defaultServer: EchoServer;

const ECDSA_CCM = [C.TLS_ECDHE_ECDSA_WITH_AES_128_CCM, C.TLS_ECDHE_ECDSA_WITH_AES_256_CCM, C.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, C.TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8];

before(async () => {
  pki = await getPki();
  pskServer = await startEchoServer({ certificates: [], psk: { holder: localPsk(new Map([[IDENTITY, PSK]])) } });
  ccmServer = await startEchoServer({
    certificates: [certificate(pki.server['ecdsa-p256'])],
    tls12CipherSuites: ECDSA_CCM,
    tls13CipherSuites: [C.TLS_AES_128_CCM_SHA256, C.TLS_AES_128_CCM_8_SHA256],
  });
  defaultServer = await startEchoServer({ certificates: [certificate(pki.server['ecdsa-p256'])] });
});

after(async () => {
  stopSServers();
  await pskServer?.close();
  await ccmServer?.close();
  await defaultServer?.close();
});

/** s_client with `args` must negotiate `cipher` in `protocol` and echo 20 KB (several records) back. */
async function opensslEcho(server: EchoServer, args: string[], protocol: string, cipher: string): Promise<void> {
  const sent = `${token('ccm')}${'.'.repeat(20_000)}${token('end')}`;
  const mark = server.mark();
  const run = await opensslClient(server.port, { args, input: `${sent}\n`, waitFor: sent.slice(-16), timeoutMs: TIMEOUT });
  const why = describeRun(run);
  const s = parseOpensslOutput(run);
  assert.equal(s.protocol, protocol, why);
  assert.equal(s.cipher, cipher, why);
  const session = onlySession(server, mark);
  await waitUntil(() => receivedText(session).includes(sent), 'the echo');
  assert.ok(run.stdout.includes(sent.slice(-16)), why);
}

describe('keyward server, openssl s_client', () => {
  for (const cipher of ['PSK-AES128-CCM8', 'PSK-AES128-CCM', 'PSK-AES256-CCM', 'PSK-AES256-CCM8']) {
    it(`${cipher} with the default suites of a PSK server`, async () => {
      await opensslEcho(pskServer, ['-tls1_2', '-psk', PSK.toString('hex'), '-psk_identity', IDENTITY, '-cipher', cipher], 'TLSv1.2', cipher);
    });
  }
  for (const cipher of ['ECDHE-ECDSA-AES128-CCM', 'ECDHE-ECDSA-AES256-CCM', 'ECDHE-ECDSA-AES128-CCM8', 'ECDHE-ECDSA-AES256-CCM8']) {
    it(`${cipher} when configured`, async () => {
      await opensslEcho(ccmServer, ['-tls1_2', '-cipher', cipher], 'TLSv1.2', cipher);
    });
  }
  for (const suite of ['TLS_AES_128_CCM_SHA256', 'TLS_AES_128_CCM_8_SHA256']) {
    it(`TLS 1.3 ${suite} when configured`, async () => {
      await opensslEcho(ccmServer, ['-tls1_3', '-ciphersuites', suite], 'TLSv1.3', suite);
    });
  }
  it('off by default: ECDHE-ECDSA-AES128-CCM and TLS_AES_128_CCM_SHA256 get handshake_failure', async () => {
    for (const args of [
      ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-CCM'],
      ['-tls1_3', '-ciphersuites', 'TLS_AES_128_CCM_SHA256'],
    ]) {
      const mark = defaultServer.mark();
      const run = await opensslClient(defaultServer.port, { args, input: 'x\n', timeoutMs: TIMEOUT });
      assert.equal(parseOpensslOutput(run).handshakeOk, false, describeRun(run));
      await waitUntil(() => defaultServer.since(mark).errors.length === 1, 'the refusal');
      assert.equal(defaultServer.since(mark).errors[0].alertSent, 40);
    }
  });
});

describe('keyward server, gnutls-cli', () => {
  it('PSK AES-128-CCM-8 (TLS 1.2)', async () => {
    const sent = token('gccm8');
    const run = await gnutlsCli(pskServer.port, {
      priority: 'NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+PSK:-CIPHER-ALL:+AES-128-CCM-8',
      args: ['--pskusername', IDENTITY, '--pskkey', PSK.toString('hex')],
      input: `${sent}\n`,
      waitFor: sent,
      timeoutMs: TIMEOUT,
    });
    const s = parseGnutlsOutput(run);
    assert.equal(s.cipher, 'AES-128-CCM-8', describeRun(run));
    assert.ok(run.stdout.includes(sent), describeRun(run));
  });
  it('ECDHE-ECDSA AES-256-CCM (TLS 1.2) and AES-128-CCM (TLS 1.3)', async () => {
    for (const [version, cipher] of [
      ['TLS1.2', 'AES-256-CCM'],
      ['TLS1.3', 'AES-128-CCM'],
    ]) {
      const sent = token('gccm');
      const run = await gnutlsCli(ccmServer.port, {
        cafile: pki.ca.certPath,
        servername: 'localhost',
        priority: `NORMAL:-VERS-ALL:+VERS-${version}:-CIPHER-ALL:+${cipher}`,
        input: `${sent}\n`,
        waitFor: sent,
        timeoutMs: TIMEOUT,
      });
      const s = parseGnutlsOutput(run);
      assert.equal(s.protocol, `TLSv${version.slice(3)}`, describeRun(run));
      assert.equal(s.cipher, cipher, describeRun(run));
      assert.ok(run.stdout.includes(sent), describeRun(run));
    }
  });
});

describe('keyward client, openssl s_server', () => {
  const pskClient = () => ({ holder: localPsk(new Map([[IDENTITY, PSK]])), identity: IDENTITY });
  const pskServerArgs = (cipher: string) => ['-nocert', '-psk', PSK.toString('hex'), '-psk_identity', IDENTITY, '-tls1_2', '-cipher', cipher];

  it('the default PSK client reaches a server that speaks only PSK-AES128-CCM8 (LwM2M)', async () => {
    assert.ok(DEFAULT_CLIENT_PSK_SUITES.includes(C.TLS_PSK_WITH_AES_128_CCM_8));
    const s = await sServer(pskServerArgs('PSK-AES128-CCM8'));
    const c = await handshake(s.port, pki.ca.certPem, { psk: pskClient() });
    assert.equal(c.getCipher()?.standardName, 'TLS_PSK_WITH_AES_128_CCM_8');
    await sendBig(c, s);
  });
  it('TLS_PSK_WITH_AES_256_CCM when asked for', async () => {
    const s = await sServer(pskServerArgs('PSK-AES256-CCM:PSK-AES128-GCM-SHA256'));
    const c = await handshake(s.port, pki.ca.certPem, { psk: pskClient(), cipherSuites: ['TLS_PSK_WITH_AES_256_CCM'] });
    assert.equal(c.getCipher()?.standardName, 'TLS_PSK_WITH_AES_256_CCM');
    await sendBig(c, s);
  });
  it('TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 and TLS 1.3 TLS_AES_128_CCM_SHA256', async () => {
    const cert = ['-cert', pki.server['ecdsa-p256'].chainPath, '-key', pki.server['ecdsa-p256'].keyPath];
    const s12 = await sServer([...cert, '-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-CCM8']);
    const c12 = await handshake(s12.port, pki.ca.certPem, { cipherSuites: ['TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8'] });
    assert.equal(c12.getCipher()?.standardName, 'TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8');
    await sendBig(c12, s12);
    const s13 = await sServer([...cert, '-tls1_3', '-ciphersuites', 'TLS_AES_128_CCM_SHA256']);
    const c13 = await handshake(s13.port, pki.ca.certPem, { cipherSuites: ['TLS_AES_128_CCM_SHA256'] });
    assert.equal(c13.getProtocol(), 'TLSv1.3');
    assert.equal(c13.getCipher()?.standardName, 'TLS_AES_128_CCM_SHA256');
    await sendBig(c13, s13);
  });
});

/** 20 KB (two records) to s_server, which prints them; then the connection is dropped. */
async function sendBig(c: Awaited<ReturnType<typeof handshake>>, s: Awaited<ReturnType<typeof sServer>>): Promise<void> {
  const last = token('last');
  c.write(`${'.'.repeat(20_000)}${last}\n`);
  await waitUntil(() => s.output().includes(last), `s_server to print the data:\n${s.output().slice(-400)}`);
  c.destroy();
}
