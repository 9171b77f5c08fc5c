/**
 * Shared pieces of the Node adapter tests (not a test file): certificates with local
 * keys, listening on 127.0.0.1:0, bounded waits, and KeyOperations wrappers that delay,
 * fail or watch their abort signal.
 */
import { createHash } from 'node:crypto';
import type { AddressInfo, Server } from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { LocalKey } from '../../src/keys/localKey.js';
import type { KeyOperations, OperationContext } from '../../src/keys/keyOperations.js';
import { KeyOperationError } from '../../src/keys/keyOperations.js';
import type { CertificateWithKey } from '../../src/node/server.js';
import type { SignatureScheme } from '../../src/tls/crypto/signatureSchemes.js';
import { getPki, type KeyType } from '../support/pki.js';

/** The fixture server certificate (CN localhost, SAN 127.0.0.1) of `keyType` with an in-process key. */
export async function serverCertificate(keyType: KeyType = 'ecdsa-p256', wrap?: (k: KeyOperations) => KeyOperations): Promise<CertificateWithKey> {
  const pki = await getPki();
  const files = pki.server[keyType];
  const key = new LocalKey(files.keyPem);
  return { cert: files.chainPem, key: wrap ? wrap(key) : key };
}

/** PEM of the CA that issued the fixture certificates, for clients. */
export async function caPem(): Promise<string> {
  return (await getPki()).ca.certPem;
}

export async function caPath(): Promise<string> {
  return (await getPki()).ca.certPath;
}

/** Listens on 127.0.0.1, port 0, and returns the port. */
export function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/**
 * Stops a server for test teardown: stop listening, destroy what is left, and wait
 * (bounded) for the close callback.
 */
export async function stopServer(server: Server & { closeAllConnections?: () => void; tlsAcceptor?: { destroyAll(): void } }): Promise<void> {
  if (!server.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections?.();
  server.tlsAcceptor?.destroyAll();
  await withTimeout(closed, 5_000, 'server close');
}

/** Rejects if `p` does not settle within `ms`. */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Deterministic test bytes (not random, so failures reproduce; not zeros, so offsets matter). */
export function patternBytes(length: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

let gcFn: (() => void) | undefined;

/**
 * A full garbage collection, so that memory figures count only what is still referenced
 * (the flag is set at run time; the test runner's command line needs no --expose-gc).
 */
export function collectGarbage(): void {
  if (!gcFn) {
    v8.setFlagsFromString('--expose-gc');
    gcFn = vm.runInNewContext('gc') as () => void;
  }
  gcFn();
}

/**
 * Bytes of ArrayBuffers still referenced: a full GC, a pause for V8's concurrent
 * ArrayBuffer sweeper to free what it found, and another GC.
 */
export async function liveArrayBufferBytes(): Promise<number> {
  collectGarbage();
  await sleep(5);
  collectGarbage();
  return process.memoryUsage().arrayBuffers;
}

/** Resolves with the first emission of `event`, or rejects after `ms`. */
export function once<T = unknown>(emitter: NodeJS.EventEmitter, event: string, ms = 10_000): Promise<T> {
  return withTimeout(
    new Promise<T>((resolve) => emitter.once(event, (v: T) => resolve(v))),
    ms,
    `event ${event}`,
  );
}

/** What a {@link ControlledKey} saw. */
export interface KeyLog {
  started: number;
  settled: number;
  aborted: number;
  /** Most sign calls pending at one time. */
  maxPending: number;
  /** Abort signals of every call, in call order. */
  signals: AbortSignal[];
  /** Times (performance.now) at which each sign call resolved. */
  resolvedAt: number[];
}

/**
 * Wraps a key: every sign waits `delayMs` (or until `gate` resolves) before the real
 * signature is made, or fails when `fail` says so; aborts are honoured and counted.
 */
export class ControlledKey implements KeyOperations {
  readonly log: KeyLog = { started: 0, settled: 0, aborted: 0, maxPending: 0, signals: [], resolvedAt: [] };
  /** Delay before each sign is performed; may be changed between handshakes. */
  delayMs: number;
  /** Called per sign; returning true fails that sign (after the delay) with a KeyOperationError. */
  fail: ((ctx: OperationContext, call: number) => boolean) | undefined;
  /** When set, every sign first waits for this promise, then for `delayMs`. */
  hold: Promise<void> | undefined;
  private pending = 0;

  constructor(
    private readonly inner: KeyOperations,
    behaviour: { delayMs?: number; fail?: (ctx: OperationContext, call: number) => boolean } = {},
  ) {
    this.delayMs = behaviour.delayMs ?? 0;
    this.fail = behaviour.fail;
  }

  get publicKey() {
    return this.inner.publicKey;
  }
  get schemes() {
    return this.inner.schemes;
  }
  get keyId() {
    return this.inner.keyId;
  }

  /** Sign calls started and not yet settled. */
  get pendingCount(): number {
    return this.pending;
  }

  sign(scheme: SignatureScheme, message: Uint8Array, ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array> {
    const call = this.log.started++;
    this.log.signals.push(signal);
    this.pending++;
    this.log.maxPending = Math.max(this.log.maxPending, this.pending);
    const settle = (): void => {
      this.pending--;
      this.log.settled++;
    };
    return new Promise<Uint8Array>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      let aborted = false;
      const onAbort = (): void => {
        aborted = true;
        clearTimeout(timer);
        this.log.aborted++;
        settle();
        reject(new KeyOperationError('aborted', 'operation aborted'));
      };
      const perform = (): void => {
        signal.removeEventListener('abort', onAbort);
        if (this.fail?.(ctx, call)) {
          settle();
          reject(new KeyOperationError('unavailable', 'test key holder refused'));
          return;
        }
        this.inner.sign(scheme, message, ctx, signal).then(
          (sig) => {
            settle();
            this.log.resolvedAt.push(performance.now());
            resolve(sig);
          },
          (err: unknown) => {
            settle();
            reject(err);
          },
        );
      };
      void (this.hold ?? Promise.resolve()).then(() => {
        if (!aborted) timer = setTimeout(perform, this.delayMs);
      });
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}
