/**
 * Worker thread of the PKCS#11 pool: one session, one operation at a time, each
 * operation's Init and single-part call run together here so the event loop never waits
 * on the token.
 *
 * The main thread has already initialized the library and logged in (PKCS#11 login
 * state belongs to the whole application), so this thread gets no PIN. It never calls
 * C_Finalize: that would end the library for every thread of the process.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { randomBytes } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import { ckrName } from './pkcs11Module.js';
import { selectPremaster, PREMASTER_LENGTH } from './pkcs11Premaster.js';
import type { MechanismSpec, Pkcs11Job, Pkcs11WorkerInit, Pkcs11WorkerMessage } from './pkcs11Pool.js';

type Request = ({ id: number } & Pkcs11Job) | { id: number; op: 'close' };

const port = parentPort;
if (!port) throw new Error('pkcs11Worker runs only as a worker thread');

const init = workerData as Pkcs11WorkerInit;
const lib = new pkcs11js.PKCS11();
const slotId = Buffer.from(init.slotId);
const keyHandle = Buffer.from(init.keyHandle);
let session: Buffer | null = null;

function ckr(err: unknown): string {
  return ckrName(err) ?? 'PKCS#11 error';
}

function post(m: Pkcs11WorkerMessage, transfer?: ArrayBuffer[]): void {
  port!.postMessage(m, transfer);
}

function openSession(): Buffer {
  session = lib.C_OpenSession(slotId, pkcs11js.CKF_SERIAL_SESSION);
  return session;
}

/**
 * Errors after which this session is unusable but a new one may succeed: the token
 * dropped it, or an earlier failed call left an operation active (PKCS#11 2.40 has no
 * way to cancel one; SoftHSM2 leaves one behind after, e.g., CKR_ARGUMENTS_BAD).
 */
const SESSION_UNUSABLE = new Set(['CKR_SESSION_HANDLE_INVALID', 'CKR_SESSION_CLOSED', 'CKR_OPERATION_ACTIVE']);

/** Runs `fn` on the session, replacing the session once if it is unusable. */
function withSession<T>(fn: (s: Buffer) => T): T {
  try {
    return fn(session ?? openSession());
  } catch (err) {
    if (!SESSION_UNUSABLE.has(ckr(err))) throw err;
    if (session) {
      try {
        lib.C_CloseSession(session);
      } catch {
        // Already gone.
      }
    }
    session = null;
    return fn(openSession());
  }
}

const asBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.length);

function sign(mechanism: MechanismSpec, data: Uint8Array, outLength: number): Uint8Array {
  return withSession((s) => {
    lib.C_SignInit(s, mechanism as pkcs11js.Mechanism, keyHandle);
    return lib.C_Sign(s, asBuffer(data), Buffer.alloc(outLength));
  });
}

/**
 * RFC 5246 7.4.7.1 inside the key holder: the random premaster exists before the
 * decryption, any failure becomes `null`, and selectPremaster picks without branching.
 * Only 48 bytes leave this thread, whatever happened.
 */
function premaster(mechanism: MechanismSpec, ciphertext: Uint8Array, clientVersion: number, outLength: number): Uint8Array {
  const random = randomBytes(PREMASTER_LENGTH);
  let plain: Uint8Array | null = null;
  // A ciphertext that is not exactly the modulus size is wrong on its face (public
  // information, so skipping the token leaks nothing) and tokens handle it badly:
  // SoftHSM2 answers an empty one with CKR_ARGUMENTS_BAD and leaves the operation active.
  if (ciphertext.length === outLength) {
    try {
      plain = withSession((s) => {
        lib.C_DecryptInit(s, mechanism as pkcs11js.Mechanism, keyHandle);
        return lib.C_Decrypt(s, asBuffer(ciphertext), Buffer.alloc(outLength));
      });
    } catch {
      plain = null;
    }
  }
  const out = selectPremaster(plain, clientVersion, random);
  if (plain) plain.fill(0);
  random.fill(0);
  return out;
}

function start(): void {
  try {
    lib.load(init.modulePath);
    try {
      lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    } catch (err) {
      // Expected: the main thread initialized the library for the whole process.
      if (ckr(err) !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') throw err;
    }
    openSession();
  } catch (err) {
    post({ kind: 'failed', error: ckr(err) === 'PKCS#11 error' && err instanceof Error ? err.message : ckr(err) });
    return;
  }
  port!.on('message', (req: Request) => {
    if (req.op === 'close') {
      try {
        if (session) lib.C_CloseSession(session);
      } catch {
        // Closing a session the token already dropped: nothing to do.
      }
      session = null;
      post({ kind: 'closed' });
      return;
    }
    try {
      const out = req.op === 'sign' ? sign(req.mechanism, req.data, req.outLength) : premaster(req.mechanism, req.ciphertext, req.clientVersion, req.outLength);
      // Copy into a fresh buffer of its own so it can be transferred, not cloned.
      const data = new Uint8Array(out);
      post({ kind: 'result', id: req.id, ok: true, data }, [data.buffer]);
    } catch (err) {
      post({ kind: 'result', id: req.id, ok: false, ckr: ckr(err) });
    }
  });
  post({ kind: 'ready' });
}

start();
