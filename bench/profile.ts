/**
 * Where a pinned server's time goes, per handshake or per MiB: a V8 CPU profile of the
 * server's main thread over the measured window only (the inspector, 250 µs sampling), and
 * with --perf a `perf record` of the front and of the key process (native symbols: OpenSSL,
 * V8, the kernel; JavaScript named through --perf-basic-prof on the front). Same set-up as
 * `npm run bench`: server on CPU 0, bench/loadgen on CPU 1.
 *
 *   node dist/bench/profile.js [--seconds 10] [--warm 10] [--perf] [--node PATH] [--out DIR] [SCENARIO...]
 *
 * Scenarios (default: all): node-hs, local-hs, keyproc-hs (TLS 1.3 full handshakes, ECDSA
 * P-256, x25519), node-down, local-down, node-up, local-up (bulk, 128 MiB per connection).
 * Profiles are kept in --out (default a temporary folder, printed).
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { procCpuMicros } from './keysProc.js';
import { LOAD_CORE, buildLoadgen, runJson, sleep, startKeydWithSites, startServer, type Impl, type Keyd } from './pinned.js';
import { summarize, type CpuProfile } from './profileSummary.js';

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const seconds = Number(option('seconds') ?? 10);
/** Load before the measured window: V8 keeps compiling for seconds at a few hundred handshakes/s (see compare.ts). */
const warmSeconds = Number(option('warm') ?? 10);
const withPerf = process.argv.includes('--perf');
const node = option('node') ?? process.execPath;
const out = option('out') ?? mkdtempSync(join(tmpdir(), 'keyward-profile-'));
mkdirSync(out, { recursive: true });
const SCENARIOS: Record<string, { impl: Impl; kind: 'hs' | 'down' | 'up' }> = {
  'node-hs': { impl: 'node', kind: 'hs' },
  'local-hs': { impl: 'local', kind: 'hs' },
  'keyproc-hs': { impl: 'keyproc', kind: 'hs' },
  'node-down': { impl: 'node', kind: 'down' },
  'local-down': { impl: 'local', kind: 'down' },
  'node-up': { impl: 'node', kind: 'up' },
  'local-up': { impl: 'local', kind: 'up' },
};
const valueOptions = new Set(['--seconds', '--warm', '--node', '--out']);
const chosen = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && !valueOptions.has(all[i - 1]));
for (const c of chosen) if (!SCENARIOS[c]) throw new Error(`unknown scenario ${c} (${Object.keys(SCENARIOS).join(' ')})`);
const BULK_MB = 128;

/** `perf record` of one process, on the load's core, until stopped. */
function perfRecord(pid: number, file: string): () => Promise<void> {
  const p = spawn('taskset', ['-c', String(LOAD_CORE), 'perf', 'record', '-F', '1999', '-g', '-o', file, '-p', String(pid)], { stdio: 'ignore' });
  return () =>
    new Promise((r) => {
      p.once('exit', () => r());
      p.kill('SIGINT');
    });
}

/**
 * Native entry points whose inclusive time (callees included) says what a crypto or I/O
 * call costs: a floor where OpenSSL's assembly loses the callers (see PERF_AREAS).
 */
const PERF_ENTRIES: [string, RegExp[]][] = [
  ['x25519/EC key generation (generateKeyPairSync)', [/KeyPairGenTraits<node::crypto::NidKeyPairGenTraits> >::Run$/]],
  ['  of which the public key encoded (SPKI DER export)', [/ManagedEVPPKey::ToEncodedPublicKey$/]],
  // Node 20 names it DiffieHellman::Stateless, Node 24 a DHBits job.
  ['ECDH/X25519 shared secret (diffieHellman)', [/DiffieHellman::Stateless$/, /CryptoJob<node::crypto::DHBitsTraits>::Run$/]],
  ['signature jobs, sign + verify (crypto.sign/verify)', [/CryptoJob<node::crypto::SignTraits>::Run$/]],
  ['  of which EVP_DigestSignFinal', [/^EVP_DigestSignFinal$/]],
  ['  of which EVP_DigestVerifyFinal', [/^EVP_DigestVerifyFinal$/]],
  ['HMAC (createHmac: new, init, update, digest)', [/node::crypto::Hmac::New/, /node::crypto::Hmac::HmacInit/, /node::crypto::Hmac::HmacUpdate/, /node::crypto::Hmac::HmacDigest/]],
  ['hash (createHash: new, update, digest)', [/node::crypto::Hash::New/, /node::crypto::Hash::HashUpdate/, /node::crypto::Hash::HashDigest/]],
  ['AEAD (createCipheriv/Decipheriv: new, init, update, final, tag)', [/CipherBase::New/, /CipherBase::InitIv/, /CipherBase::Update\(v8/, /CipherBase::Final\(v8/, /CipherBase::SetAAD\(v8/, /CipherBase::SetAuthTag\(v8/, /CipherBase::GetAuthTag\(v8/]],
  ['KeyObject made from bytes (createPrivateKey/createPublicKey: raw, JWK; an X25519 private key computes its public half)', [/KeyObjectHandle::Init$/]],
  ['OpenSSL algorithm lookups (fetch/namemap, inside the above)', [/^ossl_method_store_fetch$/, /^ossl_namemap_name2num$/, /^ossl_method_store_do_all$/]],
  ['socket writes (libuv try-write, kernel)', [/LibuvStreamWrap::DoTryWrite/, /^uv__write$/]],
  ['socket reads, kernel part', [/^ksys_read$/]],
  ['garbage collection (main and helper threads)', [/v8::internal::Heap::CollectGarbage$/, /ScavengerCollector::JobTask::Run$/, /ConcurrentMarking::Run/]],
];

/**
 * Self time by area, first match wins. Inclusive times undercount what runs in OpenSSL's
 * assembly, which keeps no frame pointers: the callers of a P-256 verify are lost, so its
 * inclusive entry showed ~15 µs where its self time (and a bare crypto.verify loop) is ~90.
 */
const PERF_AREAS: [string, RegExp][] = [
  ['kernel', /\[kernel/],
  ['P-256 math (ECDSA sign, verify; ECDH)', /nistz256|\becp_|ecdsa/i],
  ['X25519 math', /\bfe_|x25519|\bge_|fe64/],
  ['SHA-2 blocks', /sha256_block|sha512_block/],
  ['AES-GCM blocks', /aesni|gcm_|ghash/],
  ['libc malloc/free', /libc\.so.*(malloc|free|_int_|consolidate|unlink_chunk|calloc|realloc)/],
  ['libc, other (memcpy, locks, strings)', /libc\.so/],
  ['OpenSSL name lookups (namemap, OBJ_NAME)', /do_name|OPENSSL_LH_|ossl_namemap|ossl_lh_strcasehash|OPENSSL_strcasecmp|ossl_tolower|OBJ_NAME/],
  ['garbage collection', /Scaveng|Heap::|MarkCompact|ConcurrentMarking|Sweeper|Marking|Evacuat|MemoryChunk/],
  ['JIT code (JavaScript)', /\[JIT\]|JS:/],
  ['V8 builtins and inline caches', /Builtins_/],
  ['TurboFan and the other compilers', /compiler::|Compiler|Maglev|turboshaft/],
  ['the V8 CPU profiler itself (this tool)', /CodeEntry|ProfileTree|ProfileNode|CpuProfiler|InstructionStreamMap|ProfilerListener|SamplingEventsProcessor|Symbolizer|CodeEntryAndLineNumber/],
];

/** perf's self time per area of PERF_AREAS, in percent; the rest is Node's, V8's and OpenSSL's other native code. */
function perfAreas(file: string): [string, number][] {
  const sums = new Map<string, number>();
  for (const l of perfReport(file, ['--no-children', '--sort', 'dso,sym', '--percent-limit', '0.001'])) {
    const m = /^\s+([\d.]+)%\s+(.*)$/.exec(l);
    if (!m) continue;
    const area = PERF_AREAS.find(([, re]) => re.test(m[2]))?.[0] ?? 'other native code (Node, V8, OpenSSL glue)';
    sums.set(area, (sums.get(area) ?? 0) + Number(m[1]));
  }
  return [...sums].sort((a, b) => b[1] - a[1]);
}

function perfReport(file: string, args: string[]): string[] {
  return execFileSync('perf', ['report', '-i', file, '--stdio', '-g', 'none', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 256 << 20 })
    .split('\n')
    .filter((l) => /^\s+\d/.test(l));
}

/** perf's tables, each line scaled to µs per operation from the process's CPU per operation. */
function perfTable(file: string, cpuPerOp: number, unit: string, what: string): string[] {
  const us = (pct: number): string => ((pct / 100) * cpuPerOp).toFixed(1).padStart(8);
  const scale = (l: string): string => `    ${us(Number(/([\d.]+)%/.exec(l)![1]))} ${l.trim().replace(/\s+/g, ' ')}`;
  const lines: string[] = [`  perf, ${what} (${cpuPerOp.toFixed(0)} µs/${unit} of CPU from /proc, all threads), by binary (self):`];
  lines.push(...perfReport(file, ['--no-children', '--sort', 'dso', '--percent-limit', '1']).slice(0, 8).map(scale));
  // Inclusive times: "  12.34%   0.05%  [.] symbol".
  const inclusive = new Map<string, number>();
  for (const l of perfReport(file, ['--children', '--sort', 'sym', '--percent-limit', '0.05'])) {
    const m = /^\s+([\d.]+)%\s+[\d.]+%\s+\[.\]\s+(.*)$/.exec(l);
    if (m) inclusive.set(m[2].trim(), Math.max(Number(m[1]), inclusive.get(m[2].trim()) ?? 0));
  }
  lines.push(`  native entry points, inclusive (µs/${unit}):`);
  for (const [name, patterns] of PERF_ENTRIES) {
    // The largest match per pattern (nested thunks repeat a frame), summed over the patterns.
    const pct = patterns.reduce((sum, re) => sum + Math.max(0, ...[...inclusive].filter(([sym]) => re.test(sym)).map(([, v]) => v)), 0);
    lines.push(`    ${us(pct)} ${pct.toFixed(2).padStart(6)}%  ${name}`);
  }
  lines.push(`  self time by area (µs/${unit}; every sample counted once, callers or not):`);
  for (const [area, pct] of perfAreas(file)) lines.push(`    ${us(pct)} ${pct.toFixed(2).padStart(6)}%  ${area}`);
  lines.push('  top symbols by self time:');
  lines.push(...perfReport(file, ['--no-children', '--sort', 'dso,sym', '--percent-limit', '0.8']).slice(0, 20).map(scale));
  return lines;
}

async function scenario(name: string, keyd: Keyd, loadgen: string): Promise<void> {
  const { impl, kind } = SCENARIOS[name];
  const site = keyd.sites[0];
  const s = await startServer(impl, site, keyd, node, {}, withPerf ? ['--perf-basic-prof'] : []);
  const unit = kind === 'hs' ? 'handshake' : 'MiB';
  const load = async (secs: number): Promise<void> => {
    if (kind === 'hs') {
      await runJson(LOAD_CORE, loadgen, ['-mode', 'handshakes', '-port', String(s.port), '-seconds', String(secs), '-tls', '1.3', '-groups', 'x25519'], (secs + 60) * 1000);
      return;
    }
    // Bulk: 128 MiB connections one after another for about `secs`.
    const until = performance.now() + secs * 1000;
    do {
      await runJson(LOAD_CORE, loadgen, ['-mode', 'bulk', '-port', String(s.port), '-mb', String(BULK_MB), '-direction', kind], 120_000);
    } while (performance.now() < until);
  };
  try {
    await load(warmSeconds); // JIT warm-up
    const before = await s.child.ask('stat');
    const f0 = procCpuMicros(s.child.pid);
    const h0 = s.holderPid ? procCpuMicros(s.holderPid) : 0;
    await s.child.ask('prof-start');
    const stops = withPerf ? [perfRecord(s.child.pid, join(out, `${name}.front.perf.data`)), ...(s.holderPid ? [perfRecord(s.holderPid, join(out, `${name}.holder.perf.data`))] : [])] : [];
    const t0 = performance.now();
    await load(seconds);
    const after = await s.child.ask(`prof-stop ${join(out, `${name}.cpuprofile`)}`);
    for (const stop of stops) await stop();
    const wall = (performance.now() - t0) / 1000;
    const front = procCpuMicros(s.child.pid) - f0;
    const holder = s.holderPid ? procCpuMicros(s.holderPid) - h0 : 0;
    // Handshakes the server completed, or MiB it moved (one 128 MiB connection each), in the window.
    const connections = (after.secure as number) - (before.secure as number);
    const ops = kind === 'hs' ? connections : connections * BULK_MB;
    console.log(`\n${name}: ${impl}, ${kind === 'hs' ? 'TLS 1.3 full handshakes, ECDSA P-256, x25519' : `bulk ${kind === 'down' ? 'download' : 'upload'}, ${BULK_MB} MiB per connection`}; ${ops} ${unit}s in ${wall.toFixed(1)} s`);
    console.log(`  /proc CPU: front ${(front / ops).toFixed(1)} µs/${unit}${s.holderPid ? `, key process ${(holder / ops).toFixed(1)} µs/${unit}` : ''} (all threads; the profile below is the JS thread)`);
    const profile = JSON.parse(readFileSync(join(out, `${name}.cpuprofile`), 'utf8')) as CpuProfile;
    console.log(summarize(profile, ops, unit).join('\n'));
    if (withPerf) {
      await sleep(200);
      console.log(perfTable(join(out, `${name}.front.perf.data`), front / ops, unit, 'front').join('\n'));
      if (s.holderPid) console.log(perfTable(join(out, `${name}.holder.perf.data`), holder / ops, unit, 'key process').join('\n'));
    }
  } finally {
    await s.child.stop();
  }
}

async function main(): Promise<void> {
  const loadgen = buildLoadgen();
  const dir = mkdtempSync(join(tmpdir(), 'keyward-profile-keys-'));
  const keyd = await startKeydWithSites(dir, node, ['ecdsa-p256']);
  try {
    console.log(`profiles in ${out}; server on Node ${execFileSync(node, ['--version'], { encoding: 'utf8' }).trim()} pinned to CPU 0, load on CPU 1, ${seconds} s windows`);
    for (const name of chosen.length > 0 ? chosen : Object.keys(SCENARIOS)) await scenario(name, keyd, loadgen);
  } finally {
    await keyd.child.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
