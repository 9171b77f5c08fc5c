/**
 * Cost of one key exchange per group on this Node, in µs of CPU per handshake:
 * the server's side (acceptKeyShare: check the client's share, make a key, agree) and the
 * client's side (offerKeyShare + complete). X25519MLKEM768 is measured on each ML-KEM
 * backend this Node has. Medians of `repeats` timed rounds, so a busy shared core moves a
 * round, not the result.
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

/** µs per call of `op`, as the median of `repeats` rounds of about `roundMs` each. */
function measure(op: () => void): number {
  for (let i = 0; i < 20; i++) op(); // warm the JIT and OpenSSL's tables
  const rounds: number[] = [];
  for (let r = 0; r < repeats; r++) {
    let n = 0;
    const start = process.hrtime.bigint();
    const end = start + BigInt(roundMs) * 1_000_000n;
    let now = start;
    while (now < end) {
      op();
      n++;
      now = process.hrtime.bigint();
    }
    rounds.push(Number(now - start) / 1000 / n);
  }
  return median(rounds);
}

interface Row {
  group: string;
  server: number;
  client: number;
}

function measureGroup(group: NamedGroup, fixed: FixedKeyShareInputs | undefined, label: string): Row {
  // A pool of client shares, so the server side times accept alone.
  const shares = Array.from({ length: 16 }, () => offerKeyShare(group, fixed).publicKey);
  let i = 0;
  const server = measure(() => {
    acceptKeyShare(group, shares[i++ % shares.length], fixed);
  });
  // The client side: offer + complete, minus the server's accept in between (timed apart).
  let clientNs = 0n;
  let calls = 0;
  measure(() => {
    const t0 = process.hrtime.bigint();
    const offer = offerKeyShare(group, fixed);
    const t1 = process.hrtime.bigint();
    const reply = acceptKeyShare(group, offer.publicKey, fixed).publicKey;
    const t2 = process.hrtime.bigint();
    offer.complete(reply);
    clientNs += t1 - t0 + (process.hrtime.bigint() - t2);
    calls++;
  });
  return { group: label, server, client: Number(clientNs) / 1000 / calls };
}

const rows: Row[] = [];
for (const spec of GROUPS) {
  if (process.env.BENCH_TRACE) console.error(`measuring ${spec.name}`);
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
