/**
 * The README and the docs stand alone and their snippets run as written:
 * - links point at files inside the repository (never ../shared or any path outside);
 * - every ```sh block of a file runs, in order, as one bash script in an empty folder with
 *   `keyward` on the PATH (the README's walkthrough: certs init, keyd, keys generate,
 *   certs issue, proxy, curl, audit verify); then every ```ts block of that file runs as a
 *   program importing 'keyward' (the package itself), in the same folder;
 * - ```json blocks marked `<!-- check: proxy-config -->`, `serve-config` or `keyd-config`
 *   pass the validators `keyward proxy|serve --config` and keyd use;
 * - a block marked `<!-- check: covered by PATH ... -->` names a test that exists; one
 *   marked `<!-- not run: reason -->` is listed here with its reason (benchmarks);
 * - ```text blocks are synopses and sample output, not programs.
 * Fixed ports in the snippets (7443, 8080, 8443, 8444) are replaced by free ones.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { validateRoleConfig } from '../../src/cli/roleConfig.js';
import { parseKeydConfig } from '../../src/keyd/config.js';
import { tempDir } from '../support/keydFixture.js';
import { freePort } from '../proxy/harness.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** The documents whose snippets this test owns (docs/keyd.md and others are checked by their own tests). */
const DOCS = ['README.md', 'docs/architecture.md', 'docs/security.md', 'docs/proxy.md', 'docs/configuration.md', 'docs/pki.md', 'docs/deployment.md', 'docs/delegated-credentials.md', 'docs/tls13-psk.md'];
const PORTS = [7443, 8080, 8443, 8444];

interface Block {
  lang: string;
  code: string;
  check?: string;
  line: number;
}

function blocks(text: string): Block[] {
  const out: Block[] = [];
  const re = /(?:<!-- (check|not run): ([^\n]*?) -->\n)?^```(\w*)\n([\s\S]*?)^```$/gm;
  for (const m of text.matchAll(re)) {
    out.push({ lang: m[3], code: m[4], ...(m[1] ? { check: `${m[1]}: ${m[2]}` } : {}), line: text.slice(0, m.index).split('\n').length });
  }
  return out;
}

/** A free loopback port in 20000-29999: outside the ephemeral range (32768-60999 here) the kernel gives outgoing connections. */
async function freePortBelowEphemeral(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = 20_000 + Math.floor(Math.random() * 10_000);
    const s = createServer();
    const ok = await new Promise<boolean>((r) => {
      s.once('error', () => r(false));
      s.listen(port, '127.0.0.1', () => r(true));
    });
    if (ok) {
      await new Promise<void>((r) => s.close(() => r()));
      return port;
    }
  }
  return freePort();
}

/** A command in a process group of its own; `stop()` kills the whole group. */
function startGroup(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeoutMs: number): { done: Promise<{ code: number | null; out: string }>; stop(): void } {
  const child = spawn(command, args, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const stop = () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  const timer = setTimeout(stop, timeoutMs);
  const done = new Promise<{ code: number | null; out: string }>((resolveRun) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      // What the command left running in its group (background jobs) goes with it.
      stop();
      resolveRun({ code, out });
    }),
  );
  return { done, stop };
}

/** Runs a command to its end (or `timeoutMs`), then kills whatever it left in its group. */
function runGroup(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return startGroup(command, args, cwd, env, timeoutMs).done;
}

let root: { dir: string; cleanup: () => Promise<void> };
let binDir: string;
before(async () => {
  root = await tempDir('keyward-docs-');
  binDir = join(root.dir, 'bin');
  await mkdir(binDir);
  await writeFile(join(binDir, 'keyward'), `#!/bin/sh\nexec "${process.execPath}" "${join(ROOT, 'bin', 'keyward.js')}" "$@"\n`);
  await chmod(join(binDir, 'keyward'), 0o755);
});
after(async () => root?.cleanup());

describe('README and docs', () => {
  for (const doc of DOCS) {
    test(`${doc}: links stay inside the repository; every snippet checked or run`, { timeout: 120_000 }, async () => {
      const text = await readFile(join(ROOT, doc), 'utf8');
      assert.doesNotMatch(text, /\.\.\/shared|DESIGN\.md/, 'no link outside the repository');
      for (const m of text.matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)) {
        const target = m[1];
        assert.ok(!/^[a-z]+:/.test(target), `${doc}: link ${target} leaves the repository`);
        const path = resolve(dirname(join(ROOT, doc)), target);
        assert.ok(path.startsWith(ROOT + '/'), `${doc}: link ${target} leaves the repository`);
        assert.ok(existsSync(path), `${doc}: link ${target} points at nothing`);
      }

      const all = blocks(text);
      const sh: Block[] = [];
      const programs: Block[] = [];
      for (const b of all) {
        const where = `${doc}:${b.line}`;
        if (b.check?.startsWith('not run: ')) {
          assert.ok(b.check.length > 'not run: '.length + 10, `${where}: say why it is not run`);
          continue;
        }
        if (b.check?.startsWith('check: covered by ')) {
          const path = /covered by (\S+)/.exec(b.check)![1];
          assert.ok(existsSync(join(ROOT, path)), `${where}: ${path} does not exist`);
          continue;
        }
        if (b.lang === 'json') {
          assert.ok(b.check, `${where}: a json block needs <!-- check: proxy-config|serve-config|keyd-config -->`);
          const value = JSON.parse(b.code) as unknown;
          if (b.check === 'check: proxy-config') validateRoleConfig('proxy', value, where, root.dir);
          else if (b.check === 'check: serve-config') validateRoleConfig('serve', value, where, root.dir);
          else if (b.check === 'check: keyd-config') parseKeydConfig(value, root.dir, where);
          else assert.fail(`${where}: unknown check ${b.check}`);
        } else if (b.lang === 'sh' || b.lang === 'bash') sh.push(b);
        else if (b.lang === 'ts') programs.push(b);
        else assert.equal(b.lang, 'text', `${where}: a \`\`\`${b.lang || '(none)'} block: mark synopses and output as text`);
      }
      if (sh.length === 0 && programs.length === 0) return;

      const dir = join(root.dir, doc.replace(/\W/g, '_'));
      await mkdir(join(dir, 'node_modules'), { recursive: true });
      await symlink(ROOT, join(dir, 'node_modules', 'keyward'));
      const ports = new Map<number, number>();
      // Below the kernel's ephemeral range, so no outgoing connection of a parallel test takes it meanwhile.
      for (const p of PORTS) ports.set(p, await freePortBelowEphemeral());
      const withPorts = (code: string) => code.replace(/\b(7443|8080|8443|8444)\b/g, (p) => String(ports.get(Number(p))));
      const env = { ...process.env, PATH: `${binDir}:${process.env.PATH}` };
      if (sh.length > 0) {
        const script = `set -euo pipefail\n${sh.map((b) => withPorts(b.code)).join('\n')}`;
        const r = await runGroup('bash', ['-c', script], dir, env, 90_000);
        assert.equal(r.code, 0, `${doc}: the sh snippets failed:\n${r.out}`);
      }
      if (doc === 'README.md') {
        assert.match(await readFile(join(dir, 'page.html'), 'utf8'), /Directory listing/, 'the walkthrough fetched the app through the proxy');
        assert.match(await readFile(join(dir, 'proxy.log'), 'utf8'), /"msg":"connection"/);
      }
      // The programs run after the scripts, against what they left (keyd, the walkthrough's files).
      if (doc === 'README.md' && programs.length > 0) {
        // The walkthrough stopped its keyd; the first program needs it running again.
        const keyd = startGroup('bash', ['-c', `KEYD_PASSPHRASE='use a long random passphrase' exec keyward keyd --config keyd.json > keyd2.log`], dir, env, 60_000);
        try {
          const log = () => readFile(join(dir, 'keyd2.log'), 'utf8').catch(() => '');
          for (let i = 0; i < 100 && !/keyd ready/.test(await log()); i++) await new Promise((r) => setTimeout(r, 100));
          for (const [i, b] of programs.entries()) {
            const js = ts.transpileModule(withPorts(b.code), { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
            const file = join(dir, `snippet-${i}.mjs`);
            await writeFile(file, js);
            const r = await runGroup(process.execPath, [file], dir, env, 30_000);
            assert.equal(r.code, 0, `${doc}:${b.line}: the program failed:\n${r.out}`);
            if (i === 0) assert.match(r.out, /hello over TLSv1\.3, signed in keyd/);
            if (i === 1) assert.match(r.out, /keyd made key [0-9a-f]{64}; it stays in /);
          }
        } finally {
          keyd.stop();
          await keyd.done;
        }
      } else {
        assert.equal(programs.length, 0, `${doc}: ts programs run only in the README's folder`);
      }
    });
  }
});
