/**
 * `keyward connect --sess-out FILE` then `--sess-in FILE`, as openssl s_client's: the
 * second run resumes (its connected line ends in resumed=yes, the server says reused), the
 * file is the owner's only, and a file that is not a session is refused naming it.
 */
import assert from 'node:assert/strict';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { LocalKey } from '../../src/keys/localKey.js';
import { createServer, type KeywardServer } from '../../src/node/server.js';
import { tempDir } from '../support/keydFixture.js';
import { closeServer, listen } from '../support/keywardServer.js';
import { KEYWARD_BIN } from '../support/keywardCli.js';
import { getPki, type PkiFixtures } from '../support/pki.js';
import { runProcess } from '../support/processes.js';

let pki: PkiFixtures;
let dir: { dir: string; cleanup: () => Promise<void> };
let server: KeywardServer;
let port: number;
const reused: boolean[] = [];

before(async () => {
  pki = await getPki();
  dir = await tempDir('keyward-sess-');
  const f = pki.server['ecdsa-p256'];
  // Answers one line and closes (keyward connect ends only when the server does).
  server = createServer({ certificates: [{ cert: f.chainPem, key: new LocalKey(f.keyPem) }] }, (s) => {
    reused.push(s.isSessionReused());
    s.once('data', (d: Buffer) => s.end(`reply to ${String(d).trim()}\n`));
    s.on('error', () => undefined);
  });
  port = await listen(server);
});

after(async () => {
  await closeServer(server, () => server.closeAllConnections());
  await dir.cleanup();
});

function connectCli(args: string[]) {
  return runProcess(process.execPath, [KEYWARD_BIN, 'connect', `localhost:${port}`, '--ca', pki.ca.certPath, '--tls-version', '1.3', ...args], { input: 'hello\n', keepOpenMs: 0, timeoutMs: 20_000 });
}

it('--sess-out saves the session (mode 0600); --sess-in resumes it', async () => {
  const file = join(dir.dir, 'session.bin');
  const first = await connectCli(['--sess-out', file]);
  assert.equal(first.code, 0, first.stderr);
  assert.doesNotMatch(first.stderr, /resumed=yes/);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const second = await connectCli(['--sess-in', file]);
  assert.equal(second.code, 0, second.stderr);
  assert.equal(second.stdout, 'reply to hello\n');
  assert.match(second.stderr, /^connected version=TLSv1\.3 .* sigalg=- .*resumed=yes$/m);
  assert.deepEqual(reused, [false, true]);
});

it('--sess-in with a file that is not a session: exit 2 naming the file', async () => {
  const file = join(dir.dir, 'garbage.bin');
  writeFileSync(file, 'not a session');
  const run = await connectCli(['--sess-in', file]);
  assert.equal(run.code, 2, run.stderr);
  assert.match(run.stderr, new RegExp(`--sess-in ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: invalid TLS session`));
});
