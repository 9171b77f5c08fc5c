/**
 * A stand-in for the network front, run as its own process by tests that scan a
 * front's memory (test/keys/memscan.test.ts):
 *
 *   node dist/test/support/keyHolderFront.js local      --key PATH [--count N]
 *   node dist/test/support/keyHolderFront.js keyprocess --key PATH [--count N] [--key-user USER]
 *   node dist/test/support/keyHolderFront.js serve      --key PATH --cert CHAIN [--backend local|keyprocess] [--key-user USER]
 *
 * It creates the key backend, signs N handshake-shaped inputs through KeyOperations as
 * the TLS server would (and verifies each result, as the engine does), then prints
 * `KEYPROCESS <pid>` (keyprocess mode) and `READY <pid>` on stdout and stays alive
 * until stdin closes or SIGTERM. In `local` mode it reads the key file itself, like a
 * server with an in-process key; in `keyprocess` mode it only passes the path on.
 *
 * `serve` runs the real TLS server of `keyward serve` (src/cli/serve.ts) on
 * 127.0.0.1:0 instead of a signing loop: real clients make the signatures. It prints
 * `LISTENING <port>`, `KEYPROCESS <pid>` (keyprocess backend, the default) and `READY <pid>`.
 *
 * New modes go in MODES.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { KeyOperations } from '../../src/keys/keyOperations.js';
import { serve } from '../../src/cli/serve.js';
import { startKeyProcess } from '../../src/keys/keyProcess.js';
import { localKey } from '../../src/keys/localKey.js';
import { schemeInfo, verifySignature } from '../../src/tls/crypto/signatureSchemes.js';
import { certificateVerifyContent } from '../../src/tls/wire/handshake.js';

export interface FrontArgs {
  key: string;
  count: number;
  keyUser?: string;
  /** Extra options later modes may need, unparsed. */
  rest: Record<string, string | boolean | undefined>;
}

/** What a mode sets up: the key backend in use (for the signing loop), and how to stop. */
export interface FrontMode {
  start(args: FrontArgs): Promise<{ key?: KeyOperations; extraLines: string[]; stop(): Promise<void> }>;
  /** Whether to run the signing loop after start (a serving mode signs for real clients instead). */
  signLoop: boolean;
}

const MODES: Record<string, FrontMode> = {
  local: {
    signLoop: true,
    async start(args) {
      // What a server with an in-process key does: read the file, build a KeyObject.
      const key = localKey(readFileSync(args.key));
      return { key, extraLines: [], stop: async () => {} };
    },
  },
  keyprocess: {
    signLoop: true,
    async start(args) {
      const key = await startKeyProcess({ keyPath: args.key, keyUser: args.keyUser });
      return { key, extraLines: [`KEYPROCESS ${key.pid}`], stop: () => key.close() };
    },
  },
  serve: {
    signLoop: false,
    async start(args) {
      const cert = args.rest.cert;
      if (typeof cert !== 'string') throw new Error('serve mode needs --cert CHAIN');
      const backend = args.rest.backend ?? 'keyprocess';
      if (backend !== 'local' && backend !== 'keyprocess') throw new Error(`unknown --backend ${String(backend)} (local or keyprocess)`);
      const running = await serve({
        listen: '127.0.0.1:0',
        certs: [cert],
        keys: [{ kind: 'file', path: args.key }],
        sources: { keyProcess: backend === 'keyprocess', ...(args.keyUser !== undefined ? { keyUser: args.keyUser } : {}) },
      });
      const pid = running.certificates[0].pid?.();
      return {
        extraLines: [`LISTENING ${running.address.port}`, ...(pid !== undefined ? [`KEYPROCESS ${pid}`] : [])],
        stop: () => running.close(500),
      };
    },
  },
};

/** A TLS 1.3 server CertificateVerify input with a random transcript hash. */
function certificateVerifyInput(): Buffer {
  return certificateVerifyContent(randomBytes(32));
}

/** Signs `count` handshake inputs, as many at once as a busy server would. */
export async function signLoop(key: KeyOperations, count: number): Promise<void> {
  const scheme = key.schemes.find((s) => schemeInfo(s)?.tls13);
  if (scheme === undefined) throw new Error('key has no TLS 1.3 signature scheme');
  const one = async (): Promise<void> => {
    const msg = certificateVerifyInput();
    const sig = await key.sign(scheme, msg, { tlsVersion: 'TLSv1.3', purpose: 'tls13-server-certificate-verify' }, new AbortController().signal);
    if (!verifySignature(key.publicKey, scheme, msg, sig)) throw new Error('signature does not verify');
  };
  for (let done = 0; done < count; ) {
    const batch = Math.min(16, count - done);
    await Promise.all(Array.from({ length: batch }, one));
    done += batch;
  }
}

async function main(): Promise<void> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    strict: false,
    options: { key: { type: 'string' }, count: { type: 'string' }, 'key-user': { type: 'string' }, cert: { type: 'string' }, backend: { type: 'string' } },
  });
  const modeName = positionals[0] ?? '';
  const mode = MODES[modeName];
  if (!mode || typeof values.key !== 'string') {
    process.stderr.write(`usage: keyHolderFront (${Object.keys(MODES).join('|')}) --key PATH [--count N] [--key-user USER] [--cert CHAIN] [--backend local|keyprocess]\n`);
    process.exit(2);
  }
  const args: FrontArgs = {
    key: values.key,
    count: typeof values.count === 'string' ? Number(values.count) : 20,
    keyUser: typeof values['key-user'] === 'string' ? values['key-user'] : undefined,
    rest: values,
  };
  const running = await mode.start(args);
  if (mode.signLoop && running.key) await signLoop(running.key, args.count);

  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    void running.stop().finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.resume();
  for (const line of running.extraLines) process.stdout.write(`${line}\n`);
  process.stdout.write(`READY ${process.pid}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`keyHolderFront: ${(e as Error).message}\n`);
  process.exit(1);
});
