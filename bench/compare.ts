/**
 * keyward vs node:tls, measured from outside on one pinned core (issue 15's method):
 *
 * - every server under test is its own process pinned to CPU 0 (`taskset -c 0`); a key
 *   process forked by a front inherits the pinning, so front and key process share that core;
 * - the load is bench/loadgen (Go's crypto/tls, compiled by bench/setup.sh) pinned to CPU 1,
 *   and its own CPU per handshake is printed beside the server's, to show it is cheaper;
 * - the primary figure is server CPU per operation, utime+stime from /proc/PID/stat, of the
 *   front and of the key holder (key process or keyd) separately and summed; operations per
 *   second come second (they follow whatever else the machine runs);
 * - A/B runs alternate (the starting server rotates), medians are printed with the spread
 *   of the primary figure, and every ratio is node:tls µs / keyward µs, so above 1 is
 *   keyward cheaper.
 *
 *   npm run bench                       the whole run (~14 min)
 *   npm run bench -- --quick            a ~2 min subset (P-256 rows, shorter runs, one repeat)
 *   npm run bench -- --only tls13,bulk  sections: tls13 tls12 resumed hybrid bulk memory keyd
 *   options: --seconds S (per run), --warm S (load per server before a row's runs; default 8,
 *            2 with --quick), --repeats N, --concurrency C, --node PATH (run the servers,
 *            keyd and the bare sign loop on another Node, e.g. the pinned Node 24), --nodelay
 *            (TCP_NODELAY on both servers' accepted sockets; both leave Nagle on by default),
 *            --baseline DIR (also run keyward's servers, in the same alternating rounds, from
 *            another built checkout, e.g. `git worktree add DIR HEAD~1 && (cd DIR && npm ci && npm run build)`,
 *            and print each one's CPU per operation now against it)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KeyType } from '../src/cli/pki.js';
import { median, procCpuMicros } from './keysProc.js';
import {
  IMPL_LABEL,
  LOAD_CORE,
  SERVER_CORE,
  buildLoadgen,
  here,
  root,
  runJson,
  runText,
  sleep,
  startChild,
  startKeydWithSites,
  startServer as startPinnedServer,
  type Build,
  type Impl,
  type Json,
  type Keyd,
  type Server,
  type SiteKey,
} from './pinned.js';

// ------------------------------------------------------------------ options

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const quick = process.argv.includes('--quick');
const ALL_SECTIONS = ['tls13', 'tls12', 'resumed', 'hybrid', 'bulk', 'memory', 'keyd'];
const sections = new Set((option('only') ?? ALL_SECTIONS.join(',')).split(','));
for (const s of sections) if (!ALL_SECTIONS.includes(s)) throw new Error(`--only: unknown section ${s} (${ALL_SECTIONS.join(' ')})`);
const seconds = Number(option('seconds') ?? (quick ? 1.5 : 4));
const repeats = Number(option('repeats') ?? (quick ? 1 : 3));
const concurrency = Number(option('concurrency') ?? 16);
const serverNode = option('node') ?? process.execPath;
/**
 * Load before the measured runs of a row, per server. V8 keeps compiling for a while: at
 * ~600 handshakes/s a key process spent ~100 µs per signature in TurboFan after 2 s of
 * load and ~5 after 15 s (a front likewise), so short warm-ups charge start-up to the rows.
 */
const warmSeconds = Number(option('warm') ?? (quick ? 2 : 8));
const bulkMB = quick ? 32 : 128;
/** 128 MiB moves in ~0.4 s: several transfers per run keep the 10 ms CPU ticks a small error. */
const bulkTransfers = quick ? 1 : 4;
const noDelay = process.argv.includes('--nodelay');
/** --baseline DIR: also run keyward's servers from the built checkout in DIR (e.g. the commit before a change). */
const baselineDir = option('baseline');
const baseline: Build | undefined = baselineDir ? { benchDir: join(baselineDir, 'dist', 'bench'), tag: 'baseline' } : undefined;
const idleCount = quick ? 2000 : 10_000;
const pendingCount = quick ? 1000 : 5000;
const keyTypes: KeyType[] = quick ? ['ecdsa-p256'] : ['ecdsa-p256', 'rsa-2048'];

const f = (n: number, d = 0): string => (Number.isFinite(n) ? n.toFixed(d) : '-');
const x = (n: number): string => (Number.isFinite(n) ? `${n.toFixed(2)}x` : '-');

let loadgenPath = '';
function loadgen(args: string[], timeoutMs = (seconds + 60) * 1000): Promise<Json> {
  return runJson(LOAD_CORE, loadgenPath, args, timeoutMs);
}

let keyd: Keyd | undefined;
function startServer(impl: Impl, site: SiteKey, extra: Json = {}, node = serverNode, build?: Build): Promise<Server> {
  return startPinnedServer(impl, site, keyd, node, { noDelay, ...extra }, [], build);
}

/**
 * With --baseline: each keyward server's CPU per operation here against the same server
 * from the baseline build, measured in the same alternating rounds (below 1: cheaper now).
 */
function printBaselineChange<T>(med: Map<string, T>, figures: (m: T) => number[], names: string[], unit: string): void {
  if (!baseline) return;
  for (const [name, before] of med) {
    if (!name.endsWith(`@${baseline.tag}`)) continue;
    const now = med.get(name.slice(0, -baseline.tag.length - 1));
    if (!now) continue;
    const b = figures(before);
    const a = figures(now);
    const parts = names.map((n, i) => (b[i] > 0 ? `${n} ${f(b[i])} → ${f(a[i])} ${unit} (${x(a[i] / b[i])})` : '')).filter((p) => p !== '');
    console.log(`  ${name.split('@')[0]} now vs ${baseline.tag}: ${parts.join(', ')}`);
  }
}

// ------------------------------------------------------------------ handshake rows

interface HsRun {
  rate: number;
  frontUs: number;
  holderUs: number;
  genUs: number;
  p50: number;
  p99: number;
  errors: number;
  resumedShare: number;
}

async function handshakeRun(s: Server, loadArgs: string[], runSeconds: number): Promise<HsRun> {
  const a0 = (await s.child.ask('stat')).secure as number;
  const f0 = procCpuMicros(s.child.pid);
  const h0 = s.holderPid ? procCpuMicros(s.holderPid) : 0;
  const g = await loadgen(['-mode', 'handshakes', '-port', String(s.port), '-concurrency', String(concurrency), '-seconds', String(runSeconds), ...loadArgs]);
  const f1 = procCpuMicros(s.child.pid);
  const h1 = s.holderPid ? procCpuMicros(s.holderPid) : 0;
  // The server also counted the load generator's priming handshake of a resumed row.
  const hs = ((await s.child.ask('stat')).secure as number) - a0 - (g.primed as number);
  const genHs = g.handshakes as number;
  if (hs === 0) throw new Error(`${s.label}: no handshake completed (${String(g.firstError ?? '')})`);
  return {
    rate: hs / (g.seconds as number),
    frontUs: (f1 - f0) / hs,
    holderUs: s.holderPid ? (h1 - h0) / hs : 0,
    genUs: (g.cpuUs as number) / genHs,
    p50: g.p50 as number,
    p99: g.p99 as number,
    errors: (g.errors as number) + Math.abs(genHs - hs),
    resumedShare: (g.resumed as number) / genHs,
  };
}

interface HsRow {
  label: string;
  /** By server name: the impl, or impl@tag for a baseline build's server. */
  runs: Map<string, HsRun[]>;
}

function medianRun(runs: HsRun[]): HsRun {
  const m = {} as Record<keyof HsRun, number>;
  for (const k of Object.keys(runs[0]) as (keyof HsRun)[]) m[k] = median(runs.map((r) => r[k]));
  return m;
}

type RunFn = (s: Server, runSeconds: number) => Promise<HsRun>;
/** The Go load generator with these arguments. */
const goLoad =
  (loadArgs: string[]): RunFn =>
  (s, runSeconds) =>
    handshakeRun(s, loadArgs, runSeconds);

/** Alternating runs over the row's servers, the first server rotating each round. */
async function handshakeRow(label: string, servers: Server[], run: RunFn): Promise<HsRow> {
  for (const s of servers) await run(s, warmSeconds);
  const runs = new Map<string, HsRun[]>(servers.map((s) => [s.name, []]));
  for (let r = 0; r < repeats; r++) {
    for (let i = 0; i < servers.length; i++) {
      const s = servers[(i + r) % servers.length];
      runs.get(s.name)!.push(await run(s, seconds));
    }
  }
  printHsRow(label, runs, servers);
  return { label, runs };
}

function printHsRow(label: string, runs: Map<string, HsRun[]>, servers: Server[]): void {
  const labelOf = (name: string): string => servers.find((s) => s.name === name)?.label ?? name;
  console.log(`\n${label}`);
  const w = Math.max(29, ...servers.map((s) => s.label.length));
  console.log(`  ${'server'.padEnd(w)}  hs/s  front µs/hs (spread)  holder µs/hs  front+holder  load µs/hs  p50 ms  p99 ms  resumed  errors`);
  const med = new Map([...runs].map(([impl, rs]) => [impl, medianRun(rs)]));
  for (const [impl, rs] of runs) {
    const m = med.get(impl)!;
    const fronts = rs.map((r) => r.frontUs);
    const spread = rs.length > 1 ? `(${f(Math.min(...fronts))}–${f(Math.max(...fronts))})` : '';
    console.log(
      `  ${labelOf(impl).padEnd(w)} ${f(m.rate).padStart(5)} ${f(m.frontUs).padStart(7)} ${spread.padStart(13)} ${(m.holderUs ? f(m.holderUs) : '-').padStart(13)} ${f(m.frontUs + m.holderUs).padStart(13)} ${f(m.genUs).padStart(11)} ${f(m.p50, 2).padStart(7)} ${f(m.p99, 2).padStart(7)} ${(f(m.resumedShare * 100) + '%').padStart(8)} ${f(m.errors).padStart(7)}`,
    );
  }
  const node = med.get('node');
  if (!node) return;
  const parts: string[] = [];
  for (const [impl, m] of med) {
    if (impl === 'node') continue;
    const both = m.holderUs ? `, front+holder ${x(node.frontUs / (m.frontUs + m.holderUs))}` : '';
    parts.push(`${impl} front ${x(node.frontUs / m.frontUs)}${both}, hs/s ${x(m.rate / node.rate)}`);
  }
  console.log(`  ratio node:tls µs / keyward µs (above 1: keyward cheaper): ${parts.join('; ')}`);
  printBaselineChange(med, (m) => [m.frontUs, m.holderUs], ['front', 'holder'], 'µs/hs');
}

/** Runs one row or section; a failure is printed and the bench goes on with the next. */
async function guarded(what: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    failures.push(what);
    console.log(`\n${what}: FAILED: ${(e as Error).message.split('\n')[0]}`);
  }
}
const failures: string[] = [];

// ------------------------------------------------------------------ targets

interface Target {
  what: string;
  ratio: number;
  goal: number;
  /** true: the ratio must be at most the goal. */
  atMost?: boolean;
}
const targets: Target[] = [];

function hsTargets(row: HsRow, what: string, goal: number): void {
  const node = row.runs.get('node');
  if (!node) return;
  const n = medianRun(node);
  for (const impl of ['local', 'keyproc', 'keyd', 'serve'] as const) {
    const rs = row.runs.get(impl);
    if (rs) targets.push({ what: `${what}, ${IMPL_LABEL[impl]}: front CPU/hs`, ratio: n.frontUs / medianRun(rs).frontUs, goal });
  }
}

// ------------------------------------------------------------------ sections

const TLS13 = ['-tls', '1.3', '-groups', 'x25519'];
/** TLS 1.2 ECDHE with x25519; p256 is offered too because an ECDSA P-256 certificate needs its curve listed (RFC 8422 5.1). */
const tls12 = (cipher: string): string[] => ['-tls', '1.2', '-groups', 'x25519,p256', '-cipher', cipher];

async function probe(s: Server, args: string[]): Promise<Json> {
  return loadgen(['-mode', 'probe', '-port', String(s.port), ...args], 30_000);
}

async function handshakeSections(sites: SiteKey[]): Promise<void> {
  for (const site of sites) {
    // serve: what an operator runs (`keyward serve`), its HTTPS app and key wrapper included.
    const impls: Impl[] = ['node', 'local', 'keyproc', 'keyd', 'serve'];
    const servers: Server[] = [];
    try {
      for (const impl of impls) servers.push(await startServer(impl, site));
      if (baseline) for (const impl of ['local', 'keyproc'] as const) servers.push(await startServer(impl, site, {}, serverNode, baseline));
      // The same version, suite and group for every server, or the rows compare different work.
      const p = await Promise.all(servers.map((s) => probe(s, TLS13)));
      console.log(`\n${site.label}: TLS 1.3 probe per server: ${p.map((r, i) => `${servers[i].name} ${String(r.suite)} ${String(r.tickets)} ticket(s)`).join('; ')}`);
      if (sections.has('tls13')) await guarded(`TLS 1.3 ${site.label}`, async () => {
        const row = await handshakeRow(`TLS 1.3 full handshake, ${site.label}, x25519, AES-128-GCM`, servers, goLoad(TLS13));
        hsTargets(row, `TLS 1.3 ${site.label}`, 0.85);
        const n = medianRun(row.runs.get('node')!);
        const kp = medianRun(row.runs.get('keyproc')!);
        const local = medianRun(row.runs.get('local')!);
        const kd = medianRun(row.runs.get('keyd')!);
        // Front and key process share CPU 0: one core's capacity is 1e6 / (front + key process µs).
        targets.push({ what: `TLS 1.3 ${site.label}, front + key process on one core: hs/s per core`, ratio: n.frontUs / (kp.frontUs + kp.holderUs), goal: 0.75 });
        targets.push({ what: `TLS 1.3 ${site.label}, keyd front CPU/hs vs key in process`, ratio: local.frontUs / kd.frontUs, goal: 0.95 });
      });
      if (sections.has('tls12')) await guarded(`TLS 1.2 ${site.label}`, async () => {
        const cipher = site.type === 'rsa-2048' ? 'ECDHE-RSA-AES128-GCM-SHA256' : 'ECDHE-ECDSA-AES128-GCM-SHA256';
        const row = await handshakeRow(`TLS 1.2 full handshake, ${cipher}, ${site.label}, x25519`, servers, goLoad(tls12(cipher)));
        hsTargets(row, `TLS 1.2 ${cipher}`, 0.85);
      });
      if (sections.has('resumed')) await guarded(`resumed ${site.label}`, () => resumedRows(site, servers));
    } finally {
      for (const s of servers) await s.child.stop();
    }
  }
}

/**
 * TLS 1.2 resumed handshakes by OpenSSL's `s_time -reuse`, one connection at a time: Go
 * 1.19's client sends no extended_master_secret, and keyward keeps no TLS 1.2 session
 * without it (RFC 7627 5.3). Its CPU comes from bash's `times` (its children's).
 */
const stimeLoad =
  (cipher: string): RunFn =>
  async (s, runSeconds) => {
    const a0 = (await s.child.ask('stat')).secure as number;
    const f0 = procCpuMicros(s.child.pid);
    const t0 = performance.now();
    const out = await runText(LOAD_CORE, 'bash', ['-c', `openssl s_time -connect 127.0.0.1:${s.port} -reuse -time ${Math.max(1, Math.round(runSeconds))} -tls1_2 -cipher ${cipher}; times`], (runSeconds + 60) * 1000);
    const wall = (performance.now() - t0) / 1000;
    const f1 = procCpuMicros(s.child.pid);
    // The first connection of -reuse is a full handshake that makes the session.
    const hs = ((await s.child.ask('stat')).secure as number) - a0 - 1;
    const marks = /^[r*]+$/m.exec(out)?.[0] ?? '';
    const [user, sys] = [...(out.trim().split('\n').pop() ?? '').matchAll(/(\d+)m([\d.]+)s/g)].map((m) => (Number(m[1]) * 60 + Number(m[2])) * 1e6);
    if (hs <= 0 || marks.length === 0) throw new Error(`${s.label}: s_time made no connection`);
    return { rate: hs / wall, frontUs: (f1 - f0) / hs, holderUs: 0, genUs: (user + sys) / marks.length, p50: NaN, p99: NaN, errors: Math.abs(marks.length - hs), resumedShare: [...marks].filter((c) => c === 'r').length / marks.length };
  };

/** Resumed handshakes: measured when every server resumes (a probe offers each the session it gave). */
async function resumedRows(site: SiteKey, servers: Server[]): Promise<void> {
  const rowServers = servers.filter((s) => s.impl === 'node' || s.impl === 'local' || s.impl === 'keyproc');
  const cipher = site.type === 'rsa-2048' ? 'ECDHE-RSA-AES128-GCM-SHA256' : 'ECDHE-ECDSA-AES128-GCM-SHA256';
  const probes = await Promise.all(rowServers.map((s) => probe(s, TLS13)));
  const declining = rowServers.filter((_, i) => probes[i].resumes !== true);
  if (declining.length > 0) {
    console.log(`\nTLS 1.3 resumed handshake, ${site.label}: NOT MEASURED: ${declining.map((s) => s.label).join(', ')} did not resume in the probe (tickets given: ${probes.map((p, i) => `${rowServers[i].name} ${String(p.tickets)}`).join(', ')})`);
  } else {
    const row = await handshakeRow(`TLS 1.3 resumed handshake (psk_dhe_ke), ${site.label}, x25519; ${concurrency} in flight`, rowServers, goLoad([...TLS13, '-resume']));
    hsTargets(row, `TLS 1.3 resumed ${site.label}`, 1.0);
  }
  const row = await handshakeRow(`TLS 1.2 resumed handshake (openssl s_time -reuse, one at a time), ${cipher}, ${site.label}`, rowServers, stimeLoad(cipher));
  for (const [name, rs] of row.runs) if (medianRun(rs).resumedShare < 0.99) console.log(`  ${rowServers.find((s) => s.name === name)?.label ?? name}: only ${f(medianRun(rs).resumedShare * 100)}% resumed`);
  hsTargets(row, `TLS 1.2 resumed ${site.label}`, 1.0);
}

/** X25519MLKEM768 vs x25519 on Node 24 (node:crypto's ML-KEM; Node 20's node:tls has no hybrid). */
async function hybridSection(site: SiteKey): Promise<void> {
  const node24 = execFileSync('bash', [join(root, 'scripts', 'node24.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  const groups = { groups: ['X25519MLKEM768', 'x25519'] };
  const servers = [await startServer('node', site, groups, node24), await startServer('local', site, groups, node24)];
  try {
    const rows: Record<string, Map<string, HsRun[]>> = {};
    const version = execFileSync(node24, ['--version'], { encoding: 'utf8' }).trim();
    for (const group of ['X25519MLKEM768', 'X25519']) {
      // The Go 1.19 load generator has no X25519MLKEM768: a node:tls client on Node 24 offers one group.
      const run: RunFn = async (s, secs) => {
        const a0 = (await s.child.ask('stat')).secure as number;
        const f0 = procCpuMicros(s.child.pid);
        const g = await runJson(LOAD_CORE, node24, [join(here, 'benchLoad.js'), 'handshakes', String(s.port), String(concurrency), String(secs), group], (secs + 60) * 1000);
        const f1 = procCpuMicros(s.child.pid);
        const hs = ((await s.child.ask('stat')).secure as number) - a0;
        return { rate: hs / (g.seconds as number), frontUs: (f1 - f0) / hs, holderUs: 0, genUs: (g.cpuUs as number) / (g.handshakes as number), p50: g.p50 as number, p99: g.p99 as number, errors: g.errors as number, resumedShare: 0 };
      };
      rows[group] = (await handshakeRow(`TLS 1.3 full handshake, ${site.label}, ${group}, servers on Node ${version} (load: node:tls client on Node 24)`, servers, run)).runs;
    }
    const premium = (impl: Impl): number => medianRun(rows.X25519MLKEM768.get(impl)!).frontUs - medianRun(rows.X25519.get(impl)!).frontUs;
    const signed = (n: number): string => `${n >= 0 ? '+' : ''}${f(n)}`;
    console.log(`  X25519MLKEM768 over x25519, server µs/hs: node:tls ${signed(premium('node'))}, keyward ${signed(premium('local'))}`);
    const n = medianRun(rows.X25519MLKEM768.get('node')!);
    targets.push({ what: `TLS 1.3 ${site.label} X25519MLKEM768 (Node 24), key in process: front CPU/hs`, ratio: n.frontUs / medianRun(rows.X25519MLKEM768.get('local')!).frontUs, goal: 0.85 });
  } finally {
    for (const s of servers) await s.child.stop();
  }
}

interface BulkRun {
  upMBps: number;
  downMBps: number;
  upUsPerMB: number;
  downUsPerMB: number;
  genUsPerMB: number;
}

async function bulkSection(site: SiteKey): Promise<void> {
  const servers = [await startServer('node', site), await startServer('local', site)];
  if (baseline) servers.push(await startServer('local', site, {}, serverNode, baseline));
  try {
    /** `transfers` connections of `mb` MiB up, then as many down; CPU per MiB over each direction's transfers. */
    const once = async (s: Server, mb: number, transfers: number): Promise<BulkRun> => {
      const dir = async (direction: 'up' | 'down'): Promise<{ mbps: number; us: number; gen: number }> => {
        const c0 = procCpuMicros(s.child.pid);
        let seconds = 0;
        let gen = 0;
        for (let i = 0; i < transfers; i++) {
          const r = await loadgen(['-mode', 'bulk', '-port', String(s.port), '-mb', String(mb), '-direction', direction]);
          seconds += (direction === 'up' ? r.uploadSeconds : r.downloadSeconds) as number;
          gen += (direction === 'up' ? r.uploadCpuUs : r.downloadCpuUs) as number;
        }
        return { mbps: (mb * transfers) / seconds, us: (procCpuMicros(s.child.pid) - c0) / (mb * transfers), gen: gen / (mb * transfers) };
      };
      const up = await dir('up');
      const down = await dir('down');
      return { upMBps: up.mbps, downMBps: down.mbps, upUsPerMB: up.us, downUsPerMB: down.us, genUsPerMB: (up.gen + down.gen) / 2 };
    };
    for (const s of servers) await once(s, 16, 1);
    const runs = new Map<string, BulkRun[]>(servers.map((s) => [s.name, []]));
    for (let r = 0; r < repeats; r++) for (let i = 0; i < servers.length; i++) runs.get(servers[(i + r) % servers.length].name)!.push(await once(servers[(i + r) % servers.length], bulkMB, bulkTransfers));
    console.log(`\nBulk, ${bulkMB} MiB each way over one connection, ${bulkTransfers} such connection(s) per direction and run (${site.label} certificate, TLS 1.3, AES-128-GCM); MB = MiB`);
    const w = Math.max(26, ...servers.map((s) => s.label.length));
    console.log(`  ${'server'.padEnd(w)}   up MB/s  down MB/s  up µs/MB (spread)   down µs/MB (spread)   up MB/s/core  down MB/s/core  load µs/MB`);
    const med = new Map<string, BulkRun>();
    for (const [impl, rs] of runs) {
      const m = {} as Record<keyof BulkRun, number>;
      for (const k of Object.keys(rs[0]) as (keyof BulkRun)[]) m[k] = median(rs.map((r) => r[k]));
      med.set(impl, m);
      const spread = (k: keyof BulkRun): string => (rs.length > 1 ? `(${f(Math.min(...rs.map((r) => r[k])))}–${f(Math.max(...rs.map((r) => r[k])))})` : '');
      console.log(
        `  ${servers.find((s) => s.name === impl)!.label.padEnd(w)} ${f(m.upMBps).padStart(8)} ${f(m.downMBps).padStart(10)} ${f(m.upUsPerMB).padStart(9)} ${spread('upUsPerMB').padStart(11)} ${f(m.downUsPerMB).padStart(9)} ${spread('downUsPerMB').padStart(13)} ${f(1e6 / m.upUsPerMB).padStart(13)} ${f(1e6 / m.downUsPerMB).padStart(15)} ${f(m.genUsPerMB).padStart(11)}`,
      );
    }
    const n = med.get('node')!;
    const k = med.get('local')!;
    console.log(`  ratio node:tls µs/MB / keyward µs/MB (= MB/s per server core; above 1: keyward cheaper): upload ${x(n.upUsPerMB / k.upUsPerMB)}, download ${x(n.downUsPerMB / k.downUsPerMB)}; wall MB/s upload ${x(k.upMBps / n.upMBps)}, download ${x(k.downMBps / n.downMBps)}`);
    printBaselineChange(med, (m) => [m.upUsPerMB, m.downUsPerMB], ['upload', 'download'], 'µs/MB');
    targets.push({ what: 'Bulk upload, MB/s per server core', ratio: n.upUsPerMB / k.upUsPerMB, goal: 0.85 });
    targets.push({ what: 'Bulk download, MB/s per server core', ratio: n.downUsPerMB / k.downUsPerMB, goal: 0.85 });
  } finally {
    for (const s of servers) await s.child.stop();
  }
}

const kb = (bytes: number): string => f(bytes / 1024, 1);

async function memorySection(site: SiteKey): Promise<void> {
  console.log(`\nMemory (${site.label}, TLS 1.3): whole-process RSS and V8 heap+external after a full GC, before and with the connections open, per connection`);
  console.log('  case                                        connections  RSS KiB/conn  heap+external KiB/conn  RSS before → with (MiB)');
  const idle: Record<string, number> = {};
  for (const impl of ['node', 'local'] as const) {
    const s = await startServer(impl, site);
    try {
      await loadgen(['-mode', 'handshakes', '-port', String(s.port), '-seconds', String(warmSeconds), ...TLS13]);
      const before = await s.child.ask('gc');
      const hold = startChild(LOAD_CORE, loadgenPath, ['-mode', 'hold', '-port', String(s.port), '-count', String(idleCount), '-inflight', '64', '-timeout', '30000', ...TLS13], 'loadgen hold');
      try {
        await hold.next(300_000);
        const est = await hold.next(300_000);
        await sleep(1000);
        const withConns = await s.child.ask('gc');
        const n = est.established as number;
        const rss = ((withConns.rss as number) - (before.rss as number)) / n;
        const heap = ((withConns.heapUsed as number) + (withConns.external as number) - (before.heapUsed as number) - (before.external as number)) / n;
        idle[impl] = rss;
        console.log(
          `  ${`idle established, ${IMPL_LABEL[impl]}`.padEnd(43)} ${String(n).padStart(11)} ${kb(rss).padStart(13)} ${kb(heap).padStart(23)}   ${f((before.rss as number) / 2 ** 20)} → ${f((withConns.rss as number) / 2 ** 20)}${est.errors ? `  (${String(est.errors)} failed: ${String(est.firstError)})` : ''}`,
        );
      } finally {
        await hold.stop();
      }
    } finally {
      await s.child.stop();
    }
  }
  targets.push({ what: 'Memory per idle established connection, keyward / node:tls (RSS)', ratio: idle.local / idle.node, goal: 1, atMost: true });

  // Pending: every signature waits 100 ms and then until all the handshakes are pending.
  const s = await startServer('local', site, { holdSignsMs: 100 });
  try {
    const before = await s.child.ask('gc');
    const hold = startChild(LOAD_CORE, loadgenPath, ['-mode', 'hold', '-port', String(s.port), '-count', String(pendingCount), '-inflight', String(pendingCount), '-rate', '2500', '-timeout', '120000', ...TLS13], 'loadgen hold');
    try {
      const deadline = Date.now() + 90_000;
      let pending = 0;
      while (Date.now() < deadline && pending < pendingCount) {
        await sleep(200);
        pending = (await s.child.ask('stat')).pending as number;
      }
      const during = await s.child.ask('gc');
      await s.child.ask('release');
      await hold.next(300_000);
      const est = await hold.next(300_000);
      const n = during.pending as number;
      const rss = ((during.rss as number) - (before.rss as number)) / n;
      const heap = ((during.heapUsed as number) + (during.external as number) - (before.heapUsed as number) - (before.external as number)) / n;
      console.log(
        `  ${'pending on a 100 ms key holder, keyward'.padEnd(43)} ${String(n).padStart(11)} ${kb(rss).padStart(13)} ${kb(heap).padStart(23)}   ${f((before.rss as number) / 2 ** 20)} → ${f((during.rss as number) / 2 ** 20)}  (then ${String(est.established)} completed)`,
      );
    } finally {
      await hold.stop();
    }
  } finally {
    await s.child.stop();
  }
}

async function keydSection(site: SiteKey): Promise<void> {
  // keyd alone on CPU 0 now, the signing client on CPU 1.
  execFileSync('taskset', ['-a', '-p', '-c', String(SERVER_CORE), String(keyd!.child.pid)], { stdio: 'ignore' });
  const runs = { keyd: [] as number[], client: [] as number[], bare: [] as number[], rate: [] as number[] };
  const secs = quick ? 1 : 3;
  for (let r = 0; r < repeats; r++) {
    const k0 = procCpuMicros(keyd!.child.pid);
    const c = await runJson(LOAD_CORE, serverNode, [join(here, 'signLoad.js'), 'keyd', `unix:${keyd!.socket}`, site.keyId, String(secs), '64'], 60_000);
    const k1 = procCpuMicros(keyd!.child.pid);
    runs.keyd.push((k1 - k0) / (c.signs as number));
    runs.client.push((c.cpuUs as number) / (c.signs as number));
    runs.rate.push((c.signs as number) / (c.seconds as number));
    const b = await runJson(SERVER_CORE, serverNode, [join(here, 'signLoad.js'), 'bare', site.key, String(secs)], 60_000);
    runs.bare.push((b.cpuUs as number) / (b.signs as number));
  }
  const k = median(runs.keyd);
  const b = median(runs.bare);
  console.log(`\nkeyd CPU per ${site.label} sign (TLS 1.3 CertificateVerify; keyd on CPU 0 with its sealed store and audit log, 64 in flight on one Unix-socket connection from CPU 1)`);
  console.log(`  keyd ${f(k, 1)} µs/sign (spread ${f(Math.min(...runs.keyd), 1)}–${f(Math.max(...runs.keyd), 1)}), ${f(median(runs.rate))} signs/s; its client ${f(median(runs.client), 1)} µs/sign`);
  console.log(`  bare crypto.sign loop on CPU 0: ${f(b, 1)} µs/sign (spread ${f(Math.min(...runs.bare), 1)}–${f(Math.max(...runs.bare), 1)}); keyd / bare ${x(k / b)}`);
  targets.push({ what: `keyd CPU per ${site.label} sign / bare crypto.sign`, ratio: k / b, goal: 2, atMost: true });
  execFileSync('taskset', ['-a', '-p', '-c', String(LOAD_CORE), String(keyd!.child.pid)], { stdio: 'ignore' });
}

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  const started = performance.now();
  if (cpus().length < 2) throw new Error('the bench pins the server to CPU 0 and the load to CPU 1: it needs 2 CPUs');
  loadgenPath = buildLoadgen();
  const dir = mkdtempSync(join(tmpdir(), 'keyward-bench-'));
  try {
    const serverVersion = execFileSync(serverNode, ['-p', '`${process.version} (OpenSSL ${process.versions.openssl})`'], { encoding: 'utf8' }).trim();
    console.log(`keyward vs node:tls, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC; servers on Node ${serverVersion}; ${cpus().length} × ${cpus()[0].model}`);
    console.log(`servers pinned to CPU ${SERVER_CORE} (a key process with its front), load generator (bench/loadgen, Go crypto/tls) pinned to CPU ${LOAD_CORE}; keyd on CPU ${LOAD_CORE}`);
    console.log(`${seconds} s runs, ${concurrency} handshakes in flight, median of ${repeats} alternating run(s)${quick ? ' (--quick)' : ''}; CPU = utime+stime from /proc/PID/stat (10 ms ticks); TCP_NODELAY ${noDelay ? 'on' : 'off (both servers\' default)'}`);
    console.log('primary figure: server CPU µs per operation; ratios are node:tls µs / keyward µs, so above 1 means keyward is cheaper');
    console.log(`load average at start: ${loadavg().map((l) => l.toFixed(2)).join(' ')} (other work on CPU 0 slows every server alike; CPU per operation moves less than hs/s)`);

    keyd = await startKeydWithSites(dir, serverNode, keyTypes);
    const sites = keyd.sites;
    const p256 = sites[0];

    if (sections.has('tls13') || sections.has('tls12') || sections.has('resumed')) await guarded('handshake rows', () => handshakeSections(sites));
    if (sections.has('hybrid')) await guarded('hybrid rows', () => hybridSection(p256));
    if (sections.has('bulk')) await guarded('bulk rows', () => bulkSection(p256));
    if (sections.has('memory')) await guarded('memory rows', () => memorySection(p256));
    if (sections.has('keyd')) await guarded('keyd sign row', () => keydSection(p256));

    if (targets.length > 0) {
      console.log('\nIssue 15 targets (ratios as above: node:tls µs / keyward µs unless marked ≤):');
      for (const t of targets) {
        const met = t.atMost ? t.ratio <= t.goal : t.ratio >= t.goal;
        console.log(`  ${t.what.padEnd(86)} ${x(t.ratio).padStart(6)}  goal ${t.atMost ? '≤' : '≥'} ${t.goal.toFixed(2)}x  ${met ? 'met' : 'MISSED'}`);
      }
    }
    if (failures.length > 0) console.log(`\nrows that FAILED (see above): ${failures.join(', ')}`);
    console.log(`\ntotal ${f((performance.now() - started) / 1000)} s; load average at end: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    await keyd?.child.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
