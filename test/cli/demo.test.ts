/**
 * `keyward demo` (what `npm start` runs): the first run creates the demo PKI, serves the
 * page with the private key in a key process, and prints a curl command that works as
 * printed. The serving process holds none of the key (memory scan) while its key process
 * does; a second run reuses the PKI.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { tempDir } from '../support/keydFixture.js';
import { startKeyward, type KeywardChild } from '../support/keywardCli.js';
import { keySecretNeedles, scanProcessMemory } from '../support/memscan.js';
import { runProcess } from '../support/processes.js';

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

/** Runs the curl command the demo printed, word for word. */
async function printedCurl(d: KeywardChild): Promise<string> {
  const line = /^try:\s+(curl .+)$/m.exec(d.stdout())?.[1];
  assert.ok(line, `no curl command printed:\n${d.stdout()}`);
  assert.match(line, new RegExp(`^curl --cacert \\S+ https://localhost:${d.port}/$`));
  const [cmd, ...args] = line.split(' ');
  const r = await runProcess(cmd, args, { timeoutMs: 15_000 });
  assert.equal(r.code, 0, `${line}\n${r.stderr}`);
  return r.stdout;
}

before(async () => {
  root = await tempDir('keyward-demo-');
  dataDir = join(root.dir, 'demo');
});

after(async () => {
  await Promise.all(running.map((d) => d.stop()));
  await root?.cleanup();
});

describe('keyward demo', { timeout: 120_000 }, () => {
  test('first run: creates the PKI, serves with the key in a key process, prints a working curl command', async () => {
    const d = await demo();
    try {
      assert.match(d.stdout(), /^created a demo CA and a localhost certificate in /m);
      assert.match(d.stdout(), /^private key: in a separate key process \(pid \d+\); this process never read .*server-key\.pem; protection: non-dumpable; .*$/m);
      const page = await printedCurl(d);
      assert.match(page, /^keyward: hello over TLS$/m);
      assert.match(page, /^protocol: TLSv1\.3$/m);
      assert.match(page, /^private key: in a separate key process \(pid \d+\)/m);

      // The serving process holds none of the key; its key process does.
      const needles = keySecretNeedles(readFileSync(join(dataDir, 'server-key.pem'), 'utf8'));
      const front = await scanProcessMemory(d.pid, needles);
      assert.ok(front.bytesScanned > 10_000_000, `scan too small: ${front.bytesScanned}`);
      assert.deepEqual(front.found, [], 'key material found in the demo\'s serving process');
      const keyPid = Number(/key process \(pid (\d+)\)/.exec(d.stdout())?.[1]);
      const child = await scanProcessMemory(keyPid, needles);
      assert.ok(child.found.some((n) => n.startsWith('scalar')), `key process scan found: ${child.found.join(', ') || 'nothing'}`);
    } finally {
      const { code } = await d.stop();
      assert.equal(code, 0, 'SIGTERM stops the demo cleanly');
    }
  });

  test('second run reuses the PKI', async () => {
    const d = await demo();
    assert.doesNotMatch(d.stdout(), /created a demo CA/);
    assert.match(await printedCurl(d), /^private key: in a separate key process/m);
  });
});
