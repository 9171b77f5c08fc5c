/**
 * Cost of one key exchange per group on this Node, in µs of CPU per handshake:
 * the server's side (acceptKeyShare: check the client's share, make a key, agree) and the
 * client's side (offerKeyShare + complete). X25519MLKEM768 is measured on each ML-KEM
 * backend this Node has. CPU time (process.cpuUsage), not wall time, so other work on a
 * shared machine does not count; medians of `repeats` rounds.
 *
 *   npm run -s build && node dist/bench/groups.js [milliseconds per round] [repeats]
 */
import { GROUPS, NamedGroup, acceptKeyShare, groupName, offerKeyShare, recommendedGroupPreference, type FixedKeyShareInputs } from '../src/tls/crypto/groups.js';
import { nativeMlKem768, type MlKemBackend } from '../src/tls/crypto/mlkem.js';

const roundMs = Number(process.argv[2] ?? 300);
const repeats = Number(process.argv[3] ?? 5);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** CPU µs per call of `op`: the median of `repeats` rounds of about `roundMs` of CPU each. */
function measure(op: () => void): number {
  for (let i = 0; i < 20; i++) op(); // warm the JIT and OpenSSL's tables
  const rounds: number[] = [];
  for (let r = 0; r < repeats; r++) {
    let n = 0;
    const start = cpuMicros();
    let used = 0;
    while (used < roundMs * 1000) {
      op();
      n++;
      used = cpuMicros() - start;
    }
    rounds.push(used / n);
  }
  return median(rounds);
}

interface Row {
  group: string;
  server: number;
  client: number;
}

function measureGroup(group: NamedGroup, fixed: FixedKeyShareInputs | undefined, label: string): Row {
  process.stderr.write(`${label}...\n`);
  // A pool of client shares, so the server side times accept alone.
  const shares = Array.from({ length: 16 }, () => offerKeyShare(group, fixed).publicKey);
  let i = 0;
  const server = measure(() => {
    acceptKeyShare(group, shares[i++ % shares.length], fixed);
  });
  // A whole exchange, less the server's part: the client's offer + complete.
  const both = measure(() => {
    const offer = offerKeyShare(group, fixed);
    offer.complete(acceptKeyShare(group, offer.publicKey, fixed).publicKey);
  });
  return { group: label, server, client: both - server };
}

const rows: Row[] = [];
for (const spec of GROUPS) {
  if (spec.group === NamedGroup.X25519MLKEM768) {
    const backends: MlKemBackend[] = nativeMlKem768 ? ['node:crypto', '@noble/post-quantum'] : ['@noble/post-quantum'];
    for (const b of backends) rows.push(measureGroup(spec.group, { mlkemBackend: b }, `${spec.name} (${b})`));
  } else {
    rows.push(measureGroup(spec.group, undefined, spec.name));
  }
}

const w = Math.max(...rows.map((r) => r.group.length));
console.log(`Node ${process.version}, OpenSSL ${process.versions.openssl}, ML-KEM in node:crypto: ${nativeMlKem768 ? 'yes' : 'no'}`);
console.log(`${'group'.padEnd(w)}  server µs/hs  client µs/hs`);
for (const r of rows) console.log(`${r.group.padEnd(w)}  ${r.server.toFixed(0).padStart(12)}  ${r.client.toFixed(0).padStart(12)}`);
console.log(`recommended preference: ${recommendedGroupPreference().groups.map(groupName).join(', ')}`);
