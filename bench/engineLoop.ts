/**
 * The sans-IO engine's own CPU per server handshake, without sockets, streams or a second
 * process: a keyward client engine and a server engine exchange bytes in memory, and only
 * the server's calls (receive, takeOutput, takeEvents, the in-process key's signature,
 * completeKeyOperation) are timed. Far less noisy than `npm run bench` on a shared machine,
 * so it is the figure to compare engine changes with; `npm run bench` says what they are
 * worth to a front. ECDSA P-256 certificate, x25519, AES-128-GCM, two tickets.
 *
 *   node dist/bench/engineLoop.js [tls13|tls12|resumed|all] [handshakes-per-round] [rounds]
 *
 * Prints the median µs per server handshake and the spread of the rounds: the process's CPU
 * time (all threads, getrusage) during the server's calls, so time the process spends
 * preempted on a shared machine does not count; garbage collection that lands in them does.
 */
import { createCa, issueCertificate } from '../src/cli/pki.js';
import { LocalKey } from '../src/keys/localKey.js';
import { CipherSuite } from '../src/tls/crypto/cipherSuites.js';
import { NamedGroup } from '../src/tls/crypto/groups.js';
import type { ClientSession } from '../src/tls/resumption/clientSession.js';
import { TicketKeyRing } from '../src/tls/resumption/ticketKeys.js';
import { certifiedKey } from '../src/tls/engine/certificates.js';
import { resolveClientConfig, type ClientConfigInput } from '../src/tls/engine/clientConfig.js';
import { TlsClientConnection } from '../src/tls/engine/clientConnection.js';
import { resolveServerConfig, type ServerConfig } from '../src/tls/engine/config.js';
import type { EngineEvent } from '../src/tls/engine/events.js';
import { TlsServerConnection } from '../src/tls/engine/serverConnection.js';

const which = process.argv[2] ?? 'all';
const perRound = Number(process.argv[3] ?? 2000);
const rounds = Number(process.argv[4] ?? 7);

/** The server's side of one step, timed: everything the Node driver would call on the engine. */
function serverStep(s: TlsServerConnection, input: Uint8Array[], clock: { t: number }): Uint8Array[] {
  const t0 = process.cpuUsage();
  for (const b of input) s.receive(b);
  const out: Uint8Array[] = [];
  for (;;) {
    out.push(...s.takeOutput());
    const ev = s.takeEvents();
    if (ev.length === 0) break;
    for (const e of ev) {
      if (e.type === 'error') throw e.error;
      if (e.type !== 'keyOperation' || e.request.kind !== 'sign') continue;
      const r = e.request;
      // What the Node driver does for an EC LocalKey: sign on the spot.
      s.completeKeyOperation(r.id, (r.key as LocalKey).signBlocking(r.scheme, r.message, r.context));
    }
  }
  const t = process.cpuUsage(t0);
  clock.t += t.user + t.system;
  return out;
}

function clientStep(c: TlsClientConnection, input: Uint8Array[], sessions: ClientSession[]): { out: Uint8Array[]; done: boolean } {
  for (const b of input) c.receive(b);
  let done = false;
  const out: Uint8Array[] = [];
  for (;;) {
    out.push(...c.takeOutput());
    const ev: EngineEvent[] = c.takeEvents();
    if (ev.length === 0) break;
    for (const e of ev) {
      if (e.type === 'error') throw e.error;
      if (e.type === 'handshakeComplete') done = true;
      if (e.type === 'session') sessions.push(e.session);
      // The client is not measured: the server's chain is taken as is.
      if (e.type === 'verifyPeer') c.completePeerVerification(e.request.id, { ok: true });
    }
  }
  return { out, done };
}

/** One handshake; returns a session the client got (for the resumed rows). */
function handshake(server: ServerConfig, client: ClientConfigInput, clock: { t: number }): ClientSession | undefined {
  const sessions: ClientSession[] = [];
  const c = new TlsClientConnection(resolveClientConfig(client));
  const s = new TlsServerConnection(server);
  let toServer = c.takeOutput();
  for (let i = 0; i < 10; i++) {
    const toClient = serverStep(s, toServer, clock);
    const r = clientStep(c, toClient, sessions);
    toServer = r.out;
    if (r.done && toServer.length === 0) break;
  }
  if (!c.isConnected || !s.isConnected) throw new Error('handshake did not complete');
  // The tickets that follow the server's last flight.
  clientStep(c, serverStep(s, [], clock), sessions);
  return sessions[0];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main(): Promise<void> {
  const ca = await createCa();
  const leaf = await issueCertificate(ca, { keyType: 'ecdsa-p256', commonName: 'localhost', dnsNames: ['localhost'], usage: 'server' });
  const server = resolveServerConfig({ certificates: [certifiedKey(leaf.chainPem, new LocalKey(leaf.keyPem))], groups: [NamedGroup.x25519, NamedGroup.secp256r1], ticketKeys: new TicketKeyRing() });
  const base: ClientConfigInput = { serverName: 'localhost', groups: [NamedGroup.x25519, NamedGroup.secp256r1] };
  const rows: Record<string, () => ClientConfigInput> = {
    tls13: () => ({ ...base, minVersion: 'TLSv1.3', tls13CipherSuites: [CipherSuite.TLS_AES_128_GCM_SHA256] }),
    tls12: () => ({ ...base, maxVersion: 'TLSv1.2', tls12CipherSuites: [CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256] }),
    resumed: () => {
      const session = handshake(server, rows.tls13(), { t: 0 });
      if (!session) throw new Error('no ticket');
      return { ...rows.tls13(), session };
    },
  };
  for (const name of which === 'all' ? Object.keys(rows) : which.split(',')) {
    if (!rows[name]) throw new Error(`unknown row ${name} (${Object.keys(rows).join(' ')})`);
    const results: number[] = [];
    // Round 0 warms V8 up and is not counted.
    for (let r = 0; r <= rounds; r++) {
      const clock = { t: 0 };
      const client = rows[name]();
      for (let i = 0; i < perRound; i++) handshake(server, client, clock);
      if (r > 0) results.push(clock.t / perRound);
    }
    const sorted = [...results].sort((a, b) => a - b);
    console.log(`${name.padEnd(8)} ${median(results).toFixed(1).padStart(7)} µs per server handshake (rounds ${sorted[0].toFixed(1)}–${sorted[sorted.length - 1].toFixed(1)}, ${rounds} x ${perRound})`);
  }
}

await main();
