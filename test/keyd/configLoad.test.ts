// loadKeydConfig on a file that is not valid JSON: the error names the file and the place,
// never a stretch of the text (keyd.json may hold a pkcs11 URI carrying pin-value).
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { KeydConfigError, loadKeydConfig } from '../../src/keyd/config.js';

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyward-config-'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

it('a JSON syntax error does not quote the text around it', async () => {
  const path = join(dir, 'keyd.json');
  const pin = '918273645';
  // A stray character before the value: V8's own message quotes this short text whole.
  await writeFile(path, `{"pin":x${pin}}`);
  await assert.rejects(loadKeydConfig(path), (e: unknown) => {
    assert.ok(e instanceof KeydConfigError);
    assert.match(e.message, /not valid JSON/);
    assert.ok(e.message.includes(path));
    assert.ok(!e.message.includes(pin), e.message);
    return true;
  });
});

it('a truncated file names the character where parsing stopped', async () => {
  const path = join(dir, 'short.json');
  await writeFile(path, '{"listen": {"tls": "127.0.0.1:0"}');
  await assert.rejects(loadKeydConfig(path), (e: unknown) => e instanceof KeydConfigError && /not valid JSON/.test(e.message));
});
