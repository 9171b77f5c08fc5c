import { spawn, execFileSync } from 'node:child_process';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { schemeFitsVersion, schemeName, schemesForKey, type SignatureScheme } from '../tls/crypto/signatureSchemes.js';
import {
  DEFAULT_DC_MAX_VALIDITY_MS,
  checkDcMaxValidity,
  verifyDelegatedCredential,
  type DelegatedCredentialIssuer,
  type DelegatedCredentialRequest,
} from './delegatedCredentialIssuer.js';
import { hashLength } from '../tls/crypto/hash.js';
import { keyIdOf } from './keyId.js';
import { checkTls13PskRequest } from './tls13PskSteps.js';
import { describeProtection, type KeyProcessProtection, type NonDumpablePolicy } from './keyProcessHardening.js';
import { KeyProcessLauncher, type KeyChild } from './keyProcessLauncher.js';
import {
  KeyOperationError,
  UnknownPskIdentityError,
  type KeyOperations,
  vouchForSignatures,
  type OperationContext,
  type PskMasterSecretRequest,
  type PskOperations,
  type Tls13PskOperations,
  type Tls13PskRequest,
  type Tls13PskScheduleRequest,
} from './keyOperations.js';
import {
  FrameDecoder,
  FrameType,
  FrameWriter,
  MAX_OPERATION_INPUT,
  MAX_PSK_IDENTITY,
  MAX_PSK_OTHER_SECRET,
  UNKNOWN_PSK_IDENTITY,
  decodeErrorCode,
  decodeReady,
  MAX_DC_CERTIFICATE,
  encodeDecrypt,
  encodeFrame,
  encodeIssueDc,
  encodePskMasterSecret,
  encodeSign,
  encodeTls13Psk,
  type Tls13PskFrame,
  type Frame,
} from './keyProcessProtocol.js';

/** pino-compatible: `logger.warn({ pid }, 'message')`. Never given secrets. */
export interface KeyProcessLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface KeyProcessOptions {
  /** Path of the private key file (PEM, or DER PKCS#8/PKCS#1/SEC1). Only the child opens it. */
  keyPath: string;
  /**
   * Run the key process as this user (name, or numeric `uid` / `uid:gid`), so the front
   * can read neither its memory nor the key file. Needs the front to run as root.
   */
  keyUser?: string;
  /** The certificate's public key: the child's key must match it, or start fails. */
  expectedPublicKey?: KeyObject;
  /**
   * Let the key process sign delegated credentials (RFC 9345) for this key's certificate,
   * valid for at most `maxValidityMs` (default 6 h, at most 7 days). Off by default: a
   * credential keeps signing handshakes after the front loses its key process.
   */
  delegatedCredentials?: boolean | { maxValidityMs?: number };
  /** Backoff between restarts of a dead key process (default 100 ms doubling to 5 s). */
  restart?: { minDelayMs?: number; maxDelayMs?: number };
  /**
   * How long an operation issued while the key process is down waits for the restart
   * before failing with 'unavailable' (default 1000 ms; 0 fails at once).
   */
  restartWaitMs?: number;
  /** Deadline of one operation once sent to the key process ('timeout'; default 10 s). */
  operationTimeoutMs?: number;
  /** How long startKeyProcess waits for the child to load the key (default 10 s). */
  startTimeoutMs?: number;
  /**
   * Whether the key process must make itself non-dumpable (PR_SET_DUMPABLE 0) before it
   * reads the key, so that the front can neither trace it nor read its memory: 'require'
   * (default: start fails when it cannot, e.g. the native addon is not built), 'prefer'
   * (it runs dumpable then, and {@link KeyProcessHost.protection} says so), 'off' (debugging only).
   */
  nonDumpable?: NonDumpablePolicy;
  logger?: KeyProcessLogger;
}

/**
 * Options of {@link startPskProcess}: like KeyProcessOptions, with a PSK file instead of a
 * key file.
 */
export interface PskProcessOptions extends Omit<KeyProcessOptions, 'keyPath' | 'expectedPublicKey'> {
  /**
   * Path of the PSK file: one `identity:hexkey` per line (blank lines and lines starting
   * with # are skipped; the identity is UTF-8 text up to the last colon). Only the child opens it.
   */
  pskPath: string;
  /**
   * An identity not in the file: 'random' (default) answers a random master secret, so the
   * peer cannot tell which identities exist; 'reject' makes the handshake fail with
   * unknown_psk_identity.
   */
  unknownIdentity?: 'random' | 'reject';
}

/** Payload of the 'exit' event: a key process ended (crash, kill, or close()). */
export interface KeyProcessExit {
  pid: number | undefined;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** true when close() asked for it. */
  expected: boolean;
}

/** Payload of the 'restart' event: a replacement key process is ready. */
export interface KeyProcessRestart {
  pid: number | undefined;
  restarts: number;
}

const CHILD_SCRIPT = fileURLToPath(new URL('./keyProcessChild.js', import.meta.url));

const noopLogger: KeyProcessLogger = { info() {}, warn() {}, error() {} };

/** A running key process and its channel. */
interface Channel {
  child: KeyChild;
  socket: Socket;
  writer: FrameWriter;
  decoder: FrameDecoder;
  spki: Buffer;
  schemes: number[];
  /** The child reported PR_SET_DUMPABLE 0 in force. */
  nonDumpable: boolean;
  startedAt: number;
  /** Receives frames after READY. */
  onFrame: (f: Frame) => void;
}

interface Pending {
  resolve: (v: Uint8Array) => void;
  reject: (e: Error) => void;
  signal: AbortSignal;
  onAbort: () => void;
  /** Encoded request; kept while waiting for a restart, then dropped. */
  frame: Buffer | undefined;
  /** performance.now() when sent to the child, or when it began waiting for one. */
  since: number;
}

/**
 * Starts a key process for `opts.keyPath` and resolves once it holds the key and has
 * sent back its public key. Rejects with a message naming the file and the reason
 * (never its content) when the file is missing, unreadable, not a private key, of a
 * type TLS cannot use, or does not match `expectedPublicKey`.
 */
export async function startKeyProcess(opts: KeyProcessOptions): Promise<KeyProcessKey> {
  const resolved = { ...opts, keyPath: resolvePath(opts.keyPath) };
  const ids = opts.keyUser !== undefined ? lookupUser(opts.keyUser) : undefined;
  if (ids && process.getuid?.() !== 0 && ids.uid !== process.getuid?.()) {
    throw new Error(`key process: running the key process as ${opts.keyUser} needs root`);
  }
  const spec = launchSpec(opts, keyArgs(resolved), resolved.keyPath);
  const launcher = startLauncher(spec, ids);
  let ch: Channel;
  try {
    ch = await launch(spec, ids, opts.startTimeoutMs ?? 10_000, launcher);
  } catch (e) {
    launcher?.close();
    throw e;
  }
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: ch.spki, format: 'der', type: 'spki' });
    if (opts.expectedPublicKey) {
      const expected = opts.expectedPublicKey.type === 'public' ? opts.expectedPublicKey : createPublicKey(opts.expectedPublicKey);
      if (!expected.export({ type: 'spki', format: 'der' }).equals(ch.spki)) {
        throw new Error(`key process: key does not match certificate (key file ${resolved.keyPath})`);
      }
      publicKey = expected;
    }
  } catch (e) {
    ch.child.kill('SIGKILL');
    launcher?.close();
    throw e;
  }
  return new KeyProcessKey(resolved, ids, ch, publicKey, launcher);
}

/** What a key process is started with: child arguments, and a name for messages (never content). */
interface LaunchSpec {
  args: string[];
  what: string;
}

/**
 * A launcher that keeps root for restarts when key processes run as another user and this
 * process is root (it may drop root afterwards, see keyProcessLauncher.ts).
 */
function startLauncher(spec: LaunchSpec, ids: { uid: number; gid: number } | undefined): KeyProcessLauncher | undefined {
  return ids && process.getuid?.() === 0 ? new KeyProcessLauncher([CHILD_SCRIPT, ...spec.args], ids) : undefined;
}

/** The key process's arguments after the dumpable policy: [--dc-max-validity=SECONDS] KEYPATH. */
function keyArgs(opts: KeyProcessOptions): string[] {
  const dc = opts.delegatedCredentials;
  if (!dc) return [opts.keyPath];
  const ms = (dc === true ? undefined : dc.maxValidityMs) ?? DEFAULT_DC_MAX_VALIDITY_MS;
  const bad = checkDcMaxValidity(ms);
  if (bad) throw new Error(`key process: ${bad}`);
  return [`--dc-max-validity=${Math.floor(ms / 1000)}`, opts.keyPath];
}

function launchSpec(opts: { nonDumpable?: NonDumpablePolicy }, args: string[], what: string): LaunchSpec {
  return { args: [`--dumpable-policy=${opts.nonDumpable ?? 'require'}`, ...args], what };
}

/** Settings every key process has (KeyProcessOptions without the key file). */
type HostOptions = Omit<KeyProcessOptions, 'keyPath' | 'expectedPublicKey'>;

/**
 * A forked key process and its channel: requests, deadlines, cancellation, restarts.
 * KeyProcessKey (a private key) and KeyProcessPsk (PSKs) add their operations on top.
 *
 * Failure model: when the child dies, every pending operation rejects at once with
 * KeyOperationError('unavailable'); the child is restarted with exponential backoff.
 * Operations issued while it is down wait up to `restartWaitMs` for the replacement,
 * then fail with 'unavailable'. Events: 'exit' (KeyProcessExit), 'restart' (KeyProcessRestart).
 */
export class KeyProcessHost extends EventEmitter {
  readonly #opts: HostOptions;
  readonly #spec: LaunchSpec;
  readonly #ids: { uid: number; gid: number } | undefined;
  /** Starts key processes as #ids when this process may no longer do so itself. */
  readonly #launcher: KeyProcessLauncher | undefined;
  readonly #log: KeyProcessLogger;
  readonly #spki: Buffer;
  #channel: Channel | undefined;
  #nonDumpable = false;
  readonly #pending = new Map<number, Pending>();
  /** Operations waiting for a restarted child, in arrival order. */
  readonly #waiting = new Map<number, Pending>();
  #nextId = 1;
  #closed = false;
  #restarts = 0;
  #exits = 0;
  #failedStarts = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  #sweepTimer: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;

  /** @internal use startKeyProcess or startPskProcess */
  constructor(opts: HostOptions, spec: LaunchSpec, ids: { uid: number; gid: number } | undefined, ch: Channel, launcher: KeyProcessLauncher | undefined) {
    super();
    this.#opts = opts;
    this.#spec = spec;
    this.#ids = ids;
    this.#launcher = launcher;
    this.#log = opts.logger ?? noopLogger;
    this.#spki = ch.spki;
    this.#attach(ch);
  }

  /** Where to log; never given secrets. */
  protected get log(): KeyProcessLogger {
    return this.#log;
  }

  /** Pid of the current key process, or undefined while it is down. */
  get pid(): number | undefined {
    return this.#channel?.child.pid;
  }

  /** What keeps the front out of the key process's memory (of the current child, else the last one). */
  get protection(): KeyProcessProtection {
    return { nonDumpable: this.#nonDumpable, user: this.#opts.keyUser };
  }

  /** {@link protection} in one sentence, for start-up output. */
  describeProtection(): string {
    return describeProtection(this.protection);
  }

  /** How many times a replacement key process has come up. */
  get restarts(): number {
    return this.#restarts;
  }

  /** How many key processes have exited (crashes and close()). */
  get exits(): number {
    return this.#exits;
  }

  /** Operations sent to the key process and not yet answered, plus those waiting for a restart. */
  get pendingCount(): number {
    return this.#pending.size + this.#waiting.size;
  }

  /**
   * Stops the key process. Pending operations fail with 'unavailable'. Resolves when the
   * child has exited (it is killed if it does not leave within 2 s).
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    clearTimeout(this.#restartTimer);
    clearInterval(this.#sweepTimer);
    this.#sweepTimer = undefined;
    this.#failAll(new KeyOperationError('unavailable', 'key process closed'));
    const ch = this.#channel;
    this.#channel = undefined;
    this.#closing = (ch ? stopChild(ch) : Promise.resolve()).then(() => this.#launcher?.close());
    return this.#closing;
  }

  /** Sends one request; resolves with the OK payload, rejects with a KeyOperationError. */
  protected submit(encode: (id: number) => Buffer, signal: AbortSignal): Promise<Uint8Array> {
    if (signal.aborted) return Promise.reject(new KeyOperationError('aborted', 'operation aborted'));
    if (this.#closed) return Promise.reject(new KeyOperationError('unavailable', 'key process closed'));
    const ch = this.#channel;
    const waitMs = this.#opts.restartWaitMs ?? 1000;
    if (!ch && waitMs <= 0) return Promise.reject(new KeyOperationError('unavailable', 'key process is down (restarting)'));
    const id = this.#nextId;
    this.#nextId = this.#nextId >= 0xffffffff ? 1 : this.#nextId + 1;
    return new Promise<Uint8Array>((resolve, reject) => {
      const frame = encode(id);
      const p: Pending = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          const where = this.#pending.get(id) === p ? this.#pending : this.#waiting.get(id) === p ? this.#waiting : undefined;
          if (!where) return;
          where.delete(id);
          this.#idleCheck();
          // Tell the child to drop the work if it has not started it yet.
          if (where === this.#pending) this.#channel?.writer.send(encodeFrame(FrameType.cancel, id));
          reject(new KeyOperationError('aborted', 'operation aborted'));
        },
        frame: undefined,
        since: performance.now(),
      };
      signal.addEventListener('abort', p.onAbort, { once: true });
      if (ch) {
        this.#pending.set(id, p);
        ch.writer.send(frame);
      } else {
        p.frame = frame;
        this.#waiting.set(id, p);
      }
      this.#busy();
    });
  }

  #settle(id: number, f: Frame): void {
    const p = this.#pending.get(id);
    if (!p) return; // aborted or timed out meanwhile
    this.#pending.delete(id);
    p.signal.removeEventListener('abort', p.onAbort);
    if (f.type === FrameType.ok) {
      p.resolve(new Uint8Array(f.payload));
    } else if (f.payload.length > 0 && f.payload[0] === UNKNOWN_PSK_IDENTITY) {
      p.reject(new UnknownPskIdentityError());
    } else {
      const code = f.payload.length > 0 ? decodeErrorCode(f.payload[0]) : 'internal';
      const msg = f.payload.length > 1 ? f.payload.subarray(1).toString('utf8') : 'key process error';
      p.reject(new KeyOperationError(code, `key process: ${msg}`));
    }
    this.#idleCheck();
  }

  #attach(ch: Channel): void {
    this.#channel = ch;
    this.#nonDumpable = ch.nonDumpable;
    if (!ch.nonDumpable) this.#log.warn({ pid: ch.child.pid, nonDumpable: false }, 'key process is dumpable: the front could read its memory');
    ch.onFrame = (f) => {
      if (this.#channel !== ch) return; // a late answer from a replaced child
      if (f.type === FrameType.ok || f.type === FrameType.error) this.#settle(f.id, f);
    };
    ch.child.once('exit', (code, signal) => this.#onExit(ch, code, signal));
    // Requests that waited for this child go out now.
    for (const [id, p] of this.#waiting) {
      this.#waiting.delete(id);
      this.#pending.set(id, p);
      p.since = performance.now();
      ch.writer.send(p.frame as Buffer);
      p.frame = undefined;
    }
  }

  #onExit(ch: Channel, code: number | null, signal: NodeJS.Signals | null): void {
    this.#exits++;
    const expected = this.#closed;
    this.emit('exit', { pid: ch.child.pid, code, signal, expected } satisfies KeyProcessExit);
    if (this.#channel !== ch) return;
    this.#channel = undefined;
    ch.writer.clear();
    const how = signal ? `signal ${signal}` : `code ${code}`;
    this.#log.warn({ pid: ch.child.pid, code, signal }, 'key process exited');
    this.#failPending(new KeyOperationError('unavailable', `key process exited (${how})`));
    // A child that lived a while earns a fresh backoff; one that crashes at once does not.
    if (performance.now() - ch.startedAt > 10_000) this.#failedStarts = 0;
    this.#scheduleRestart();
  }

  #scheduleRestart(): void {
    if (this.#closed) return;
    const min = this.#opts.restart?.minDelayMs ?? 100;
    const max = this.#opts.restart?.maxDelayMs ?? 5000;
    const delay = Math.min(max, min * 2 ** Math.min(this.#failedStarts, 20));
    this.#failedStarts++;
    this.#log.info({ delayMs: delay }, 'restarting key process');
    this.#restartTimer = setTimeout(() => void this.#restart(), delay);
  }

  async #restart(): Promise<void> {
    if (this.#closed) return;
    let ch: Channel;
    try {
      ch = await launch(this.#spec, this.#ids, this.#opts.startTimeoutMs ?? 10_000, this.#launcher);
    } catch (e) {
      this.#log.error({ err: (e as Error).message }, 'key process restart failed');
      this.#failWaiting(new KeyOperationError('unavailable', 'key process is down: restart failed'));
      this.#scheduleRestart();
      return;
    }
    if (this.#closed) {
      void stopChild(ch);
      return;
    }
    if (!ch.spki.equals(this.#spki)) {
      this.#log.error({ file: this.#spec.what }, 'the file now holds a different key; not using it');
      ch.child.kill('SIGKILL');
      this.#failWaiting(new KeyOperationError('unavailable', 'key process is down: key file changed'));
      this.#scheduleRestart();
      return;
    }
    this.#restarts++;
    this.#attach(ch);
    this.#log.info({ pid: ch.child.pid, restarts: this.#restarts }, 'key process restarted');
    this.emit('restart', { pid: ch.child.pid, restarts: this.#restarts } satisfies KeyProcessRestart);
  }

  /** Runs the deadline sweep while work is outstanding. */
  #busy(): void {
    if (!this.#sweepTimer) {
      this.#sweepTimer = setInterval(() => this.#sweep(), 100);
      this.#sweepTimer.unref();
    }
  }

  #idleCheck(): void {
    if (this.#pending.size + this.#waiting.size > 0) return;
    clearInterval(this.#sweepTimer);
    this.#sweepTimer = undefined;
  }

  /** Fails operations past their deadline (oldest first: both maps keep insertion order). */
  #sweep(): void {
    const now = performance.now();
    const opTimeout = this.#opts.operationTimeoutMs ?? 10_000;
    const waitMs = this.#opts.restartWaitMs ?? 1000;
    for (const [id, p] of this.#pending) {
      if (now - p.since < opTimeout) break;
      this.#pending.delete(id);
      this.#channel?.writer.send(encodeFrame(FrameType.cancel, id));
      p.signal.removeEventListener('abort', p.onAbort);
      p.reject(new KeyOperationError('timeout', `key process did not answer within ${opTimeout} ms`));
    }
    for (const [id, p] of this.#waiting) {
      if (now - p.since < waitMs) break;
      this.#waiting.delete(id);
      p.signal.removeEventListener('abort', p.onAbort);
      p.reject(new KeyOperationError('unavailable', 'key process is down (restarting)'));
    }
    this.#idleCheck();
  }

  #failPending(err: KeyOperationError): void {
    const all = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of all) {
      p.signal.removeEventListener('abort', p.onAbort);
      p.reject(err);
    }
    this.#idleCheck();
  }

  #failWaiting(err: KeyOperationError): void {
    // Only those that already waited their allowance; newer ones keep waiting for the next try.
    const waitMs = this.#opts.restartWaitMs ?? 1000;
    const now = performance.now();
    for (const [id, p] of this.#waiting) {
      if (now - p.since < waitMs) continue;
      this.#waiting.delete(id);
      p.signal.removeEventListener('abort', p.onAbort);
      p.reject(err);
    }
    this.#idleCheck();
  }

  #failAll(err: KeyOperationError): void {
    this.#failPending(err);
    const all = [...this.#waiting.values()];
    this.#waiting.clear();
    for (const p of all) {
      p.signal.removeEventListener('abort', p.onAbort);
      p.reject(err);
    }
    this.#idleCheck();
  }
}

/**
 * KeyOperations backed by a separate key process (the titus model): the front (this
 * process) never opens, reads or stats the key file; it only knows the path. The child
 * alone loads the key and answers sign / decryptPremaster requests over a private
 * socketpair, many in flight at once.
 *
 * Failure model: when the child dies, every pending operation rejects at once with
 * KeyOperationError('unavailable'); the child is restarted with exponential backoff.
 * Operations issued while it is down wait up to `restartWaitMs` for the replacement,
 * then fail with 'unavailable' (bounded, so a key file that has gone away does not hold
 * handshakes for long). A replacement whose key differs from the first one is not used.
 *
 * Events: 'exit' (KeyProcessExit), 'restart' (KeyProcessRestart).
 *
 * Like a listening server, it keeps the event loop alive until close().
 */
export class KeyProcessKey extends KeyProcessHost implements KeyOperations, DelegatedCredentialIssuer {
  readonly publicKey: KeyObject;
  readonly schemes: readonly SignatureScheme[];
  readonly keyId: string;
  /** Present only for RSA keys (TLS 1.2 RSA key exchange). */
  readonly decryptPremaster?: (ciphertext: Uint8Array, clientVersion: number, ctx: OperationContext, signal: AbortSignal) => Promise<Uint8Array>;

  /** @internal use startKeyProcess */
  constructor(opts: KeyProcessOptions, ids: { uid: number; gid: number } | undefined, ch: Channel, publicKey: KeyObject, launcher?: KeyProcessLauncher) {
    super(opts, launchSpec(opts, keyArgs(opts), opts.keyPath), ids, ch, launcher);
    this.publicKey = publicKey;
    const fits = new Set<number>(schemesForKey(publicKey));
    this.schemes = ch.schemes.filter((s) => fits.has(s)) as SignatureScheme[];
    this.keyId = keyIdOf(publicKey);
    // The child signs with node:crypto under the key it showed to match the certificate.
    if (new.target === KeyProcessKey) vouchForSignatures(this);
    if (publicKey.asymmetricKeyType === 'rsa') {
      this.decryptPremaster = (ciphertext, clientVersion, _ctx, signal) =>
        ciphertext.length > MAX_OPERATION_INPUT
          ? Promise.reject(new KeyOperationError('bad-request', 'ciphertext too long'))
          : this.submit((id) => encodeDecrypt(id, clientVersion, ciphertext), signal);
    }
    this.log.info({ pid: ch.child.pid, keyId: this.keyId }, 'key process ready');
  }

  sign(scheme: SignatureScheme, message: Uint8Array, ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array> {
    if (!schemeFitsVersion(this.schemes, scheme, ctx.tlsVersion)) {
      return Promise.reject(new KeyOperationError('unsupported', `signature scheme ${schemeName(scheme)} does not fit this key`));
    }
    // Never a handshake input; refusing here keeps an oversized frame off the channel.
    if (message.length > MAX_OPERATION_INPUT) return Promise.reject(new KeyOperationError('refused', 'message too long for a handshake signature'));
    return this.submit((id) => encodeSign(id, scheme, ctx.purpose, message), signal);
  }

  /**
   * Has the key process sign a delegated credential for this key's certificate (started
   * with `delegatedCredentials`; it runs the same structural checks as keyd). The
   * signature is verified here before it is returned.
   */
  async issueDelegatedCredential(request: DelegatedCredentialRequest, _ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array> {
    if (request.certificate.length > MAX_DC_CERTIFICATE) throw new KeyOperationError('bad-request', 'certificate too large for a delegated credential request');
    let sig: Uint8Array;
    try {
      sig = await this.submit((id) => encodeIssueDc(id, request), signal);
    } catch (e) {
      if (e instanceof KeyOperationError && e.code === 'refused') this.log.warn({ keyId: this.keyId, reason: e.message }, 'delegated credential refused');
      throw e;
    }
    if (!verifyDelegatedCredential(this.publicKey, request, sig)) throw new KeyOperationError('internal', 'the key process returned a delegated credential signature that does not verify');
    this.log.info({ keyId: this.keyId, dcKey: keyIdOf(createPublicKey({ key: Buffer.from(request.credential.spki), format: 'der', type: 'spki' })) }, 'delegated credential issued');
    return sig;
  }
}

/**
 * Starts a PSK process for `opts.pskPath` and resolves once it has loaded the file. Rejects
 * with a message naming the file, the line and the reason (never a key) when the file is
 * missing, unreadable or malformed.
 */
export async function startPskProcess(opts: PskProcessOptions): Promise<KeyProcessPsk> {
  const pskPath = resolvePath(opts.pskPath);
  const ids = opts.keyUser !== undefined ? lookupUser(opts.keyUser) : undefined;
  if (ids && process.getuid?.() !== 0 && ids.uid !== process.getuid?.()) {
    throw new Error(`key process: running the key process as ${opts.keyUser} needs root`);
  }
  const spec = pskLaunchSpec({ ...opts, pskPath });
  const launcher = startLauncher(spec, ids);
  let ch: Channel;
  try {
    ch = await launch(spec, ids, opts.startTimeoutMs ?? 10_000, launcher);
    if (ch.spki.length !== 0 || ch.schemes.length !== 0) {
      ch.child.kill('SIGKILL');
      throw new Error('key process: a PSK process answered like a key process');
    }
  } catch (e) {
    launcher?.close();
    throw e;
  }
  return new KeyProcessPsk({ ...opts, pskPath }, ids, ch, launcher);
}

function pskLaunchSpec(opts: PskProcessOptions): LaunchSpec {
  return launchSpec(opts, ['--psk', opts.pskPath, opts.unknownIdentity === 'reject' ? 'reject' : 'random'], opts.pskPath);
}

/**
 * PSK operations backed by a key process that alone reads the PSK file. TLS 1.2 (RFC 4279):
 * the front sends the identity, the ECDHE shared secret (ECDHE_PSK) and the seed, and gets
 * back only the 48-byte master secret. TLS 1.3 (Tls13PskOperations): the front sends the
 * identity, the suite's hash, a transcript hash and the (EC)DHE secret, and gets back a
 * binder, a verdict, or transcript-bound secrets; the Early, Handshake and Master Secrets
 * stay in the child. Same failure model and events as KeyProcessKey; a restarted child
 * rereads the file.
 */
export class KeyProcessPsk extends KeyProcessHost implements PskOperations, Tls13PskOperations {
  /** @internal use startPskProcess */
  constructor(opts: PskProcessOptions, ids: { uid: number; gid: number } | undefined, ch: Channel, launcher?: KeyProcessLauncher) {
    super(opts, pskLaunchSpec(opts), ids, ch, launcher);
    this.log.info({ pid: ch.child.pid }, 'PSK process ready');
  }

  tls12MasterSecret(req: PskMasterSecretRequest, _ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array> {
    // Checked here too so that an oversized request never reaches the channel.
    if (req.identity.length > MAX_PSK_IDENTITY || (req.otherSecret?.length ?? 0) > MAX_PSK_OTHER_SECRET || req.seed.length > 64) {
      return Promise.reject(new KeyOperationError('bad-request', 'PSK master secret request too long'));
    }
    if (req.hash !== 'sha256' && req.hash !== 'sha384') return Promise.reject(new KeyOperationError('bad-request', 'PSK master secret hash must be sha256 or sha384'));
    return this.submit((id) => encodePskMasterSecret(id, req), signal);
  }

  /** One TLS 1.3 step in the child; its answer split into `parts` secrets of the hash's length. */
  async #tls13(frame: Tls13PskFrame, parts: number, signal: AbortSignal): Promise<Buffer[]> {
    // Checked here too so that a malformed request never reaches the channel.
    checkTls13PskRequest(frame);
    if (frame.binder && frame.binder.length > 255) throw new KeyOperationError('bad-request', 'a PSK binder is at most 255 bytes');
    const raw = await this.submit((id) => encodeTls13Psk(id, frame), signal);
    const out = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    const n = hashLength(frame.hash);
    if (out.length !== parts * n) {
      out.fill(0);
      throw new KeyOperationError('internal', 'key process: a TLS 1.3 PSK answer of the wrong length');
    }
    const secrets = Array.from({ length: parts }, (_, i) => Buffer.from(out.subarray(i * n, (i + 1) * n)));
    out.fill(0);
    return secrets;
  }

  async tls13Binder(req: Tls13PskRequest & { transcriptHash: Uint8Array }, _ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array> {
    const [binder] = await this.#tls13({ step: 'binder', identity: req.identity, hash: req.hash, transcriptHash: req.transcriptHash, dheSecret: null }, 1, signal);
    return binder;
  }

  async tls13VerifyBinder(req: Tls13PskRequest & { transcriptHash: Uint8Array; binder: Uint8Array }, _ctx: OperationContext, signal: AbortSignal): Promise<boolean> {
    checkTls13PskRequest(req);
    if (req.binder.length > 255) throw new KeyOperationError('bad-request', 'a PSK binder is at most 255 bytes');
    const frame: Tls13PskFrame = { step: 'verify-binder', identity: req.identity, hash: req.hash, transcriptHash: req.transcriptHash, dheSecret: null, binder: req.binder };
    const out = await this.submit((id) => encodeTls13Psk(id, frame), signal);
    if (out.length !== 1 || out[0] > 1) throw new KeyOperationError('internal', 'key process: a malformed binder verdict');
    return out[0] === 1;
  }

  async tls13HandshakeSecrets(req: Tls13PskScheduleRequest, _ctx: OperationContext, signal: AbortSignal): Promise<{ client: Uint8Array; server: Uint8Array }> {
    const [client, server] = await this.#tls13({ step: 'handshake-secrets', ...scheduleFields(req) }, 2, signal);
    return { client, server };
  }

  async tls13ApplicationSecrets(req: Tls13PskScheduleRequest, _ctx: OperationContext, signal: AbortSignal): Promise<{ client: Uint8Array; server: Uint8Array; exporter: Uint8Array }> {
    const [client, server, exporter] = await this.#tls13({ step: 'application-secrets', ...scheduleFields(req) }, 3, signal);
    return { client, server, exporter };
  }

  async tls13ResumptionMasterSecret(req: Tls13PskScheduleRequest, _ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array> {
    const [rms] = await this.#tls13({ step: 'resumption-master-secret', ...scheduleFields(req) }, 1, signal);
    return rms;
  }
}

/** The fields of a schedule request a TLS13_PSK frame carries. */
function scheduleFields(req: Tls13PskScheduleRequest): Omit<Tls13PskFrame, 'step'> {
  return { identity: req.identity, hash: req.hash, transcriptHash: req.transcriptHash, dheSecret: req.dheSecret };
}

/**
 * Spawns a key process (itself, or through `launcher`) and waits for READY. The child gets
 * a clean environment, `/` as working directory, no stdin/stdout, and a socketpair on fd
 * 3 that only the two processes hold.
 */
async function launch(spec: LaunchSpec, ids: { uid: number; gid: number } | undefined, timeoutMs: number, launcher: KeyProcessLauncher | undefined): Promise<Channel> {
  let child: KeyChild;
  let socket: Socket;
  try {
    if (launcher) {
      ({ child, socket } = await launcher.spawn());
    } else {
      const env: NodeJS.ProcessEnv = {};
      if (process.env.UV_THREADPOOL_SIZE) env.UV_THREADPOOL_SIZE = process.env.UV_THREADPOOL_SIZE;
      const proc = spawn(process.execPath, [CHILD_SCRIPT, ...spec.args], {
        stdio: ['ignore', 'ignore', 'inherit', 'pipe'],
        cwd: '/',
        env,
        ...(ids ? { uid: ids.uid, gid: ids.gid } : {}),
      });
      child = proc;
      socket = proc.stdio[3] as Socket;
    }
  } catch (e) {
    throw new Error(`key process: cannot start: ${(e as Error).message}`, { cause: e });
  }
  return new Promise<Channel>((resolve, reject) => {
    let settled = false;
    const fail = (msg: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(msg));
    };
    const timer = setTimeout(() => fail(`key process: no answer within ${timeoutMs} ms while loading ${spec.what}`), timeoutMs);
    child.on('error', (e) => fail(`key process: cannot start: ${e.message}`));
    // 'close', not 'exit': it comes after the channel is drained, so a START_FAILED
    // message sent just before exiting is read first and gives the real reason.
    child.once('close', (code, signal) => fail(`key process exited during start (${signal ? `signal ${signal}` : `code ${code}`}) while loading ${spec.what}`));
    const decoder = new FrameDecoder();
    const ch: Channel = {
      child,
      socket,
      writer: new FrameWriter((b) => socket.write(b)),
      decoder,
      spki: Buffer.alloc(0),
      schemes: [],
      nonDumpable: false,
      startedAt: performance.now(),
      onFrame: (f) => {
        if (settled) return;
        if (f.type === FrameType.startFailed) return fail(`key process: ${f.payload.toString('utf8')}`);
        const ready = f.type === FrameType.ready ? decodeReady(f.payload) : undefined;
        if (!ready) return fail('key process: unexpected first message');
        settled = true;
        clearTimeout(timer);
        ch.spki = ready.spki;
        ch.schemes = ready.schemes;
        ch.nonDumpable = ready.nonDumpable;
        resolve(ch);
      },
    };
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk, (f) => ch.onFrame(f));
      } catch {
        // A garbled stream from the child: kill it; the exit handler takes over.
        fail('key process: malformed message');
        child.kill('SIGKILL');
      }
    });
    // EPIPE and the like surface as the child's exit; nothing else to do here.
    socket.on('error', () => {});
  });
}

/** Closes the channel (the child exits on EOF), escalating to signals if it lingers. */
function stopChild(ch: Channel): Promise<void> {
  return new Promise<void>((resolve) => {
    if (ch.child.exitCode !== null || ch.child.signalCode !== null) return resolve();
    const term = setTimeout(() => ch.child.kill('SIGTERM'), 1000);
    const kill = setTimeout(() => ch.child.kill('SIGKILL'), 2000);
    ch.child.once('exit', () => {
      clearTimeout(term);
      clearTimeout(kill);
      resolve();
    });
    ch.writer.clear();
    ch.socket.end();
  });
}

/**
 * Drops this process (a front that ran as root to start its key processes with
 * `keyUser`) to `user` for good: supplementary groups, group, then user. Key processes
 * started with `keyUser` are restarted by their launcher afterwards. Throws unless this
 * process is root, or when the kernel did not drop all three ids.
 */
export function dropPrivileges(user: string): { uid: number; gid: number } {
  const ids = lookupUser(user);
  if (process.getuid?.() !== 0 || !process.setuid || !process.setgid || !process.setgroups) throw new Error(`dropping privileges to ${user} needs root`);
  process.setgroups([ids.gid]);
  process.setgid(ids.gid);
  process.setuid(ids.uid);
  if (process.getuid() !== ids.uid || process.geteuid?.() !== ids.uid || process.getgid?.() !== ids.gid || process.getegid?.() !== ids.gid) {
    throw new Error(`could not drop privileges to ${user}`);
  }
  return ids;
}

/**
 * Resolves a user to uid/gid: numeric `uid` or `uid:gid`, else /etc/passwd, else
 * `getent passwd` (NSS). Node has no getpwnam.
 */
export function lookupUser(user: string): { uid: number; gid: number } {
  const numeric = /^(\d+)(?::(\d+))?$/.exec(user);
  if (numeric) {
    const uid = Number(numeric[1]);
    return { uid, gid: numeric[2] !== undefined ? Number(numeric[2]) : uid };
  }
  const fromLine = (line: string): { uid: number; gid: number } | undefined => {
    const f = line.split(':');
    if (f.length < 4 || f[0] !== user) return undefined;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : undefined;
  };
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const r = fromLine(line);
      if (r) return r;
    }
  } catch {
    // fall through to getent
  }
  try {
    const r = fromLine(execFileSync('getent', ['passwd', user], { encoding: 'utf8', timeout: 5000 }).trim());
    if (r) return r;
  } catch {
    // not found
  }
  throw new Error(`key process: unknown user ${user}`);
}
