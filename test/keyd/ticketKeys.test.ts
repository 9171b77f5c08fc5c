/**
 * keyd-served session ticket keys: keyd makes and rotates them (the next one a period
 * ahead), keeps them sealed in its store, serves them over mutual TLS to fronts whose rule
 * says `ticketKeys` and audits every fetch by key name; a front's TicketKeyFetcher installs
 * them into a TicketKeyRing, so two fronts open each other's tickets, and keeps the last
 * set while keyd is restarted or killed.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseKeydConfig } from '../../src/keyd/config.js';
import { SealedStore } from '../../src/keyd/store.js';
import { TicketKeyKeeper } from '../../src/keyd/ticketKeys.js';
import { KeyOperationError } from '../../src/keys/keyOperations.js';
import { KeydClient } from '../../src/keys/remoteKey.js';
import { TicketKeyFetcher } from '../../src/keys/ticketKeyFetcher.js';
import { TicketKeyRing } from '../../src/tls/resumption/ticketKeys.js';
import { freePort } from '../proxy/harness.js';
import {
  TEST_PASSPHRASE,
  TEST_SCRYPT,
  fetchText,
  keydConfigJson,
  makeKeydPki,
  metricValue,
  readAudit,
  spawnKeyd,
  startTestKeyd,
  tempDir,
  tlsClientOptions,
  writeKeydConfig,
  type KeydPki,
} from '../support/keydFixture.js';

const MIN = 60_000;

/** Every file under `dir`, recursively. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else out.push(p);
  }
  return out;
}

/** The forms key bytes could take in a text file: raw, hex, base64. */
function forms(secret: Uint8Array): Buffer[] {
  const b = Buffer.from(secret);
  return [b, Buffer.from(b.toString('hex')), Buffer.from(b.toString('base64')), Buffer.from(b.toString('base64').slice(0, 24))];
}

/** Asserts that no file under `dir` (nor `extra`) holds any form of any of `secrets`. */
async function assertNowhere(dir: string, secrets: readonly Uint8Array[], extra: string[] = []): Promise<void> {
  const files = [...(await filesUnder(dir)), ...extra];
  assert.ok(files.length > 0);
  for (const f of files) {
    const data = await readFile(f);
    for (const s of secrets) for (const form of forms(s)) assert.equal(data.indexOf(form), -1, `${f} holds a ticket key`);
  }
}

/** A copy of the fetched secrets (the answer's own bytes are views of the frame). */
async function fetchRaw(client: KeydClient): Promise<{ names: string[]; secrets: Buffer[]; createdAt: number[]; nextRotationMs: number; rotateEveryMs: number; ticketLifetimeSeconds: number }> {
  const r = await client.ticketKeys();
  return {
    names: r.keys.map((k) => Buffer.from(k.name).toString('hex')),
    secrets: r.keys.map((k) => Buffer.from(k.secret)),
    createdAt: r.keys.map((k) => k.createdAt),
    nextRotationMs: r.nextRotationMs,
    rotateEveryMs: r.rotateEveryMs,
    ticketLifetimeSeconds: r.ticketLifetimeSeconds,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

describe('the ticket key keeper (clock injected)', () => {
  test('makes the current and the next key, rotates on time, retires a key once its tickets are dead, restarts from the store', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const store = await SealedStore.create(join(dir, 'store'), { type: 'passphrase', passphrase: TEST_PASSPHRASE }, { scrypt: TEST_SCRYPT });
      let now = 1_000_000_000_000;
      const rotations: { made: string[]; removed: string[] }[] = [];
      const settings = { rotateMs: 10 * MIN, lifetimeSeconds: 20 * 60 };
      const keeper = new TicketKeyKeeper(store, settings, { now: () => now, onRotated: (r) => rotations.push(r) });
      await keeper.update();
      let s = keeper.served();
      assert.equal(s.keys.length, 2);
      const [k1, k2] = s.keys;
      assert.equal(k1.createdAt, now, 'the sealing key starts now');
      assert.equal(k2.createdAt, now + 10 * MIN, 'the next key is made a period ahead');
      assert.equal(s.nextRotationMs, 10 * MIN);
      assert.deepEqual([...rotations], [{ made: [k1.name.toString('hex'), k2.name.toString('hex')], removed: [] }]);

      // Nothing to do before the next key's period.
      now += 9 * MIN;
      await keeper.update();
      assert.equal(rotations.length, 1);
      assert.equal(keeper.served().nextRotationMs, MIN);

      // The next key seals; a new next is made; the old one is still accepted (after the sealing one).
      now += MIN;
      await keeper.update();
      s = keeper.served();
      assert.deepEqual(
        s.keys.map((k) => k.name),
        [k2.name, k1.name, s.keys[2].name],
      );
      assert.equal(s.keys[2].createdAt, k2.createdAt + 10 * MIN);
      assert.equal(rotations.length, 2);

      // k1 sealed until +10 min; its tickets live 20 min more: gone at +30 min, not before.
      now = k1.createdAt + 30 * MIN - 1;
      await keeper.update();
      assert.ok(keeper.served().keys.some((k) => k.name.equals(k1.name)));
      now += 1;
      await keeper.update();
      assert.ok(!keeper.served().keys.some((k) => k.name.equals(k1.name)));
      assert.ok(rotations.at(-1)!.removed.includes(k1.name.toString('hex')));
      assert.ok(!(await readdir(join(dir, 'store', 'ticket-keys'))).includes(`${k1.name.toString('hex')}.json`), 'its sealed file is deleted');

      // A restart reads the same keys back from the store.
      const names: string[] = keeper.served().keys.map((k) => k.name.toString('hex'));
      store.close();
      const reopened = await SealedStore.open(join(dir, 'store'), { type: 'passphrase', passphrase: TEST_PASSPHRASE });
      const again = new TicketKeyKeeper(reopened, settings, { now: () => now });
      await again.update();
      assert.deepEqual(
        again.served().keys.map((k) => k.name.toString('hex')),
        names,
      );

      // After an outage longer than a period and the lifetime, keyd starts over from now.
      now += 2 * 60 * MIN;
      await again.update();
      s = again.served();
      assert.equal(s.keys.length, 2);
      assert.equal(s.keys[0].createdAt, now);
      assert.ok(!s.keys.some((k) => names.includes(k.name.toString('hex'))));
      reopened.close();
    } finally {
      await cleanup();
    }
  });

  test('a sealed ticket key file that was edited makes the store refuse to open, naming it', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const store = await SealedStore.create(join(dir, 'store'), { type: 'passphrase', passphrase: TEST_PASSPHRASE }, { scrypt: TEST_SCRYPT });
      const keeper = new TicketKeyKeeper(store, { rotateMs: MIN, lifetimeSeconds: 60 });
      await keeper.update();
      store.close();
      const [file] = await readdir(join(dir, 'store', 'ticket-keys'));
      const path = join(dir, 'store', 'ticket-keys', file);
      const json = JSON.parse(await readFile(path, 'utf8')) as { createdAt: number };
      json.createdAt += 1;
      const { writeFile } = await import('node:fs/promises');
      await writeFile(path, JSON.stringify(json));
      await assert.rejects(SealedStore.open(join(dir, 'store'), { type: 'passphrase', passphrase: TEST_PASSPHRASE }), (e: Error) => e.message.includes(path) && /authentication failed/.test(e.message));
    } finally {
      await cleanup();
    }
  });
});

describe('keyd.json ticketKeys', () => {
  const base = (extra: Record<string, unknown>) => keydConfigJson('/tmp/x', undefined, { listen: { unix: '/tmp/x/keyd.sock' }, ...extra });
  test('on when a rule grants it, with defaults; a section no rule uses and bad values are errors', () => {
    assert.equal(parseKeydConfig(base({}), '/tmp/x').ticketKeys, undefined);
    const granted = { clients: [{ id: 'cn:front', keys: ['*'], ticketKeys: true }] };
    assert.deepEqual(parseKeydConfig(base(granted), '/tmp/x').ticketKeys, { rotateMs: 3_600_000, lifetimeSeconds: 7200 });
    assert.deepEqual(parseKeydConfig(base({ ...granted, ticketKeys: { rotateSeconds: 600, ticketLifetimeSeconds: 3600 } }), '/tmp/x').ticketKeys, { rotateMs: 600_000, lifetimeSeconds: 3600 });
    assert.throws(() => parseKeydConfig(base({ ticketKeys: { rotateSeconds: 600 } }), '/tmp/x'), /ticketKeys: no client rule has "ticketKeys": true/);
    assert.throws(() => parseKeydConfig(base({ ...granted, ticketKeys: { rotateSeconds: 1 } }), '/tmp/x'), /ticketKeys.rotateSeconds: expected an integer from 2/);
    assert.throws(() => parseKeydConfig(base({ ...granted, ticketKeys: { ticketLifetimeSeconds: 604_801 } }), '/tmp/x'), /ticketKeys.ticketLifetimeSeconds/);
    assert.throws(() => parseKeydConfig(base({ ...granted, ticketKeys: { rotate: 5 } }), '/tmp/x'), /ticketKeys.rotate: unknown setting/);
    assert.throws(() => parseKeydConfig(base({ clients: [{ id: 'cn:front', keys: ['*'], ticketKeys: 'yes' }] }), '/tmp/x'), /clients\[0\].ticketKeys: expected true or false/);
  });
});

describe('keyd serves ticket keys to authorized fronts', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let pki: KeydPki;
  let keyd: Awaited<ReturnType<typeof startTestKeyd>>;
  const clients: KeydClient[] = [];
  const ROTATE_S = 3;

  before(async () => {
    ({ dir, cleanup } = await tempDir());
    pki = await makeKeydPki(dir, ['front', 'front-b', 'other', 'admin']);
    keyd = await startTestKeyd(dir, pki, {
      ticketKeys: { rotateSeconds: ROTATE_S, ticketLifetimeSeconds: 2 },
      clients: [
        { id: 'cn:front', keys: ['*'], ticketKeys: true },
        { id: 'cn:front-b', keys: ['*'], ticketKeys: true },
        { id: 'cn:other', keys: ['*'] },
        { id: 'unix', keys: ['*'], ticketKeys: true },
      ],
    });
  });
  after(async () => {
    for (const c of clients) c.close();
    await keyd.keyd.close();
    await cleanup();
  });

  async function client(name: string): Promise<KeydClient> {
    const c = await KeydClient.connect(tlsClientOptions(pki, name, keyd.keyd.tlsAddress!));
    clients.push(c);
    return c;
  }

  test('a fetch gets the sealing key first and the next one, audited by name and counted; the bytes are nowhere on disk or in logs', async () => {
    const c = await client('front');
    const r = await fetchRaw(c);
    assert.equal(r.rotateEveryMs, ROTATE_S * 1000);
    assert.equal(r.ticketLifetimeSeconds, 2);
    assert.ok(r.names.length >= 2);
    assert.ok(r.createdAt[0] <= Date.now() && r.createdAt[r.createdAt.length - 1] > Date.now(), 'sealing key begun, next key ahead');
    assert.ok(r.nextRotationMs > 0 && r.nextRotationMs <= ROTATE_S * 1000);
    for (const s of r.secrets) assert.equal(s.length, 32);
    assert.equal(new Set(r.secrets.map((s) => s.toString('hex'))).size, r.secrets.length);

    const audit = await readAudit(join(dir, 'audit.log'));
    const line = audit.filter((l) => l.op === 'ticket-keys').at(-1);
    assert.ok(line, 'the fetch is audited');
    assert.equal(line.client, 'cn:front');
    assert.equal(line.outcome, 'ok');
    assert.equal(line.ticketKeys, r.names.join(','));
    assert.ok(audit.some((l) => l.op === 'ticket-key-rotate' && typeof l.ticketKeys === 'string'), 'the keys keyd made are audited by name');

    const m = await fetchText(`http://127.0.0.1:${keyd.keyd.metricsAddress!.port}/metrics`);
    assert.ok(metricValue(m.text, 'keyd_operations_total', { op: 'ticket-keys', outcome: 'ok' }) >= 1);
    assert.ok(metricValue(m.text, 'keyd_ticket_key_rotations_total') >= 1);
    assert.ok(!/ticket.*[0-9a-f]{64}/.test(m.text));

    // The store seals them: no file under it, nor the audit log, holds their bytes in any form.
    const keydLog = join(dir, 'keyd-log.json');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(keydLog, JSON.stringify(keyd.logs.lines));
    await assertNowhere(join(dir, 'store'), r.secrets, [join(dir, 'audit.log'), keydLog]);
    assert.ok((await stat(join(dir, 'store', 'ticket-keys'))).isDirectory());
    assert.equal((await stat(join(dir, 'store', 'ticket-keys'))).mode & 0o077, 0);
  });

  test('a front whose rule lacks ticketKeys is refused and audited; so is the Unix socket whatever its rule says', async () => {
    const c = await client('other');
    await assert.rejects(c.ticketKeys(), (e: unknown) => e instanceof KeyOperationError && e.code === 'refused' && /lacks "ticketKeys": true/.test(e.message));
    const unix = await KeydClient.connect({ addresses: [`unix:${keyd.keyd.unixPath!}`] });
    clients.push(unix);
    await assert.rejects(unix.ticketKeys(), (e: unknown) => e instanceof KeyOperationError && e.code === 'refused' && /mutual TLS only/.test(e.message));
    const audit = await readAudit(join(dir, 'audit.log'));
    assert.ok(audit.some((l) => l.op === 'ticket-keys' && l.client === 'cn:other' && l.outcome === 'refused' && l.ticketKeys === undefined));
    assert.ok(audit.some((l) => l.op === 'ticket-keys' && l.client === 'unix' && l.outcome === 'refused'));
    const m = await fetchText(`http://127.0.0.1:${keyd.keyd.metricsAddress!.port}/metrics`);
    assert.ok(metricValue(m.text, 'keyd_operations_total', { op: 'ticket-keys', outcome: 'refused' }) >= 2);
    assert.ok(keyd.logs.lines.some((l) => l.msg === 'request refused' && l.op === 'ticket-keys' && l.client === 'cn:other'));
  });

  test('two fronts open each other\'s tickets; keyd rotates and the fetchers follow, old tickets still open', async () => {
    const a = await TicketKeyFetcher.start({ client: await client('front'), maxJitterMs: 200 });
    const b = await TicketKeyFetcher.start({ client: await client('front-b'), maxJitterMs: 200 });
    try {
      assert.deepEqual(a.ring.keyNames(), b.ring.keyNames());
      const fromA = a.ring.seal(Buffer.from('session sealed by front A'));
      const fromB = b.ring.seal(Buffer.from('session sealed by front B'));
      assert.equal(b.ring.open(fromA)?.plaintext.toString(), 'session sealed by front A');
      assert.equal(a.ring.open(fromB)?.plaintext.toString(), 'session sealed by front B');
      assert.equal(b.ring.open(fromA)?.currentKey, true);
      // A ring of another fleet (its own keys) opens neither.
      assert.equal(new TicketKeyRing().open(fromA), null);

      const before = a.ring.keyNames();
      const next = before[before.length - 1];
      // After keyd's next rotation and the fetchers' jitter both seal with what was "next".
      const until = Date.now() + ROTATE_S * 1000 + 5_000;
      const settled = (): boolean => a.ring.keyNames()[0] === next && a.ring.keyNames().length === 3 && a.ring.keyNames().join() === b.ring.keyNames().join();
      while (!settled() && Date.now() < until) await sleep(100);
      assert.equal(a.ring.keyNames()[0], next, 'the pre-published key now seals');
      assert.equal(a.ring.keyNames().length, 3, 'sealing, the one before, and a new next key');
      assert.deepEqual(a.ring.keyNames(), b.ring.keyNames());
      assert.ok(a.stats.fetches >= 2 && b.stats.fetches >= 2);
      const afterRotation = a.ring.seal(Buffer.from('after'));
      assert.equal(b.ring.open(afterRotation)?.plaintext.toString(), 'after');
      // The ticket sealed before the rotation still opens, and asks to be reissued.
      assert.deepEqual(b.ring.open(fromA), { plaintext: Buffer.from('session sealed by front A'), currentKey: false });
    } finally {
      a.close();
      b.close();
    }
  });
});

describe('the fetcher across keyd restarts (real keyd process)', () => {
  test('keeps the last keys while keyd is down (SIGTERM, then kill -9), and picks up the same sealed keys when it is back', async () => {
    const { dir, cleanup } = await tempDir();
    const pki = await makeKeydPki(dir, ['front', 'front-b']);
    const port = await freePort();
    const config = await writeKeydConfig(
      dir,
      keydConfigJson(dir, pki, {
        listen: { tls: `127.0.0.1:${port}` },
        metrics: undefined,
        ticketKeys: { rotateSeconds: 3600, ticketLifetimeSeconds: 7200 },
        clients: [
          { id: 'cn:front', keys: ['*'], ticketKeys: true },
          { id: 'cn:front-b', keys: ['*'], ticketKeys: true },
        ],
      }),
    );
    let keyd = await spawnKeyd(config);
    const logs: string[] = [];
    const client = await KeydClient.connect({ ...tlsClientOptions(pki, 'front', `tls://127.0.0.1:${port}`), backoff: { initialMs: 50, maxMs: 200 } });
    const fetcher = await TicketKeyFetcher.start({ client, log: (level, msg, fields) => logs.push(`${level} ${msg} ${JSON.stringify(fields)}`), retry: { initialMs: 50, maxMs: 200 } });
    try {
      const names = fetcher.ring.keyNames();
      const ticket = fetcher.ring.seal(Buffer.from('resume me'));
      for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
        await keyd.kill(signal);
        assert.equal(await fetcher.refresh(), false, `no keyd after ${signal}`);
        assert.deepEqual(fetcher.ring.keyNames(), names, 'the last keys are kept');
        assert.equal(fetcher.ring.open(ticket)?.plaintext.toString(), 'resume me');
        assert.ok(fetcher.ring.seal(Buffer.from('still sealing')).length > 0);
        keyd = await spawnKeyd(config);
        // The pool reconnects in the background; the fetcher's retries find it.
        const until = Date.now() + 10_000;
        while (!(await fetcher.refresh()) && Date.now() < until) await sleep(100);
        assert.deepEqual(fetcher.ring.keyNames(), names, `the same sealed keys after a ${signal} restart`);
        assert.equal(fetcher.ring.open(ticket)?.currentKey, true);
      }
      // Another front started now opens the ticket made before both restarts.
      const other = await KeydClient.connect(tlsClientOptions(pki, 'front-b', `tls://127.0.0.1:${port}`));
      const b = await TicketKeyFetcher.start({ client: other });
      assert.equal(b.ring.open(ticket)?.plaintext.toString(), 'resume me');
      b.close();
      other.close();
      assert.ok(logs.some((l) => l.startsWith('warn cannot fetch ticket keys')));
      assert.ok(logs.some((l) => l.startsWith('info ticket keys from keyd again')));
      // The fetcher logs names, never bytes: no 64-hex-digit run (a key) in what it said.
      assert.ok(!logs.some((l) => /[0-9a-f]{64}/.test(l)));
      const audit = await readAudit(join(dir, 'audit.log'));
      assert.ok(audit.filter((l) => l.op === 'ticket-keys' && l.outcome === 'ok').length >= 3);
    } finally {
      fetcher.close();
      client.close();
      await keyd.kill();
      await cleanup();
    }
  });
});
