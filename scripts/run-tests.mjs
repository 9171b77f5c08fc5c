#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) with node's test runner.
// Node 20's `node --test` takes no globs, so the files are listed here.
//
//   node scripts/run-tests.mjs              all tests
//   node scripts/run-tests.mjs interop pki  only files whose path contains "interop" or "pki"
//
// Environment: KEYWARD_TEST_TIMEOUT_MS (per test, default 120000),
// KEYWARD_TEST_CONCURRENCY (files at once, default 2),
// KEYWARD_SUITE_TIMEOUT_MS (whole run, default 20 minutes).
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const testRoot = join(root, 'dist', 'test');

function intFromEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) {
    console.error(`run-tests: ${name} must be a positive integer, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return n;
}

const perTestTimeout = intFromEnv('KEYWARD_TEST_TIMEOUT_MS', 120_000);
const concurrency = intFromEnv('KEYWARD_TEST_CONCURRENCY', 2);
const suiteTimeout = intFromEnv('KEYWARD_SUITE_TIMEOUT_MS', 20 * 60_000);

function findTests(dir) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if (err.code === 'ENOENT') return [];
    throw err;
  }
  const out = [];
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...findTests(p));
    else if (e.isFile() && e.name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2).filter((a) => a !== '--');
const all = findTests(testRoot)
  .map((p) => relative(root, p).split(sep).join('/'))
  .sort();

if (all.length === 0) {
  console.error(`run-tests: no test files under ${relative(root, testRoot) || '.'} (did the build run?)`);
  process.exit(1);
}

const selected = filters.length === 0 ? all : all.filter((p) => filters.some((f) => p.includes(f)));
if (selected.length === 0) {
  console.error(`run-tests: no test file matches ${filters.map((f) => JSON.stringify(f)).join(', ')}`);
  process.exit(1);
}

// Stale compiled tests (source deleted) would otherwise keep running forever.
const stale = selected.filter((p) => {
  const src = join(root, p.replace(/^dist\//, '').replace(/\.js$/, '.ts'));
  try {
    return !statSync(src).isFile();
  } catch {
    return true;
  }
});
const toRun = selected.filter((p) => !stale.includes(p));
for (const p of stale) console.error(`run-tests: ignoring ${p}: its source file no longer exists`);
if (toRun.length === 0) {
  console.error('run-tests: nothing left to run');
  process.exit(1);
}

console.log(`run-tests: ${toRun.length} test file(s), concurrency ${concurrency}, per-test timeout ${perTestTimeout} ms`);

const args = [
  '--test',
  `--test-concurrency=${concurrency}`,
  `--test-timeout=${perTestTimeout}`,
  ...toRun,
];
// Own process group, so a stuck run can be ended whole (runner and the peers it started).
const child = spawn(process.execPath, args, { cwd: root, stdio: 'inherit', detached: true });

let killedForTime = false;
const watchdog = setTimeout(() => {
  killedForTime = true;
  console.error(`run-tests: suite exceeded ${suiteTimeout} ms; stopping it`);
  killGroup('SIGTERM');
  setTimeout(() => killGroup('SIGKILL'), 5_000).unref();
}, suiteTimeout);
watchdog.unref();

function killGroup(signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    killGroup(sig);
    setTimeout(() => killGroup('SIGKILL'), 3_000).unref();
  });
}

child.on('exit', (code, signal) => {
  clearTimeout(watchdog);
  if (killedForTime) process.exit(1);
  if (signal) {
    console.error(`run-tests: test runner ended by ${signal}`);
    process.exit(1);
  }
  process.exit(code ?? 1);
});
