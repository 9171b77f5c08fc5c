/**
 * Reads a V8 CPU profile (.cpuprofile, as `node --cpu-prof` or the inspector writes it) and
 * says where the time went per operation: by kind (keyward's JavaScript, Node's own
 * JavaScript, native calls, GC, V8 outside JavaScript), by module, the top functions by
 * self time and keyward's functions by inclusive time.
 *
 *   node dist/bench/profileSummary.js FILE.cpuprofile OPS [UNIT]
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

/** The Profiler.stop result / .cpuprofile format (times in µs). */
export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Where a frame's code lives: src/…ts for keyward, node:… for Node's JavaScript, (native) for bindings. */
export function moduleOf(cf: CallFrame): string {
  if (cf.url === '') return cf.functionName.startsWith('(') ? cf.functionName : '(native)';
  const src = /\/dist\/(src|bench)\/(.*)\.js$/.exec(cf.url);
  if (src) return `${src[1]}/${src[2]}.ts`;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(cf.url);
  if (pkg) return pkg[1];
  return cf.url;
}

function kindOf(cf: CallFrame): string {
  if (cf.functionName === '(garbage collector)') return 'GC';
  if (cf.functionName === '(program)') return 'V8 and native code outside any JS frame (program)';
  if (cf.url === '') return 'native calls from JS (crypto, sockets, buffers)';
  const m = moduleOf(cf);
  if (m.startsWith('src/')) return 'keyward JavaScript';
  if (m.startsWith('node:')) return 'Node JavaScript (streams, net, crypto wrappers)';
  return 'other JavaScript';
}

const label = (cf: CallFrame): string => `${cf.functionName || '(anonymous)'} ${moduleOf(cf)}${cf.url ? `:${cf.lineNumber + 1}` : ''}`;

/** A native call is named with its JavaScript caller: "run (native) ← signOneShot node:internal/crypto/sig:…". */
function selfLabel(node: ProfileNode, caller: ProfileNode | undefined): string {
  if (node.callFrame.url !== '' || node.callFrame.functionName.startsWith('(') || !caller) return label(node.callFrame);
  return `${label(node.callFrame)} ← ${label(caller.callFrame)}`;
}

/** Lines of a report, every time in µs per operation. */
export function summarize(profile: CpuProfile, ops: number, unit: string, top = 10): string[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  // Sample i covers the time up to sample i+1 (the last one gets the mean).
  const n = profile.samples.length;
  let idle = 0;
  let busy = 0;
  const inclusive = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const dt = i + 1 < n ? profile.timeDeltas[i + 1] : (profile.endTime - profile.startTime) / Math.max(1, n);
    const id = profile.samples[i];
    const cf = byId.get(id)!.callFrame;
    if (cf.functionName === '(idle)') {
      idle += dt;
      continue;
    }
    busy += dt;
    self.set(id, (self.get(id) ?? 0) + dt);
    // Inclusive time of keyward's functions, each counted once per sample (recursion).
    const seen = new Set<string>();
    for (let p: number | undefined = id; p !== undefined; p = parent.get(p)) {
      const f = byId.get(p)!.callFrame;
      if (!moduleOf(f).startsWith('src/')) continue;
      const key = label(f);
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + dt);
    }
  }
  const per = (us: number): string => (us / ops).toFixed(1).padStart(8);
  const pc = (us: number): string => `${((100 * us) / busy).toFixed(1).padStart(5)}%`;
  const group = (key: (cf: CallFrame, id: number) => string): [string, number][] => {
    const m = new Map<string, number>();
    for (const [id, us] of self) {
      const k = key(byId.get(id)!.callFrame, id);
      m.set(k, (m.get(k) ?? 0) + us);
    }
    return [...m].sort((a, b) => b[1] - a[1]);
  };
  const out: string[] = [];
  out.push(`  main thread sampled: ${(busy / 1000).toFixed(0)} ms busy, ${(idle / 1000).toFixed(0)} ms idle, over ${ops} ${unit}: ${(busy / ops).toFixed(1)} µs/${unit} on the JS thread`);
  out.push(`  by kind (µs/${unit}, share of busy):`);
  for (const [k, us] of group(kindOf)) out.push(`    ${per(us)} ${pc(us)}  ${k}`);
  out.push(`  top ${top} functions by self time:`);
  const selfByFn = group((_cf, id) => {
    const p = parent.get(id);
    return selfLabel(byId.get(id)!, p === undefined ? undefined : byId.get(p));
  });
  for (const [k, us] of selfByFn.slice(0, top)) out.push(`    ${per(us)} ${pc(us)}  ${k}`);
  out.push('  modules by self time:');
  for (const [k, us] of group(moduleOf).slice(0, 14)) out.push(`    ${per(us)} ${pc(us)}  ${k}`);
  out.push(`  keyward functions by inclusive time (their callees included):`);
  for (const [k, us] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, 16)) out.push(`    ${per(us)} ${pc(us)}  ${k}`);
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [file, ops, unit = 'op'] = process.argv.slice(2);
  if (!file || !ops) {
    process.stderr.write('usage: profileSummary.js FILE.cpuprofile OPS [UNIT]\n');
    process.exit(2);
  }
  console.log(summarize(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, Number(ops), unit).join('\n'));
}
