/**
 * A keyd with one PSK put into it as an operator would (`keyward keys put-psk`), for tests
 * of fronts that keep no PSK: one client certificate ("front"), and the same PSK also in a
 * PSK file (`identity:hex`) for the key-process and in-process controls.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Keyd } from '../../src/keyd/server.js';
import { makeKeydPki, startTestKeyd, tempDir, type KeydPki } from './keydFixture.js';
import { runKeyward } from './keywardCli.js';
import type { RunResult } from './processes.js';

export interface PskKeyd {
  root: { dir: string; cleanup: () => Promise<void> };
  kpki: KeydPki;
  keyd: Keyd;
  auditFile: string;
  /** The PSK file: `fileHeader`, then `identity:hex`. */
  pskFile: string;
  /** What `keyward keys put-psk` printed and returned, for the caller to check. */
  put: RunResult;
}

export async function startPskKeyd(prefix: string, identity: string, pskHex: string, fileHeader = ''): Promise<PskKeyd> {
  const root = await tempDir(prefix);
  const kpki = await makeKeydPki(root.dir, ['front']);
  const started = await startTestKeyd(root.dir, kpki);
  const pskFile = join(root.dir, 'psks.txt');
  await writeFile(pskFile, `${fileHeader}${identity}:${pskHex}\n`, { mode: 0o600 });
  const secretFile = join(root.dir, 'psk.hex');
  await writeFile(secretFile, `${pskHex}\n`, { mode: 0o600 });
  const put = await runKeyward(['keys', 'put-psk', '--identity', identity, '--psk-file', secretFile, '--hex', '--keyd', `unix:${started.keyd.unixPath}`]);
  return { root, kpki, keyd: started.keyd, auditFile: started.config.audit.file, pskFile, put };
}
