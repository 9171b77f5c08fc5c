// TLS 1.2 through the isolated key holders: the ServerKeyExchange signed, the RSA premaster
// decrypted and the PSK master secret computed by keyd (over mutual TLS) and by the forked
// key process, with openssl s_client -tls1_2 as the client.
import assert from 'node:assert/strict';
import { constants, createPrivateKey, publicEncrypt, randomBytes, X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Keyd } from '../../src/keyd/server.js';
import { keyIdOf } from '../../src/keys/keyId.js';
import type { CertificateKey, KeyOperations, PskOperations } from '../../src/keys/keyOperations.js';
import { startKeyProcess } from '../../src/keys/keyProcess.js';
import { connectKeydAdmin, connectRemoteKey, connectRemotePsk } from '../../src/keys/remoteKey.js';
import { makeKeydPki, startTestKeyd, tempDir, tlsClientOptions } from '../support/keydFixture.js';
import { describeRun, onlySession, startEchoServer, type EchoServer } from '../support/keywardServer.js';
import { opensslClient, parseOpensslOutput } from '../support/peers.js';
import { getPki, type PkiFixtures } from '../support/pki.js';

const TIMEOUT = 10_000;
const PSK = randomBytes(32);
const PSK_IDENTITY = 'keyd-psk-client';

let pki: PkiFixtures;
let keyd: Keyd;
let cleanupDir: () => Promise<void>;
const holders: { close?(): Promise<void> }[] = [];
const servers: Record<'keyd' | 'keyProcess', EchoServer> = {} as Record<'keyd' | 'keyProcess', EchoServer>;
const rsaKeys: Partial<Record<'keyd' | 'keyProcess', CertificateKey>> = {};

before(async () => {
  pki = await getPki();
  const t = await tempDir('tls12-keyd-');
  cleanupDir = t.cleanup;
  const kpki = await makeKeydPki(t.dir, ['front', 'admin']);
  keyd = (await startTestKeyd(t.dir, kpki)).keyd;
  const admin = await connectKeydAdmin(tlsClientOptions(kpki, 'admin', keyd.tlsAddress!));
  try {
    for (const k of ['ecdsa-p256', 'rsa-2048'] as const) await admin.putKey(createPrivateKey(pki.server[k].keyPem));
    await admin.putPsk(Buffer.from(PSK_IDENTITY), PSK);
  } finally {
    admin.close();
  }
  const remote = async (k: 'ecdsa-p256' | 'rsa-2048') =>
    connectRemoteKey({ ...tlsClientOptions(kpki, 'front', keyd.tlsAddress!), keyId: keyIdOf(new X509Certificate(pki.server[k].certPem).publicKey) });
  const keydKeys: Record<string, KeyOperations> = { 'ecdsa-p256': await remote('ecdsa-p256'), 'rsa-2048': await remote('rsa-2048') };
  const keydPsk: PskOperations = await connectRemotePsk(tlsClientOptions(kpki, 'front', keyd.tlsAddress!));
  holders.push(...Object.values(keydKeys), keydPsk);
  rsaKeys.keyd = keydKeys['rsa-2048'];
  servers.keyd = await startEchoServer({
    certificates: (['ecdsa-p256', 'rsa-2048'] as const).map((k) => ({ cert: pki.server[k].chainPem, key: keydKeys[k] })),
    rsaKeyExchange: true,
    psk: { holder: keydPsk },
  });
  const processKeys: Record<string, KeyOperations> = {};
  for (const k of ['ecdsa-p256', 'rsa-2048'] as const) {
    processKeys[k] = await startKeyProcess({ keyPath: pki.server[k].keyPath, expectedPublicKey: new X509Certificate(pki.server[k].certPem).publicKey });
    holders.push(processKeys[k]);
  }
  rsaKeys.keyProcess = processKeys['rsa-2048'];
  servers.keyProcess = await startEchoServer({
    certificates: (['ecdsa-p256', 'rsa-2048'] as const).map((k) => ({ cert: pki.server[k].chainPem, key: processKeys[k] })),
    rsaKeyExchange: true,
  });
});

after(async () => {
  for (const s of Object.values(servers)) await s.close();
  for (const h of holders) await h.close?.();
  await keyd?.close();
  await cleanupDir?.();
});

async function echo(server: EchoServer, args: string[], cipher: string): Promise<void> {
  const sent = `b12-${randomBytes(6).toString('hex')}`;
  const mark = server.mark();
  const run = await opensslClient(server.port, { args: ['-tls1_2', ...args, '-cipher', cipher], cafile: pki.ca.certPath, input: `${sent}\n`, waitFor: sent, timeoutMs: TIMEOUT });
  const why = describeRun(run);
  assert.equal(parseOpensslOutput(run).cipher, cipher, why);
  assert.ok(run.stdout.includes(sent), why);
  assert.equal(onlySession(server, mark).protocol, 'TLSv1.2');
}

for (const backend of ['keyd', 'keyProcess'] as const) {
  describe(`TLS 1.2 with the key in ${backend}`, () => {
    it('ECDHE_ECDSA (ServerKeyExchange signed by the holder)', () => echo(servers[backend], [], 'ECDHE-ECDSA-AES128-GCM-SHA256'));
    it('ECDHE_RSA (ServerKeyExchange signed by the holder)', () => echo(servers[backend], [], 'ECDHE-RSA-AES256-GCM-SHA384'));
    it('RSA key exchange (premaster decrypted by the holder)', () => echo(servers[backend], [], 'AES128-GCM-SHA256'));
    it('decryptPremaster answers 48 bytes, never an error, for bad padding, length and version', async () => {
      const key = rsaKeys[backend]!;
      const pub = key.publicKey;
      const ctx = { tlsVersion: 'TLSv1.2' as const };
      const signal = new AbortController().signal;
      const good = Buffer.concat([Buffer.of(3, 3), randomBytes(46)]);
      const wrongVersion = Buffer.concat([Buffer.of(3, 1), randomBytes(46)]);
      const enc = (m: Buffer) => publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_PADDING }, m);
      const raw = Buffer.alloc(256, 0x5a);
      raw[0] = 0;
      const bad = { 'bad padding': publicEncrypt({ key: pub, padding: constants.RSA_NO_PADDING }, raw), 'short premaster': enc(good.subarray(0, 47)), 'wrong version': enc(wrongVersion) };
      for (const [name, ct] of Object.entries(bad)) {
        const pm = await key.decryptPremaster!(ct, 0x0303, ctx, signal);
        assert.equal(pm.length, 48, name);
        assert.notDeepEqual(Buffer.from(pm).subarray(2), (name === 'wrong version' ? wrongVersion : good).subarray(2), name);
      }
      assert.deepEqual(Buffer.from(await key.decryptPremaster!(enc(good), 0x0303, ctx, signal)), good);
    });
  });
}

describe('TLS 1.2 PSK held by keyd', () => {
  it('PSK-AES128-GCM-SHA256', () => echo(servers.keyd, ['-psk', PSK.toString('hex'), '-psk_identity', PSK_IDENTITY], 'PSK-AES128-GCM-SHA256'));
  it('ECDHE-PSK-CHACHA20-POLY1305', () => echo(servers.keyd, ['-psk', PSK.toString('hex'), '-psk_identity', PSK_IDENTITY], 'ECDHE-PSK-CHACHA20-POLY1305'));
  it('an unknown identity fails at Finished (random master secret from keyd)', async () => {
    const mark = servers.keyd.mark();
    const run = await opensslClient(servers.keyd.port, { args: ['-tls1_2', '-psk', PSK.toString('hex'), '-psk_identity', 'nobody', '-cipher', 'PSK-AES128-GCM-SHA256'], input: 'x\n', timeoutMs: TIMEOUT });
    assert.match(run.stderr, /bad record mac|alert number 20/, describeRun(run));
    assert.equal(servers.keyd.since(mark).errors[0]?.alertSent, 20);
  });
});
