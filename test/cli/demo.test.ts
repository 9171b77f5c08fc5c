/**
 * `keyward demo` (what `npm start` runs), started in a temporary folder: the first run makes
 * the PKI, keyd's sealed store and a site key inside keyd; the printed curl command works
 * as printed against the demo CA; headless Chromium renders the page with the negotiated
 * values (a screenshot is taken and checked); no file of the front's holds the site's
 * private key; the printed `audit verify` passes; a second run reuses everything; Ctrl-C
 * stops the proxy and keyd.
 */
import assert from 'node:assert/strict';
import { X509Certificate, createPublicKey } from 'node:crypto';
import { mkdtemp, readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import { CHROMIUM_FLAGS, CHROMIUM_PATH } from '../support/chromium.js';
import { groupWithHybridClient } from '../support/expectedGroup.js';
import { tempDir } from '../support/keydFixture.js';
import { KEYWARD_BIN, startKeyward, type KeywardChild } from '../support/keywardCli.js';
import { processAlive, runProcess } from '../support/processes.js';

const READY = /^keyward demo listening on https:\/\/localhost:(\d+)\/$/m;

let root: { dir: string; cleanup: () => Promise<void> };
let dataDir: string;
const running: KeywardChild[] = [];

function demo(): Promise<KeywardChild> {
  return startKeyward(['demo', '--dir', dataDir, '--listen', '127.0.0.1:0'], { ready: READY, timeoutMs: 60_000 }).then((d) => {
    running.push(d);
    return d;
  });
}

/** Runs a command the demo printed, word for word (`npx keyward` as bin/keyward.js). */
async function printed(d: KeywardChild, prefix: RegExp): Promise<string> {
  const line = new RegExp(`${prefix.source}(.+)$`, 'm').exec(d.stdout())?.[1];
  assert.ok(line, `no ${prefix.source} line printed:\n${d.stdout()}`);
  const words = line.trim().split(' ');
  const [cmd, ...args] = words[0] === 'npx' && words[1] === 'keyward' ? [process.execPath, KEYWARD_BIN, ...words.slice(2)] : words;
  const r = await runProcess(cmd, args, { timeoutMs: 15_000 });
  assert.equal(r.code, 0, `${line}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** Every regular file under `dir`. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

before(async () => {
  root = await tempDir('keyward-demo-');
  dataDir = join(root.dir, 'demo');
});

after(async () => {
  await Promise.all(running.map((d) => d.stop()));
  await root?.cleanup();
});

describe('keyward demo', { timeout: 180_000 }, () => {
  let keydPid = 0;

  test('first run: keyd, a site key made inside it, the proxy; curl as printed; Chromium renders the page; no front file holds the key; audit verify passes', async () => {
    const d = await demo();
    assert.match(d.stdout(), /^created the demo PKI in /m);
    assert.match(d.stdout(), /^generated the site key inside keyd \(key id [0-9a-f]{64}\)/m);
    keydPid = Number(/^private key: in keyd \(pid (\d+), tls:\/\/127\.0\.0\.1:\d+, mutual TLS, bound mode\)/m.exec(d.stdout())?.[1]);
    assert.ok(keydPid > 0 && keydPid !== d.pid, 'keyd runs in a process of its own');

    const page = await printed(d, /^try:\s+/);
    assert.match(page, /^protocol: TLSv1\.3$/m);
    assert.match(page, /^group: x25519$/m);
    assert.match(page, /^signature: ecdsa_secp256r1_sha256$/m);
    assert.match(page, /^sni: localhost$/m);
    assert.match(page, /^client: 127\.0\.0\.1:\d+$/m, 'the app learnt the client address from the PROXY v2 header');
    assert.match(page, /^private key: keyd \(pid \d+/m);
    assert.match(page, /^ {2}\d+ \S+ cn:demo-front sign ok [0-9a-f]{12}$/m, "keyd's audit tail shows the front's signature");

    // Headless Chromium: the page renders the negotiated values; the screenshot is a real image of it.
    const profile = await mkdtemp(join(root.dir, 'chromium-'));
    const browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM_PATH, headless: true, ignoreHTTPSErrors: true, args: [...CHROMIUM_FLAGS], viewport: { width: 390, height: 844 } });
    try {
      const tab = await browser.newPage();
      const res = await tab.goto(`https://localhost:${d.port}/`, { timeout: 30_000 });
      assert.equal(res?.status(), 200);
      const connection = tab.locator('#connection');
      const text = await connection.innerText();
      for (const v of ['TLSv1.3', 'TLS_AES_128_GCM_SHA256', groupWithHybridClient, 'ecdsa_secp256r1_sha256', 'http/1.1', 'localhost']) assert.ok(text.includes(v), `${v} on the page:\n${text}`);
      assert.match(await tab.locator('#key').innerText(), /keyd, pid \d+/);
      const shotPath = join(root.dir, 'demo.png');
      const shot = await tab.screenshot({ path: shotPath, fullPage: true });
      assert.ok(shot.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), 'a PNG');
      assert.equal(shot.readUInt32BE(16), 390, 'phone width, no horizontal overflow');
      assert.ok(shot.length > 30_000, `a rendered page, not a blank one (${shot.length} bytes)`);
      const box = await connection.screenshot();
      assert.ok(box.length > 5_000, 'the negotiated values are drawn');
      // The live numbers refresh from the proxy's metrics.
      await tab.waitForFunction(() => Number(document.getElementById('hs-ok')?.textContent) >= 2, undefined, { timeout: 10_000 });
    } finally {
      await browser.close();
    }

    // The front's files hold the site certificate, never its private key.
    const site = new X509Certificate(await readFile(join(dataDir, 'front', 'site-chain.pem')));
    const sitePublic = site.publicKey.export({ type: 'spki', format: 'der' });
    for (const file of await filesUnder(dataDir)) {
      if ((await stat(file)).size > 4 << 20) continue;
      const text = (await readFile(file)).toString('latin1');
      if (file.startsWith(join(dataDir, 'front'))) assert.doesNotMatch(text, /PRIVATE KEY/, `${file} holds a private key`);
      for (const m of text.matchAll(/-----BEGIN (?:[A-Z ]+ )?PRIVATE KEY-----[\s\S]+?-----END (?:[A-Z ]+ )?PRIVATE KEY-----/g)) {
        const pub = createPublicKey(m[0]).export({ type: 'spki', format: 'der' });
        assert.ok(!pub.equals(sitePublic), `${file} holds the site key in the clear`);
      }
    }

    const verified = await printed(d, /^audit:\s+/);
    assert.match(verified, /audit\.log: ok, \d+ line\(s\)/);

    const { code } = await d.stop();
    assert.equal(code, 0, 'SIGTERM stops the demo cleanly');
    assert.equal(processAlive(keydPid), false, 'keyd stopped with it');
  });

  test('second run reuses the PKI, the store and the site key; Ctrl-C stops everything', async () => {
    const keyId = (JSON.parse(await readFile(join(dataDir, 'front', 'site.json'), 'utf8')) as { keyId: string }).keyId;
    const d = await demo();
    assert.doesNotMatch(d.stdout(), /created the demo PKI|generated the site key/);
    const page = await printed(d, /^try:\s+/);
    assert.match(page, new RegExp(`^key id: ${keyId}$`, 'm'));
    const pid = Number(/^private key: in keyd \(pid (\d+)/m.exec(d.stdout())?.[1]);
    process.kill(d.pid, 'SIGINT');
    const exit = await d.exited;
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.equal(processAlive(pid), false, 'keyd stopped on Ctrl-C');
    assert.match(await printed(d, /^audit:\s+/), /: ok, /);
  });
});
