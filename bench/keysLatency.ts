/**
 * Latency of lone handshakes against several servers, interleaved: one full handshake at
 * a time, taking the ports in turn (round robin, each round starting one port later), so
 * that drift of a shared machine, and any advantage of a place in the round, hits every
 * server alike. The client is node:tls, as in benchLoad. Prints one JSON line:
 * per port p50/p99 (ms), and per port the median of the paired differences to the first
 * port (each round's handshake minus the same round's handshake with port 0).
 *
 *   node dist/bench/keysLatency.js SECONDS PORT0 PORT1 ...
 */
import tls from 'node:tls';
import { median, pct } from './keysProc.js';

const [secondsArg, ...portArgs] = process.argv.slice(2);
const seconds = Number(secondsArg);
const ports = portArgs.map(Number);

function handshake(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const s = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, minVersion: 'TLSv1.3', ecdhCurve: 'X25519', servername: 'localhost' }, () => {
      const ms = performance.now() - t0;
      // end(), not destroy(): the server must get the client Finished to count a full handshake.
      s.end();
      resolve(ms);
    });
    s.once('error', reject);
  });
}

const times: number[][] = ports.map(() => []);
const rounds: number[][] = [];
let errors = 0;
const end = performance.now() + seconds * 1000;
let k = 0;
while (performance.now() < end) {
  const round: number[] = new Array<number>(ports.length).fill(NaN);
  // Each round starts at the next port: no server always goes first (or right after another).
  for (let n = 0; n < ports.length; n++) {
    const i = (k + n) % ports.length;
    try {
      const ms = await handshake(ports[i]);
      times[i].push(ms);
      round[i] = ms;
    } catch {
      errors++;
    }
  }
  k++;
  if (round.every(Number.isFinite)) rounds.push(round);
}
const out = ports.map((port, i) => {
  const sorted = [...times[i]].sort((a, b) => a - b);
  return { port, n: sorted.length, p50: pct(sorted, 0.5), p99: pct(sorted, 0.99), pairedAdded: median(rounds.map((r) => r[i] - r[0])) };
});
process.stdout.write(JSON.stringify({ errors, ports: out }) + '\n');
