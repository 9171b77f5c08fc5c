/**
 * keyward's client against `openssl s_server`: client certificates whose key is a local
 * key or in the key process, accepted by `-Verify` in TLS 1.3 and 1.2;
 * no certificate refused with the server's alert; TLS 1.2 PSK and ECDHE_PSK with the PSK in
 * the key process or in-process against `-psk ... -nocert`.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startKeyProcess, startPskProcess, type KeyProcessKey, type KeyProcessPsk } from '../../src/keys/keyProcess.js';
import { localPsk } from '../../src/keys/localPsk.js';
import type { PskOperations } from '../../src/keys/keyOperations.js';
import { connect, type KeywardConnectOptions } from '../../src/node/clientSocket.js';
import { tempDir } from '../support/keydFixture.js';
import { handshake as connectTo, sendSeen, sServer, stopSServers } from './clientHelpers.js';
import { getPki, type PkiFixtures } from '../support/pki.js';

const PSK = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');
const IDENTITY = 'device-7';

let pki: PkiFixtures;
let keyProcess: KeyProcessKey;
let pskProcess: KeyProcessPsk;
let dir: { dir: string; cleanup: () => Promise<void> };

before(async () => {
  pki = await getPki();
  dir = await tempDir('client-openssl-');
  const pskPath = join(dir.dir, 'psks.txt');
  await writeFile(pskPath, `${IDENTITY}:${PSK.toString('hex')}\n`, { mode: 0o600 });
  keyProcess = await startKeyProcess({ keyPath: pki.client.keyPath, startTimeoutMs: 10_000 });
  pskProcess = await startPskProcess({ pskPath, startTimeoutMs: 10_000 });
});

after(async () => {
  stopSServers();
  await keyProcess?.close();
  await pskProcess?.close();
  await dir?.cleanup();
});


const handshake = (port: number, opts: Partial<KeywardConnectOptions>) => connectTo(port, pki.ca.certPem, opts);

const verifyArgs = () => ['-cert', pki.server['ecdsa-p256'].chainPath, '-key', pki.server['ecdsa-p256'].keyPath, '-Verify', '2', '-CAfile', pki.ca.certPath];

describe('client certificates accepted by openssl s_server -Verify', () => {
  for (const [holder, key] of [
    ['a local key', () => pki.client.keyPem],
    ['the key process', () => keyProcess],
  ] as const) {
    it(`TLS 1.3, ${holder}`, async () => {
      const s = await sServer([...verifyArgs(), '-tls1_3']);
      const c = await handshake(s.port, { cert: pki.client.chainPem, key: key() });
      assert.equal(c.getProtocol(), 'TLSv1.3');
      assert.equal(c.negotiated.clientSignatureScheme, 0x0403);
      await sendSeen(c, s, `hello from ${holder}`);
      assert.match(s.output(), /CN\s*=\s*keyward-test-client/, 's_server logged our certificate');
    });
    it(`TLS 1.2, ${holder}`, async () => {
      const s = await sServer([...verifyArgs(), '-tls1_2']);
      const c = await handshake(s.port, { cert: pki.client.chainPem, key: key() });
      assert.equal(c.getProtocol(), 'TLSv1.2');
      assert.equal(c.negotiated.clientSignatureScheme, 0x0403);
      await sendSeen(c, s, `hello over 1.2 from ${holder}`);
      assert.match(s.output(), /CN\s*=\s*keyward-test-client/);
    });
  }



  it('without a certificate: the server refuses with certificate_required (1.3)', async () => {
    const s = await sServer([...verifyArgs(), '-tls1_3']);
    const c = connect({ port: s.port, host: 'localhost', ca: pki.ca.certPem, handshakeTimeout: 5_000 });
    // TLS 1.3: the client finishes its side first; the server's alert ends the connection.
    const [err] = (await once(c, 'error')) as [Error & { code?: string }];
    assert.equal(err.code, 'ERR_TLS_ALERT_RECEIVED_CERTIFICATE_REQUIRED');
  });
});

describe('TLS 1.2 PSK client vs openssl s_server -psk -nocert', () => {
  const holders: Array<[string, () => PskOperations]> = [
    ['in process', () => localPsk(new Map([[IDENTITY, PSK]]))],
    ['in the key process', () => pskProcess],
  ];
  for (const [where, holder] of holders) {
    for (const [suite, opensslName] of [
      ['TLS_PSK_WITH_AES_128_GCM_SHA256', 'PSK-AES128-GCM-SHA256'],
      ['TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256', 'ECDHE-PSK-CHACHA20-POLY1305'],
    ]) {
      it(`${suite}, PSK ${where}`, async () => {
        const s = await sServer(['-nocert', '-psk', PSK.toString('hex'), '-psk_identity', IDENTITY, '-tls1_2', '-cipher', opensslName]);
        const c = await handshake(s.port, { psk: { holder: holder(), identity: IDENTITY }, cipherSuites: [suite] });
        assert.equal(c.getProtocol(), 'TLSv1.2');
        assert.equal(c.getCipher()?.standardName, suite);
        assert.equal(c.negotiated.extendedMasterSecret, true);
        await sendSeen(c, s, `psk ${where} ${suite}`);
      });
    }
  }

  it('a wrong PSK fails at Finished', async () => {
    const s = await sServer(['-nocert', '-psk', 'ff'.repeat(16), '-psk_identity', IDENTITY, '-tls1_2', '-cipher', 'PSK-AES128-GCM-SHA256']);
    const c = connect({ port: s.port, host: 'localhost', psk: { holder: localPsk(new Map([[IDENTITY, PSK]])), identity: IDENTITY }, handshakeTimeout: 5_000 });
    const [err] = (await once(c, 'error')) as [Error & { code?: string }];
    assert.match(String(err.code), /DECRYPT_ERROR|BAD_RECORD_MAC/);
  });
});
