#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) with node's test runner, on the
// machine's Node and then again on the pinned Node 24 (scripts/node24.sh installs it),
// whose bin directory goes first on PATH so the peers and CLIs the tests start use it too.
// Node 20's `node --test` takes no globs, so the files are listed here.
//
//   node scripts/run-tests.mjs              all tests, on both Node versions
//   node scripts/run-tests.mjs interop pki  only files whose path contains "interop" or "pki"
//
// Environment: KEYWARD_TEST_TIMEOUT_MS (per test, default 120000),
// KEYWARD_TEST_CONCURRENCY (files at once, default 2),
// KEYWARD_SUITE_TIMEOUT_MS (each run, default 12 minutes),
// KEYWARD_TEST_NODES ("both", the default; "current" for the machine's Node only).
import { spawn, spawnSync } from 'node:child_process';
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
const suiteTimeout = intFromEnv('KEYWARD_SUITE_TIMEOUT_MS', 12 * 60_000);
const nodes = process.env.KEYWARD_TEST_NODES ?? 'both';
if (nodes !== 'both' && nodes !== 'current') {
  console.error(`run-tests: KEYWARD_TEST_NODES must be "both" or "current", got ${JSON.stringify(nodes)}`);
  process.exit(2);
}

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

const args = [
  '--test',
  `--test-concurrency=${concurrency}`,
  `--test-timeout=${perTestTimeout}`,
  ...toRun,
];

/** One run of the selected files on `nodePath`; resolves to its exit code. */
function runSuite(nodePath, label) {
  return new Promise((resolveRun) => {
    console.log(`run-tests: ${label}: ${toRun.length} test file(s), concurrency ${concurrency}, per-test timeout ${perTestTimeout} ms`);
    // Another Node's directory goes first on PATH; the machine's own PATH is left as it is
    // (its node's directory may hold other programs, e.g. a different python3).
    const env = nodePath === process.execPath ? process.env : { ...process.env, PATH: `${dirname(nodePath)}:${process.env.PATH ?? ''}` };
    // Own process group, so a stuck run can be ended whole (runner and the peers it started).
    const child = spawn(nodePath, args, { cwd: root, stdio: 'inherit', detached: true, env });
    const killGroup = (signal) => {
      try {
        process.kill(-child.pid, signal);
      } catch {
        // Already gone.
      }
    };
    current = killGroup;
    let killedForTime = false;
    const watchdog = setTimeout(() => {
      killedForTime = true;
      console.error(`run-tests: ${label}: run exceeded ${suiteTimeout} ms; stopping it`);
      killGroup('SIGTERM');
      setTimeout(() => killGroup('SIGKILL'), 5_000).unref();
    }, suiteTimeout);
    watchdog.unref();
    child.on('exit', (code, signal) => {
      clearTimeout(watchdog);
      current = undefined;
      if (signal) console.error(`run-tests: ${label}: test runner ended by ${signal}`);
      resolveRun(killedForTime || signal ? 1 : (code ?? 1));
    });
  });
}

let current;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (!current) process.exit(1);
    current(sig);
    setTimeout(() => current?.('SIGKILL'), 3_000).unref();
    setTimeout(() => process.exit(1), 4_000).unref();
  });
}

function node24Path() {
  const r = spawnSync('bash', [join(root, 'scripts', 'node24.sh')], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) {
    console.error('run-tests: could not install the pinned Node 24 (scripts/node24.sh failed)');
    process.exit(1);
  }
  return r.stdout.trim();
}

const results = [];
const here = `Node ${process.version}`;
results.push([here, await runSuite(process.execPath, here)]);
if (nodes === 'both') {
  if (process.versions.node.split('.')[0] === '24') {
    console.log(`run-tests: the machine's Node is already ${process.version}: no second run`);
  } else {
    const n24 = node24Path();
    results.push(['Node 24 (pinned)', await runSuite(n24, 'Node 24 (pinned)')]);
  }
}
for (const [label, code] of results) console.log(`run-tests: ${label}: ${code === 0 ? 'passed' : `FAILED (exit ${code})`}`);
process.exit(results.every(([, code]) => code === 0) ? 0 : 1);
