// keyward serve's PSK options: an unknown identity gets a random master secret by default
// (the handshake fails like a wrong PSK) and unknown_psk_identity with --psk-unknown reject,
// through the key process; bad combinations of --psk-* options are clear usage errors.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../support/keydFixture.js';
import { runKeyward, startServe, type KeywardChild } from '../support/keywardCli.js';
import { opensslClient } from '../support/peers.js';

const PSK = randomBytes(24);
let root: { dir: string; cleanup: () => Promise<void> };
let pskFile: string;
const servers: KeywardChild[] = [];

before(async () => {
  root = await tempDir('tls12-psk-serve-');
  pskFile = join(root.dir, 'psks.txt');
  await writeFile(pskFile, `known:${PSK.toString('hex')}\n`, { mode: 0o600 });
});

after(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  await root?.cleanup();
});

function psk(port: number, identity: string, key = PSK): ReturnType<typeof opensslClient> {
  return opensslClient(port, { args: ['-tls1_2', '-psk', key.toString('hex'), '-psk_identity', identity, '-cipher', 'PSK-AES128-GCM-SHA256'], timeoutMs: 10_000 });
}

describe('keyward serve PSK options', { timeout: 90_000 }, () => {
  it('default: an unknown identity ends like a wrong PSK (bad_record_mac), a known one succeeds', async () => {
    const s = await startServe(['--psk-process', '--psk-file', pskFile]);
    servers.push(s);
    const ok = await psk(s.port, 'known');
    assert.match(ok.stdout, /Cipher is PSK-AES128-GCM-SHA256/);
    assert.doesNotMatch(ok.stdout + ok.stderr, /alert/);
    const unknown = await psk(s.port, 'stranger');
    const wrongKey = await psk(s.port, 'known', randomBytes(24));
    const alertOf = (r: { stdout: string; stderr: string }): string | undefined => /alert ([a-z ]+?)(?::|$)/m.exec(r.stdout + r.stderr)?.[1];
    assert.equal(alertOf(unknown), 'bad record mac', unknown.stderr);
    assert.equal(alertOf(unknown), alertOf(wrongKey));
  });

  it('--psk-unknown reject: unknown_psk_identity; --psk-hint accepted', async () => {
    const s = await startServe(['--psk-process', '--psk-file', pskFile, '--psk-unknown', 'reject', '--psk-hint', 'keyward-test']);
    servers.push(s);
    const unknown = await psk(s.port, 'stranger');
    assert.match(unknown.stdout + unknown.stderr, /alert unknown psk identity/, unknown.stderr);
    assert.match((await psk(s.port, 'known')).stdout, /Cipher is PSK-AES128-GCM-SHA256/);
  });

  it('usage errors name the problem', async () => {
    const cases: [string[], RegExp][] = [
      [['--psk-process'], /--psk-process needs --psk-file/],
      [['--psk-keyd'], /--psk-keyd needs --keyd/],
      [['--psk-keyd', '--psk-file', pskFile], /alternatives/],
      [['--psk-hint', 'x'], /need a PSK source/],
      [[], /at least one --cert is required \(or a PSK source/],
      [['--psk-process', '--psk-file', join(root.dir, 'missing.txt')], /cannot read PSK file .*missing\.txt: ENOENT/],
      [['--psk-file', join(root.dir, 'missing.txt')], /cannot read PSK file .*missing\.txt: ENOENT/],
    ];
    for (const [args, re] of cases) {
      const r = await runKeyward(['serve', '--listen', '127.0.0.1:0', ...args], { timeoutMs: 15_000 });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, re, args.join(' '));
      assert.ok(!r.stderr.includes(PSK.toString('hex')));
    }
  });
});
