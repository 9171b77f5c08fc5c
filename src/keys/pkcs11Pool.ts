/**
 * A pool of worker threads, each holding one PKCS#11 session, that runs token
 * operations off the event loop.
 *
 * Why threads and not pkcs11js's async C_Sign: the binding's async variants run only
 * C_Sign/C_Decrypt on libuv's thread pool; C_SignInit/C_DecryptInit stay synchronous
 * (about 70-90 µs per operation in SoftHSM2, a network round trip on some HSMs), and
 * every in-flight operation occupies one of libuv's four threads that node:crypto, fs and
 * dns share. A worker runs Init and the operation together, on its own session, and the
 * main thread pays only a message each way.
 *
 * A C_Sign in flight cannot be stopped. Aborting rejects the caller's promise at once;
 * the worker finishes, its answer is dropped, and it takes the next job.
 *
 * Each worker is handed up to PIPELINE_DEPTH jobs at a time, so it starts the next one
 * without waiting for a round trip through the main thread's event loop. A job handed
 * over is committed to that worker (abort still rejects it at once).
 */
import { Worker } from 'node:worker_threads';
import { KeyOperationError } from './keyOperations.js';

/** What a worker needs to open its session (sent once, at start). No PIN: login is per process. */
export interface Pkcs11WorkerInit {
  modulePath: string;
  /** CK_SLOT_ID as the binding's handle bytes. */
  slotId: Uint8Array;
  /** CK_OBJECT_HANDLE of the private key. */
  keyHandle: Uint8Array;
}

/** A PKCS#11 mechanism in a form that crosses threads (plain numbers). */
export interface MechanismSpec {
  mechanism: number;
  parameter?: { type: number; hashAlg: number; mgf: number; saltLen: number };
}

/** A job for a worker, minus its id. */
export type Pkcs11Job =
  | { op: 'sign'; mechanism: MechanismSpec; data: Uint8Array; outLength: number }
  | { op: 'premaster'; mechanism: MechanismSpec; ciphertext: Uint8Array; clientVersion: number; outLength: number };

/** Messages a worker sends. `ckr` is a CKR_* name or a short fixed text, never data. */
export type Pkcs11WorkerMessage =
  | { kind: 'ready' }
  | { kind: 'failed'; error: string }
  | { kind: 'result'; id: number; ok: true; data: Uint8Array }
  | { kind: 'result'; id: number; ok: false; ckr: string }
  | { kind: 'closed' };

/** Pool occupancy, for metrics (queue depth) and tests. */
export interface Pkcs11PoolStats {
  /** Worker threads (sessions) running. */
  workers: number;
  /** Jobs handed to workers (in the token, or next in line there). */
  busy: number;
  /** Jobs waiting for a worker. */
  queued: number;
}

interface Job {
  id: number;
  body: Pkcs11Job;
  /** The job's input bytes, in a buffer of their own that is transferred to the worker. */
  bytes: Uint8Array;
  resolve: (v: Uint8Array) => void;
  reject: (e: Error) => void;
  signal: AbortSignal;
  onAbort: () => void;
  /** The caller's promise is settled (answered, aborted or failed); a late answer is dropped. */
  settled: boolean;
}

interface Slot {
  worker: Worker;
  /** Jobs handed to this worker, in the order it runs them. */
  jobs: Job[];
  closing: boolean;
}

/** Jobs a worker holds at once: one running, one ready behind it. */
const PIPELINE_DEPTH = 2;

const WORKER_URL = new URL('./pkcs11Worker.js', import.meta.url);
/** Small heaps: a worker holds a session and a few buffers. */
const RESOURCE_LIMITS = { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8 };
const START_TIMEOUT_MS = 15_000;

/** Maps a worker's CKR_* answer to a KeyOperationError whose text is safe to log. */
function errorFor(op: string, ckr: string): KeyOperationError {
  switch (ckr) {
    case 'CKR_USER_NOT_LOGGED_IN':
      return new KeyOperationError('unavailable', `PKCS#11 ${op} failed: the token session is no longer logged in`);
    case 'CKR_DEVICE_REMOVED':
    case 'CKR_TOKEN_NOT_PRESENT':
    case 'CKR_DEVICE_ERROR':
    case 'CKR_SESSION_HANDLE_INVALID':
    case 'CKR_SESSION_CLOSED':
      return new KeyOperationError('unavailable', `PKCS#11 ${op} failed: ${ckr}`);
    case 'CKR_KEY_HANDLE_INVALID':
      return new KeyOperationError('unknown-key', `PKCS#11 ${op} failed: the key object is gone (${ckr})`);
    case 'CKR_MECHANISM_INVALID':
    case 'CKR_MECHANISM_PARAM_INVALID':
    case 'CKR_KEY_TYPE_INCONSISTENT':
    case 'CKR_KEY_FUNCTION_NOT_PERMITTED':
      return new KeyOperationError('unsupported', `PKCS#11 ${op} failed: ${ckr}`);
    default:
      return new KeyOperationError('internal', `PKCS#11 ${op} failed: ${ckr}`);
  }
}

function startWorker(init: Pkcs11WorkerInit): Promise<Worker> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER_URL, { workerData: init, resourceLimits: RESOURCE_LIMITS });
    const timer = setTimeout(() => {
      fail(new Error('PKCS#11 worker did not start in time'));
    }, START_TIMEOUT_MS);
    const cleanup = (): void => {
      clearTimeout(timer);
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
    };
    const fail = (err: Error): void => {
      cleanup();
      void worker.terminate();
      reject(err);
    };
    const onMessage = (m: Pkcs11WorkerMessage): void => {
      if (m.kind === 'ready') {
        cleanup();
        resolve(worker);
      } else if (m.kind === 'failed') {
        fail(new KeyOperationError('unavailable', `PKCS#11 worker could not start: ${m.error}`));
      }
    };
    const onError = (err: Error): void => fail(new KeyOperationError('unavailable', `PKCS#11 worker could not start: ${err.message}`));
    const onExit = (code: number): void => fail(new KeyOperationError('unavailable', `PKCS#11 worker exited during start (code ${code})`));
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
  });
}

/** Worker threads with one PKCS#11 session each, and a FIFO queue in front of them. */
export class Pkcs11WorkerPool {
  readonly #init: Pkcs11WorkerInit;
  readonly #slots: Slot[] = [];
  readonly #queue: Job[] = [];
  readonly #maxQueue: number;
  #nextId = 1;
  #closed = false;
  #closing: Promise<void> | null = null;
  #restarts = 0;

  private constructor(init: Pkcs11WorkerInit, maxQueue: number) {
    this.#init = init;
    this.#maxQueue = maxQueue;
  }

  /**
   * Starts `size` workers and waits until each has its session open.
   * @throws KeyOperationError('unavailable') when a worker cannot start.
   */
  static async start(init: Pkcs11WorkerInit, size: number, maxQueue = 100_000): Promise<Pkcs11WorkerPool> {
    const pool = new Pkcs11WorkerPool(init, maxQueue);
    const started = await Promise.allSettled(Array.from({ length: size }, () => startWorker(init)));
    const failure = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) {
      await Promise.all(started.map((r) => (r.status === 'fulfilled' ? r.value.terminate() : undefined)));
      throw failure.reason;
    }
    for (const r of started) if (r.status === 'fulfilled') pool.#adopt(r.value);
    return pool;
  }

  /** Current occupancy. */
  stats(): Pkcs11PoolStats {
    return { workers: this.#slots.length, busy: this.#slots.reduce((n, s) => n + s.jobs.length, 0), queued: this.#queue.length };
  }

  /**
   * Runs one job. Rejects with KeyOperationError('aborted') as soon as `signal` fires,
   * whether the job is queued or already in the token.
   */
  run(body: Pkcs11Job, signal: AbortSignal): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new KeyOperationError('unavailable', 'PKCS#11 key is closed'));
    if (signal.aborted) return Promise.reject(new KeyOperationError('aborted', 'operation aborted'));
    if (this.#queue.length >= this.#maxQueue) return Promise.reject(new KeyOperationError('unavailable', 'PKCS#11 queue is full'));
    // A private copy: the caller may reuse its buffer at once, and a view into a large
    // buffer would otherwise be cloned whole to the worker.
    const bytes = new Uint8Array(body.op === 'sign' ? body.data : body.ciphertext);
    const owned: Pkcs11Job = body.op === 'sign' ? { ...body, data: bytes } : { ...body, ciphertext: bytes };
    return new Promise<Uint8Array>((resolve, reject) => {
      const job: Job = {
        id: this.#nextId++,
        body: owned,
        bytes,
        resolve,
        reject,
        signal,
        settled: false,
        onAbort: () => {
          if (job.settled) return;
          const i = this.#queue.indexOf(job);
          if (i >= 0) this.#queue.splice(i, 1);
          this.#settle(job, new KeyOperationError('aborted', 'operation aborted'));
        },
      };
      signal.addEventListener('abort', job.onAbort, { once: true });
      this.#queue.push(job);
      this.#dispatch();
    });
  }

  /**
   * Stops taking jobs, fails the queued ones, lets in-flight ones finish (a token call
   * cannot be interrupted), closes each worker's session and ends the threads.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    for (const job of this.#queue.splice(0)) this.#settle(job, new KeyOperationError('unavailable', 'PKCS#11 key is closed'));
    this.#closing = Promise.all(this.#slots.slice().map((s) => this.#retire(s))).then(() => undefined);
    return this.#closing;
  }

  #adopt(worker: Worker): void {
    const slot: Slot = { worker, jobs: [], closing: false };
    worker.on('message', (m: Pkcs11WorkerMessage) => this.#onMessage(slot, m));
    worker.on('error', () => this.#lost(slot));
    worker.on('exit', () => this.#lost(slot));
    // Idle workers do not keep the process alive (after the listeners: adding one refs the port again).
    worker.unref();
    this.#slots.push(slot);
  }

  #settle(job: Job, result: Uint8Array | Error): void {
    if (job.settled) return;
    job.settled = true;
    job.signal.removeEventListener('abort', job.onAbort);
    if (result instanceof Error) job.reject(result);
    else job.resolve(result);
  }

  #dispatch(): void {
    // Fill the emptiest worker first, so idle workers get work before busy ones get a second job.
    for (let depth = 0; depth < PIPELINE_DEPTH; depth++) {
      for (const slot of this.#slots) {
        if (this.#queue.length === 0) return;
        if (slot.closing || slot.jobs.length !== depth) continue;
        const job = this.#queue.shift()!;
        slot.jobs.push(job);
        // Referenced while working, so a pending operation keeps the process alive.
        if (depth === 0) slot.worker.ref();
        slot.worker.postMessage({ id: job.id, ...job.body }, [job.bytes.buffer as ArrayBuffer]);
      }
    }
  }

  #onMessage(slot: Slot, m: Pkcs11WorkerMessage): void {
    if (m.kind !== 'result') return;
    const job = slot.jobs[0];
    if (!job || job.id !== m.id) return;
    slot.jobs.shift();
    if (slot.jobs.length === 0 && !slot.closing) slot.worker.unref();
    // An aborted job's answer arrives here too; #settle ignores it.
    this.#settle(job, m.ok ? m.data : errorFor(job.body.op === 'sign' ? 'sign' : 'decrypt', m.ckr));
    if (slot.closing) {
      if (slot.jobs.length === 0) slot.worker.postMessage({ id: 0, op: 'close' });
    } else {
      this.#dispatch();
    }
  }

  /** A worker died (a crash in the module, or terminate): fail its jobs, replace it. */
  #lost(slot: Slot): void {
    const i = this.#slots.indexOf(slot);
    if (i < 0) return;
    this.#slots.splice(i, 1);
    for (const job of slot.jobs.splice(0)) this.#settle(job, new KeyOperationError('unavailable', 'PKCS#11 worker stopped during the operation'));
    if (this.#closed) return;
    const delay = Math.min(5_000, 100 * 2 ** Math.min(this.#restarts++, 6));
    setTimeout(() => {
      if (this.#closed) return;
      startWorker(this.#init).then(
        (w) => {
          if (this.#closed) {
            void w.terminate();
            return;
          }
          this.#restarts = 0;
          this.#adopt(w);
          this.#dispatch();
        },
        () => {
          // Could not replace it: with no worker left, queued jobs would wait forever.
          if (this.#slots.length === 0) {
            for (const job of this.#queue.splice(0)) this.#settle(job, new KeyOperationError('unavailable', 'PKCS#11 workers are not running'));
          }
        },
      );
    }, delay).unref();
  }

  /** Closes one worker after the jobs it holds: session closed by the worker, then the thread ends. */
  #retire(slot: Slot): Promise<void> {
    slot.closing = true;
    // Referenced until it is gone, so the process does not exit with close() pending.
    slot.worker.ref();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        void slot.worker.terminate().then(() => resolve(), () => resolve());
      };
      slot.worker.on('message', (m: Pkcs11WorkerMessage) => {
        if (m.kind === 'closed') done();
      });
      slot.worker.once('exit', () => resolve());
      if (slot.jobs.length === 0) slot.worker.postMessage({ id: 0, op: 'close' });
    });
  }
}
