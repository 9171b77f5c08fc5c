// The PSK key process: a forked child alone reads the PSK file and answers only
// well-shaped PSK master secret requests, with the same results as the in-process holder,
// a random master secret or unknown_psk_identity for an unknown identity as configured,
// and refusals for everything else.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { KeyOperationError, UnknownPskIdentityError, type OperationContext, type PskMasterSecretRequest } from '../../src/keys/keyOperations.js';
import { KeyProcessPsk, startKeyProcess, startPskProcess } from '../../src/keys/keyProcess.js';
import { FrameDecoder, FrameType, decodeErrorCode, encodeFrame, encodePskMasterSecret, encodeSign } from '../../src/keys/keyProcessProtocol.js';
import { localPsk } from '../../src/keys/localPsk.js';
import { parsePskEntries } from '../../src/keys/pskFile.js';
import { tempDir } from '../support/keydFixture.js';

const CHILD_SCRIPT = fileURLToPath(new URL('../../src/keys/keyProcessChild.js', import.meta.url));
const CTX: OperationContext = { tlsVersion: 'TLSv1.2' };
const PSKS = new Map<string, Buffer>([
  ['alice', randomBytes(32)],
  ['bob:with:colons', randomBytes(16)],
]);
const signal = (): AbortSignal => new AbortController().signal;

let dir: { dir: string; cleanup: () => Promise<void> };
let pskFile: string;
let random: KeyProcessPsk;
let reject: KeyProcessPsk;

function request(identity: string, over: Partial<PskMasterSecretRequest> = {}): PskMasterSecretRequest {
  return { identity: Buffer.from(identity), otherSecret: null, hash: 'sha256', extended: false, seed: randomBytes(64), ...over };
}

before(async () => {
  dir = await tempDir('psk-process-');
  pskFile = join(dir.dir, 'psks.txt');
  const text = ['# identity:hexkey', '', ...[...PSKS].map(([id, k]) => `${id}:${k.toString('hex')}`)].join('\n') + '\n';
  await writeFile(pskFile, text, { mode: 0o600 });
  random = await startPskProcess({ pskPath: pskFile, startTimeoutMs: 10_000 });
  reject = await startPskProcess({ pskPath: pskFile, unknownIdentity: 'reject', startTimeoutMs: 10_000 });
});

after(async () => {
  await Promise.allSettled([random?.close(), reject?.close()]);
  await dir?.cleanup();
});

describe('PSK key process', { timeout: 30_000 }, () => {
  it('computes the same master secrets as the in-process holder (PSK, ECDHE_PSK, EMS, SHA-384)', async () => {
    const local = localPsk(PSKS);
    const cases: PskMasterSecretRequest[] = [
      request('alice'),
      request('bob:with:colons', { otherSecret: randomBytes(32) }),
      request('alice', { extended: true, seed: randomBytes(32) }),
      request('alice', { hash: 'sha384', extended: true, seed: randomBytes(48), otherSecret: randomBytes(48) }),
      request('bob:with:colons', { hash: 'sha384' }),
    ];
    for (const req of cases) {
      const got = await random.tls12MasterSecret(req, CTX, signal());
      assert.equal(got.length, 48);
      assert.deepEqual(Buffer.from(got), Buffer.from(await local.tls12MasterSecret(req, CTX, signal())));
    }
  });

  it('unknown identity: a fresh random master secret by default, unknown_psk_identity with reject', async () => {
    const req = request('mallory');
    const a = await random.tls12MasterSecret(req, CTX, signal());
    const b = await random.tls12MasterSecret(req, CTX, signal());
    assert.equal(a.length, 48);
    assert.notDeepEqual(Buffer.from(a), Buffer.from(b));
    await assert.rejects(reject.tls12MasterSecret(req, CTX, signal()), (e: Error) => e instanceof UnknownPskIdentityError && e.name === 'UnknownPskIdentityError');
    // A known identity still works in reject mode.
    assert.equal((await reject.tls12MasterSecret(request('alice'), CTX, signal())).length, 48);
  });

  it('refuses PSK requests of the wrong shape, known identity or not', async () => {
    const bad: Partial<PskMasterSecretRequest>[] = [
      { seed: randomBytes(63) },
      { seed: randomBytes(65) },
      { extended: true, seed: randomBytes(48) }, // sha256 session hash is 32 bytes
      { hash: 'sha384', extended: true, seed: randomBytes(32) },
      { otherSecret: new Uint8Array(0) },
    ];
    for (const over of bad) {
      for (const id of ['alice', 'mallory']) {
        await assert.rejects(random.tls12MasterSecret(request(id, over), CTX, signal()), (e: Error) => e instanceof KeyOperationError && e.code === 'bad-request', JSON.stringify({ id, keys: Object.keys(over) }));
      }
    }
    await assert.rejects(random.tls12MasterSecret(request('alice', { hash: 'md5' as 'sha256' }), CTX, signal()), /sha256 or sha384/);
    await assert.rejects(random.tls12MasterSecret(request('alice', { otherSecret: randomBytes(4096) }), CTX, signal()), /too long/);
  });

  it('refuses sign, decrypt, unknown and malformed frames sent straight down the channel', async () => {
    // Talk to a PSK child as a compromised front would: raw frames on its channel.
    const child = spawn(process.execPath, [CHILD_SCRIPT, '--psk', pskFile, 'random'], { stdio: ['ignore', 'ignore', 'inherit', 'pipe'], cwd: '/' });
    const ch = child.stdio[3] as Socket;
    try {
      const frames = new Map<number, { type: number; payload: Buffer }>();
      const decoder = new FrameDecoder();
      ch.on('data', (b: Buffer) => decoder.push(b, (f) => frames.set(f.id, { type: f.type, payload: Buffer.from(f.payload) })));
      const good = encodePskMasterSecret(0x7000_0001, request('alice'));
      const badFlags = Buffer.from(good);
      badFlags.writeUInt32BE(0x7000_0005, 5);
      badFlags[9] = 0x84;
      const truncated = Buffer.from(good.subarray(0, good.length - 10));
      truncated.writeUInt32BE(truncated.length - 4, 0);
      truncated.writeUInt32BE(0x7000_0006, 5);
      ch.write(
        Buffer.concat([
          good,
          encodeSign(0x7000_0002, 0x0403, 'tls12-server-key-exchange', randomBytes(100)),
          encodeFrame(FrameType.decrypt, 0x7000_0003, randomBytes(258)),
          encodeFrame(0x55 as FrameType, 0x7000_0004, randomBytes(8)),
          badFlags,
          truncated,
        ]),
      );
      const deadline = Date.now() + 5_000;
      while (frames.size < 7 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(frames.get(0)?.type, FrameType.ready);
      assert.equal(frames.get(0x7000_0001)?.type, FrameType.ok);
      assert.equal(frames.get(0x7000_0001)?.payload.length, 48);
      const codeOf = (id: number): string | undefined => {
        const f = frames.get(id);
        return f?.type === FrameType.error ? decodeErrorCode(f.payload[0]) : undefined;
      };
      assert.equal(codeOf(0x7000_0002), 'unsupported', 'sign');
      assert.equal(codeOf(0x7000_0003), 'unsupported', 'decrypt');
      assert.equal(codeOf(0x7000_0004), 'bad-request', 'unknown frame type');
      assert.equal(codeOf(0x7000_0005), 'bad-request', 'unknown flags');
      assert.equal(codeOf(0x7000_0006), 'bad-request', 'truncated');
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      ch.end();
      const t = setTimeout(() => child.kill('SIGKILL'), 2_000);
      await exited;
      clearTimeout(t);
    }
  });

  it('a key process holding a private key refuses PSK requests', async () => {
    const { getPki } = await import('../support/pki.js');
    const pki = await getPki();
    const key = await startKeyProcess({ keyPath: pki.server['ecdsa-p256'].keyPath });
    try {
      const host = key as unknown as KeyProcessPsk;
      await assert.rejects(KeyProcessPsk.prototype.tls12MasterSecret.call(host, request('alice'), CTX, signal()), (e: Error) => e instanceof KeyOperationError && e.code === 'unsupported');
    } finally {
      await key.close();
    }
  });

  it('an aborted request rejects with aborted', async () => {
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(random.tls12MasterSecret(request('alice'), CTX, ac.signal), (e: Error) => e instanceof KeyOperationError && e.code === 'aborted');
  });

  it('start fails with a clear message for a missing or malformed PSK file, naming no key', async () => {
    await assert.rejects(startPskProcess({ pskPath: join(dir.dir, 'nope.txt') }), /cannot read PSK file .*nope\.txt: ENOENT/);
    const secret = randomBytes(16).toString('hex');
    const bad = join(dir.dir, 'bad.txt');
    await writeFile(bad, `good:${secret}\nbroken ${secret}zz\n`);
    await assert.rejects(startPskProcess({ pskPath: bad }), (e: Error) => /bad\.txt line 2: expected identity:hexkey/.test(e.message) && !e.message.includes(secret));
    const odd = join(dir.dir, 'odd.txt');
    await writeFile(odd, `x:${secret}0\n`);
    await assert.rejects(startPskProcess({ pskPath: odd }), /odd\.txt line 1: the key must be an even number of hex digits/);
    const empty = join(dir.dir, 'empty.txt');
    await writeFile(empty, '# nothing\n');
    await assert.rejects(startPskProcess({ pskPath: empty }), /holds no PSK/);
  });

  it('parsePskEntries: identities up to the last colon, duplicates refused', () => {
    const m = parsePskEntries(Buffer.from('a:b:0102\r\nc:ff\n'), 'f');
    assert.deepEqual([...m.keys()], ['a:b', 'c']);
    assert.deepEqual(m.get('a:b'), { secret: Buffer.of(1, 2), hash: 'sha256' });
    assert.throws(() => parsePskEntries(Buffer.from('a:01\na:02\n'), 'f'), /f line 2: identity "a" appears twice/);
  });
});
