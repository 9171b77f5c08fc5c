/**
 * A key holder that returns a wrong signature is caught before it reaches a peer. keyd
 * serves a key (not one of its node:crypto store keys, so keyd checks its results as it
 * does a token's) whose `sign` returns a well-formed signature over the wrong bytes (what
 * a faulty HSM or an RSA-CRT fault produces); keyd must refuse to answer it, and
 * `keyward serve --keyd` must send internal_error, say why, and never put a
 * CertificateVerify on the wire. The server's flight is decrypted
 * with the client's handshake secret (node:tls keylog) to show what was really sent.
 */
import assert from 'node:assert/strict';
import { createDecipheriv, createPrivateKey } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import type { Keyd } from '../../src/keyd/server.js';
import { KeyOperationError, type KeyOperations, type OperationContext } from '../../src/keys/keyOperations.js';
import { LocalKey } from '../../src/keys/localKey.js';
import { hkdfExpandLabel } from '../../src/tls/crypto/hkdf.js';
import type { SignatureScheme } from '../../src/tls/crypto/signatureSchemes.js';
import { readAudit, startTestKeyd, tempDir } from '../support/keydFixture.js';
import { startServe, tlsHandshake, type KeywardChild } from '../support/keywardCli.js';
import { ContentType, startRecordProxy, waitUntil, type WireRecord } from '../support/keywardServer.js';
import { opensslClient } from '../support/peers.js';
import { getPki, type PkiFixtures } from '../support/pki.js';

/** Signs, but the bytes it signs are not the ones it was given: a valid-looking, wrong signature. */
class WrongSignatureKey implements KeyOperations {
  readonly publicKey;
  readonly schemes;
  readonly keyId;
  signs = 0;
  constructor(private readonly inner: LocalKey) {
    this.publicKey = inner.publicKey;
    this.schemes = inner.schemes;
    this.keyId = inner.keyId;
  }
  async sign(scheme: SignatureScheme, message: Uint8Array, ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array> {
    if (signal.aborted) throw new KeyOperationError('aborted', 'aborted');
    this.signs++;
    const other = Buffer.from(message);
    other[other.length - 1] ^= 0x01;
    return this.inner.sign(scheme, other, ctx, signal);
  }
}

let root: { dir: string; cleanup: () => Promise<void> };
let pki: PkiFixtures;
let keyd: Keyd;
let auditFile: string;
let faulty: WrongSignatureKey;
let front: KeywardChild;

before(async () => {
  root = await tempDir('keyward-wrongsig-');
  pki = await getPki();
  faulty = new WrongSignatureKey(new LocalKey(createPrivateKey(pki.server['ecdsa-p256'].keyPem)));
  // A sound P-384 key next to it: the control that shows the flight decryption works.
  const sound = new LocalKey(createPrivateKey(pki.server['ecdsa-p384'].keyPem));
  const started = await startTestKeyd(
    root.dir,
    undefined,
    { listen: { unix: join(root.dir, 'keyd.sock') } },
    { keys: [{ ops: faulty, serverNames: ['localhost'] }, { ops: sound, serverNames: ['localhost'] }] },
  );
  keyd = started.keyd;
  auditFile = started.config.audit.file;
  front = await startServe(['--cert', pki.server['ecdsa-p256'].chainPath, '--cert', pki.server['ecdsa-p384'].chainPath, '--keyd', `unix:${keyd.unixPath}`]);
});

after(async () => {
  await front?.stop();
  await keyd?.close();
  await root?.cleanup();
});

const INTERNAL_ERROR = 80;
const CERTIFICATE_VERIFY = 15;
const FINISHED = 20;

/** What the server sent in one connection, decrypted with the handshake traffic secret. */
interface ServerFlight {
  handshakeTypes: number[];
  alerts: number[];
}

function decryptServerFlight(records: WireRecord[], secretHex: string): ServerFlight {
  const secret = Buffer.from(secretHex, 'hex');
  const key = hkdfExpandLabel('sha256', secret, 'key', new Uint8Array(0), 16);
  const iv = hkdfExpandLabel('sha256', secret, 'iv', new Uint8Array(0), 12);
  const flight: ServerFlight = { handshakeTypes: [], alerts: [] };
  let handshakeBytes = Buffer.alloc(0);
  let seq = 0;
  for (const r of records) {
    // After its Finished the server switches to application traffic keys: stop there.
    if (flight.handshakeTypes.includes(FINISHED)) break;
    if (r.type === ContentType.alert) flight.alerts.push(r.fragment[1]);
    if (r.type !== ContentType.application_data) continue;
    const nonce = Buffer.from(iv);
    for (let i = 0; i < 8; i++) nonce[11 - i] ^= Number((BigInt(seq) >> BigInt(8 * i)) & 0xffn);
    seq++;
    const d = createDecipheriv('aes-128-gcm', key, nonce);
    d.setAAD(Buffer.from([r.type, r.version >> 8, r.version & 0xff, r.length >> 8, r.length & 0xff]));
    d.setAuthTag(r.fragment.subarray(r.fragment.length - 16));
    const inner = Buffer.concat([d.update(r.fragment.subarray(0, r.fragment.length - 16)), d.final()]);
    let end = inner.length - 1;
    while (end >= 0 && inner[end] === 0) end--;
    const type = inner[end];
    const content = inner.subarray(0, end);
    if (type === ContentType.alert) flight.alerts.push(content[1]);
    if (type === ContentType.handshake) {
      handshakeBytes = Buffer.concat([handshakeBytes, content]);
      // Whole messages only; a message split over records waits for its rest.
      while (handshakeBytes.length >= 4 && handshakeBytes.length >= 4 + handshakeBytes.readUIntBE(1, 3)) {
        flight.handshakeTypes.push(handshakeBytes[0]);
        handshakeBytes = handshakeBytes.subarray(4 + handshakeBytes.readUIntBE(1, 3));
      }
    }
  }
  return flight;
}

describe('a key holder returning a wrong signature', { timeout: 60_000 }, () => {
  /** One node:tls handshake through a recording proxy, limited to `sigalgs`; the server flight decrypted. */
  async function captured(sigalgs: string): Promise<{ connected: boolean; code?: string; flight: ServerFlight }> {
    const proxy = await startRecordProxy(front.port);
    try {
      const keylog: string[] = [];
      const result = await new Promise<{ code?: string; connected: boolean }>((resolve) => {
        const socket = tls.connect({ host: '127.0.0.1', port: proxy.port, servername: 'localhost', ca: pki.ca.certPem, ciphers: 'TLS_AES_128_GCM_SHA256', sigalgs, minVersion: 'TLSv1.3' });
        const timer = setTimeout(() => socket.destroy(), 10_000);
        socket.on('keylog', (line: Buffer) => keylog.push(line.toString('latin1')));
        socket.once('secureConnect', () => {
          clearTimeout(timer);
          socket.end();
          resolve({ connected: true });
        });
        socket.once('error', (e: NodeJS.ErrnoException) => {
          clearTimeout(timer);
          resolve({ code: e.code, connected: false });
        });
      });
      await waitUntil(() => proxy.connections[0]?.closed === true, 'proxied connection closed');
      const secretLine = keylog.find((l) => l.startsWith('SERVER_HANDSHAKE_TRAFFIC_SECRET '));
      assert.ok(secretLine, `no server handshake secret in the keylog: ${keylog.join(' | ')}`);
      return { ...result, flight: decryptServerFlight(proxy.connections[0].serverRecords(), secretLine.trim().split(' ')[2]) };
    } finally {
      await proxy.close();
    }
  }

  test('control: with the sound key, the decrypted flight shows CertificateVerify and Finished', async () => {
    const r = await captured('ecdsa_secp384r1_sha384');
    assert.equal(r.connected, true, r.code);
    assert.deepEqual(r.flight.handshakeTypes, [8, 11, CERTIFICATE_VERIFY, FINISHED]);
  });

  test('node:tls gets internal_error; the decrypted server flight holds no CertificateVerify and no Finished', async () => {
    const signsBefore = faulty.signs;
    const r = await captured('ecdsa_secp256r1_sha256');
    assert.equal(r.connected, false, 'the handshake must not complete');
    assert.equal(r.code, 'ERR_SSL_TLSV1_ALERT_INTERNAL_ERROR', 'the client received internal_error (it did not find a bad signature itself)');
    assert.equal(faulty.signs, signsBefore + 1, 'keyd signed once: the bad signature reached the front');
    assert.ok(!r.flight.handshakeTypes.includes(CERTIFICATE_VERIFY), `a CertificateVerify was sent: ${r.flight.handshakeTypes.join(',')}`);
    assert.ok(!r.flight.handshakeTypes.includes(FINISHED), 'a server Finished was sent');
    assert.deepEqual(r.flight.alerts, [INTERNAL_ERROR], 'exactly one alert, internal_error');
  });

  test('openssl s_client gets the alert too; the front logs why and keeps serving', async () => {
    const o = await opensslClient(front.port, { servername: 'localhost', cafile: pki.ca.certPath, args: ['-sigalgs', 'ecdsa_secp256r1_sha256'] });
    // s_client prints a cipher once ServerHello is in, even when the handshake then fails:
    // the alert and the missing certificate are what tell.
    assert.match(`${o.stdout}\n${o.stderr}`, /tlsv1 alert internal error/);
    assert.match(o.stdout, /no peer certificate available/);
    assert.match(front.stderr(), /does not verify/);
    assert.ok(front.alive(), 'the front is still running');
    // Still answering: every new handshake is refused the same way, none hangs.
    const again = await tlsHandshake(front.port, { ca: pki.ca.certPem, sigalgs: 'ecdsa_secp256r1_sha256', timeoutMs: 5_000 });
    assert.equal(again.errorCode, 'ERR_SSL_TLSV1_ALERT_INTERNAL_ERROR');
  });

  test('keyd caught them: each signature audited as failed, none answered', async () => {
    const lines = await readAudit(auditFile);
    const signs = lines.filter((l) => l.op === 'sign' && l.keyId === faulty.keyId);
    assert.ok(signs.length >= 2, `sign lines: ${signs.length}`);
    assert.ok(signs.every((l) => l.outcome !== 'ok' && l.purpose === 'tls13-server-certificate-verify'), JSON.stringify(signs.map((l) => l.outcome)));
  });
});
