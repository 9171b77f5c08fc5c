/**
 * The fronts (`keyward serve`, `keyward proxy`) under idle pre-handshake connections (the
 * class of issue 16's keyd lock-out): 300 TCP connections that never send a ClientHello
 * do not keep a real client from being served at once, and are closed at the handshake
 * timeout; the per-source limit closes one address's connections beyond it at accept.
 * And `--user`: a front started as root runs as that user once listening, and still serves.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { lookupUser } from '../../src/keys/keyProcess.js';
import { runKeyward, startKeyward, type KeywardChild } from '../support/keywardCli.js';
import { connectTls, echoHandler, makeProxyPki, startUpstream, type ProxyPki, type TestUpstream } from '../proxy/harness.js';

const PROXY_READY = /"listen":"127\.0\.0\.1:(\d+)".*"msg":"keyward proxy listening"/;
const IDLE = 300;
const TIMEOUT_MS = 1_500;

let pki: ProxyPki;
let up: TestUpstream;
before(async () => {
  pki = await makeProxyPki();
  up = await startUpstream(echoHandler);
});
after(async () => {
  await up.close();
  await pki.cleanup();
});

const keyFlags = () => ['--cert', pki.localhost.chainPath, '--key-process', '--key', pki.localhost.keyPath];
const startServe = (extra: string[]) => startKeyward(['serve', '--listen', '127.0.0.1:0', '--alpn', 'http/1.1', ...keyFlags(), ...extra]);
const startProxy = (extra: string[]) => startKeyward(['proxy', '--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${up.port}`, ...keyFlags(), ...extra], { ready: PROXY_READY });

/** Opens `n` TCP connections that send nothing; each resolves with the ms until it was closed. */
async function idleConnections(port: number, n: number): Promise<{ sockets: Socket[]; closedAfter: Promise<number>[] }> {
  const sockets: Socket[] = [];
  const closedAfter: Promise<number>[] = [];
  for (let i = 0; i < n; i++) {
    const s = netConnect(port, '127.0.0.1');
    s.on('error', () => undefined);
    s.resume();
    await once(s, 'connect');
    const opened = Date.now();
    sockets.push(s);
    closedAfter.push(once(s, 'close').then(() => Date.now() - opened));
  }
  return { sockets, closedAfter };
}

/** A real client's handshake and one echo/request; resolves with its duration. */
async function realClient(port: number, alpn?: string[]): Promise<number> {
  const started = Date.now();
  const s = await connectTls(port, pki, 'localhost', alpn ? { ALPNProtocols: alpn } : {});
  s.destroy();
  return Date.now() - started;
}

async function starvationCheck(child: KeywardChild): Promise<void> {
  try {
    const idle = await idleConnections(child.port, IDLE);
    const ms = await realClient(child.port);
    assert.ok(ms < 1_000, `a real client waited ${ms} ms behind ${IDLE} idle connections`);
    const closed = await Promise.all(idle.closedAfter);
    const earliest = Math.min(...closed);
    const latest = Math.max(...closed);
    assert.ok(earliest >= TIMEOUT_MS - 100, `an idle connection was closed after ${earliest} ms, before the handshake timeout`);
    assert.ok(latest < TIMEOUT_MS + 2_500, `an idle connection was still open ${latest} ms after it connected`);
  } finally {
    await child.stop();
  }
}

describe('fronts under idle pre-handshake connections', () => {
  test(`serve: ${IDLE} idle connections do not delay a real client, and are closed at --handshake-timeout`, async () => {
    await starvationCheck(await startServe(['--handshake-timeout', String(TIMEOUT_MS)]));
  });

  test(`proxy: ${IDLE} idle connections do not delay a real client, and are closed at --handshake-timeout`, async () => {
    await starvationCheck(await startProxy(['--handshake-timeout', String(TIMEOUT_MS)]));
  });

  test('--max-connections-per-source: one address beyond the limit is closed at accept, in serve and in the proxy', async () => {
    for (const child of [await startServe(['--max-connections-per-source', '4']), await startProxy(['--max-connections-per-source', '4'])]) {
      try {
        const held = await idleConnections(child.port, 4);
        const extra = await idleConnections(child.port, 1);
        assert.ok((await extra.closedAfter[0]) < 500, 'the fifth connection from one address is closed at once');
        for (const s of held.sockets) s.destroy();
        await Promise.all(held.closedAfter);
        // Slots freed by closing are given back.
        await new Promise((r) => setTimeout(r, 100));
        assert.ok((await realClient(child.port)) < 1_000);
      } finally {
        await child.stop();
      }
    }
  });
});

const asRoot = process.getuid?.() === 0;
describe('--user', () => {
  test(asRoot ? 'serve and proxy started as root run as nobody once listening (their /proc status says so) and still serve' : '--user without root is refused clearly', async () => {
    if (!asRoot) {
      const r = await runKeyward(['serve', '--listen', '127.0.0.1:0', ...keyFlags(), '--user', 'nobody']);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /--user nobody needs root/);
      return;
    }
    const nobody = lookupUser('nobody');
    const serve = await startServe(['--user', 'nobody']);
    const proxy = await startProxy(['--user', 'nobody']);
    try {
      for (const child of [serve, proxy]) {
        const uids = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$/m.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))!;
        assert.deepEqual(uids.slice(1).map(Number), [nobody.uid, nobody.uid, nobody.uid, nobody.uid], 'real, effective, saved and filesystem uid');
        const gids = /^Gid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$/m.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))!;
        assert.deepEqual(gids.slice(1).map(Number), [nobody.gid, nobody.gid, nobody.gid, nobody.gid]);
        assert.ok((await realClient(child.port, ['http/1.1'])) < 2_000);
      }
      assert.match(serve.stdout(), new RegExp(`this front runs as uid ${nobody.uid}, gid ${nobody.gid} \\(--user nobody: root dropped for good\\)`));
      const start = proxy.stdout().split('\n').find((l) => l.includes('"keyward proxy listening"'))!;
      assert.deepEqual((JSON.parse(start) as { runsAs: unknown }).runsAs, { user: 'nobody', uid: nobody.uid, gid: nobody.gid });
    } finally {
      await serve.stop();
      await proxy.stop();
    }
  });
});
