/**
 * Tamper-evident audit log: append-only JSON lines, each carrying `prev`, the SHA-256 of
 * the previous line's exact bytes (the first line chains to a fixed genesis hash), and
 * `seq`, its position in the log. Editing, removing or reordering any line breaks the
 * chain at a place `verifyAuditLog` names.
 *
 * Durability, in two steps. `append` resolves once its line has been written to the file
 * (a write(2): the line is in the kernel's page cache and survives a crash of keyd), and
 * keyd awaits that before it returns an operation's result, so no result ever leaves
 * without its line. fsync follows in small batches (mode 'batch', the default): at most
 * `syncIntervalMs` after the first unsynced line, or as soon as `syncLines` lines wait;
 * a machine crash (power, kernel) can lose at most that window. Mode 'always' resolves
 * `append` only after the fsync covering its line (group commit), at the price of one
 * fsync in every lone operation's latency.
 *
 * What a hash chain alone cannot show: whoever can write the file can change a line and
 * recompute every later `prev`, or cut lines from the end. Two things reach beyond keyd's
 * host: signed checkpoints (a `checkpoint` line whose Ed25519 signature, by an audit key
 * sealed in keyd's store, covers the chain up to it: `verifyAuditLog` with the public key
 * reports a log re-chained before a checkpoint), and a sink that ships each line elsewhere
 * as it is written (auditSink.ts).
 */
import { hexDigest } from '../tls/crypto/hash.js';
import { sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { constants as fsConstants, createReadStream, writeSync } from 'node:fs';
import { keyIdOf } from '../keys/keyId.js';
import { open, stat, type FileHandle } from 'node:fs/promises';

/** `prev` of the first line: SHA-256 of a fixed string. */
export const AUDIT_GENESIS = hexDigest('sha256', 'keyward audit log v1 genesis');

/** Longest line the verifier accepts; keyd's lines are a few hundred bytes. */
const MAX_LINE_BYTES = 1 << 20;

/** What one audit line records. Never a secret: no key bytes, no messages, no outputs. */
export interface AuditRecord {
  /** Front identity (e.g. "cn:front-1", "unix"), or "-" before authentication. */
  client: string;
  /** 'sign', 'get-key', 'psk-master-secret', 'put-key', 'generate-key', ... */
  op: string;
  /** 'ok', a KeyErrorCode ('refused', 'unknown-key', ...), or 'cancelled'. */
  outcome: string;
  keyId?: string;
  scheme?: string;
  /** SNI of the TLS connection the operation serves. */
  serverName?: string;
  /** The TLS peer's address, as the front reported it. */
  peer?: string;
  /** The front's own address on the keyd link. */
  front?: string;
  purpose?: string;
  /** The input was recomputed from the handshake messages (bound mode). */
  bound?: boolean;
  connectionId?: string;
  /** PSK identity, hex (identities travel in clear in TLS). */
  pskIdentity?: string;
  /** Delegated credentials: hex SHA-256 of the credential key's SPKI. */
  dcKey?: string;
  /** Delegated credentials: the credential's scheme (dc_cert_verify_algorithm). */
  dcScheme?: string;
  /** Delegated credentials: when the credential expires (ISO 8601). */
  dcExpires?: string;
  /** Ticket keys fetched or rotated: their names (hex, public: every ticket carries one), comma-separated; never the keys. */
  ticketKeys?: string;
  /** Why a request was refused or failed. */
  reason?: string;
  latencyMs?: number;
  /** Checkpoint lines: the id (SHA-256 of the SPKI, hex) of the audit key that signed them. */
  auditKey?: string;
  /** Checkpoint lines: Ed25519 signature (base64) of {@link checkpointPayload}. */
  signature?: string;
}

const FIELD_ORDER: readonly (keyof AuditRecord)[] = [
  'client',
  'op',
  'outcome',
  'keyId',
  'scheme',
  'serverName',
  'peer',
  'front',
  'purpose',
  'bound',
  'connectionId',
  'pskIdentity',
  'dcKey',
  'dcScheme',
  'dcExpires',
  'ticketKeys',
  'reason',
  'latencyMs',
  'auditKey',
  'signature',
];

/** Fields with few distinct values: their JSON fragments are kept (at most MAX_FRAGMENTS). */
const REPEATED_FIELDS = new Set<keyof AuditRecord>(['client', 'op', 'outcome', 'keyId', 'scheme', 'front', 'purpose']);
const MAX_FRAGMENTS = 1024;

const noop = (): void => {};


/**
 * What a checkpoint line's signature covers: its own seq, its `prev` (the hash of the line
 * before, which chains every earlier line), its time and the signing key's id.
 */
export function checkpointPayload(seq: number, prev: string, time: string, auditKey: string): Buffer {
  return Buffer.from(`keyward audit checkpoint v1\n${seq}\n${prev}\n${time}\n${auditKey}`, 'utf8');
}

/** Signs checkpoints: the audit key (Ed25519, kept sealed by keyd). */
export interface AuditCheckpointSigner {
  /** SHA-256 of the public key's SPKI, hex. */
  readonly keyId: string;
  readonly privateKey: KeyObject;
}

/** Options of signed checkpoints, see {@link AuditLogOptions.checkpoints}. */
export interface AuditCheckpointOptions {
  signer: AuditCheckpointSigner;
  /** A checkpoint at most this long after the first line it does not cover yet, ms (default 10000). */
  intervalMs?: number;
  /** ... or as soon as this many lines are not covered (default 10000). */
  lines?: number;
}

/** When an appended line is fsynced; see {@link AuditLogOptions.sync}. */
export type AuditSyncMode = 'batch' | 'always';

/** Options for {@link AuditLog.open}. */
export interface AuditLogOptions {
  /**
   * 'batch' (default): `append` resolves when the line is written to the file; fsync
   * follows within `syncIntervalMs` or `syncLines`. 'always': `append` resolves only after
   * an fsync that covers the line (lines arriving during one fsync share the next), which
   * adds one fsync (1-2 ms on a VM disk, more on a busy one) to a lone operation.
   */
  sync?: AuditSyncMode;
  /** Batch mode: longest time a written line waits for its fsync, ms (default 10). */
  syncIntervalMs?: number;
  /** Batch mode: fsync at once when this many written lines wait (default 64). */
  syncLines?: number;
  /**
   * false: never fsync while running, only at close (benchmarks only; lines are still
   * written before `append` resolves). Default true; false overrides `sync`.
   */
  durable?: boolean;
  /**
   * Signed checkpoints: a `checkpoint` line signed by the audit key, covering every line
   * before it, written within `intervalMs` or `lines` of the first line not covered yet,
   * on {@link AuditLog.checkpoint}, and at close.
   */
  checkpoints?: AuditCheckpointOptions;
  /** Called with each batch of lines once they are written to the file (e.g. an AuditSink). */
  onWritten?: (lines: readonly string[]) => void;
}

/** Counters of an {@link AuditLog}, for metrics and tests. */
export interface AuditLogStats {
  /** Lines written to the file (in the page cache at least). */
  written: number;
  /** Lines covered by a completed fsync. */
  synced: number;
  /** fsyncs completed. */
  syncs: number;
}

interface PendingLine {
  text: string;
  resolve: () => void;
  reject: (e: Error) => void;
}

interface SyncWaiter {
  /** Resolved once `synced` reaches this count. */
  upTo: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

/**
 * The writer. Lines are numbered and chained when `append` is called (so the chain
 * follows call order). Lines appended in one turn of the event loop are written together
 * by one write(2) at the end of that turn; fsyncs run on the thread pool and never hold
 * up a write.
 *
 * The write is synchronous on purpose: it copies a few hundred bytes into the page cache
 * (about 2 µs here), where a round trip through the thread pool costs 40 µs and queues
 * behind fsyncs and crypto work.
 */
export class AuditLog {
  readonly #fh: FileHandle;
  #seq: number;
  /** Hash of the last line; see #lastText. */
  #head: string;
  /** The last line, while its hash (the next line's `prev`) is not computed yet. */
  #lastText: string | undefined;
  /** JSON fragments of REPEATED_FIELDS values (see #chain). */
  readonly #fragments = new Map<string, string>();
  #secondStart = -1;
  #secondPrefix = '';
  #queue: PendingLine[] = [];
  #scheduled = false;
  #failed: Error | undefined;
  #closed = false;
  readonly #mode: AuditSyncMode | 'none';
  readonly #intervalMs: number;
  readonly #maxLines: number;
  #written = 0;
  #synced = 0;
  #syncs = 0;
  /** `written` at the start of the fsync in flight, if any. */
  #syncTarget: number | undefined;
  /** Another fsync is wanted as soon as the one in flight ends. */
  #syncAgain = false;
  #syncTimer: NodeJS.Timeout | undefined;
  #syncWaiters: SyncWaiter[] = [];
  readonly #checkpoints: Required<AuditCheckpointOptions> | undefined;
  /** seq of the last line a checkpoint covers (the line before the checkpoint). */
  #coveredSeq: number;
  #checkpointTimer: NodeJS.Timeout | undefined;
  /** The timer above is the at-once one (enough lines wait). */
  #checkpointSoon = false;
  readonly #onWritten: ((lines: readonly string[]) => void) | undefined;

  private constructor(
    readonly path: string,
    fh: FileHandle,
    seq: number,
    head: string,
    opts: AuditLogOptions,
  ) {
    this.#fh = fh;
    this.#seq = seq;
    this.#head = head;
    const mode = opts.sync ?? 'batch';
    if (mode !== 'batch' && mode !== 'always') throw new TypeError(`audit sync mode must be "batch" or "always", not ${String(mode)}`);
    this.#mode = opts.durable === false ? 'none' : mode;
    this.#intervalMs = opts.syncIntervalMs ?? 10;
    this.#maxLines = opts.syncLines ?? 64;
    if (!(this.#intervalMs >= 0 && this.#intervalMs <= 60_000)) throw new RangeError('audit syncIntervalMs must be 0..60000');
    if (!Number.isInteger(this.#maxLines) || this.#maxLines < 1) throw new RangeError('audit syncLines must be a positive integer');
    const cp = opts.checkpoints;
    if (cp) {
      if (cp.signer.privateKey.asymmetricKeyType !== 'ed25519') throw new TypeError('the audit checkpoint key must be an Ed25519 key');
      this.#checkpoints = { signer: cp.signer, intervalMs: cp.intervalMs ?? 10_000, lines: cp.lines ?? 10_000 };
      if (!(this.#checkpoints.intervalMs >= 1)) throw new RangeError('audit checkpoint intervalMs must be at least 1');
      if (!Number.isInteger(this.#checkpoints.lines) || this.#checkpoints.lines < 1) throw new RangeError('audit checkpoint lines must be a positive integer');
    }
    this.#coveredSeq = seq;
    this.#onWritten = opts.onWritten;
  }

  /**
   * Opens `path` for appending, creating it (mode 0600) when missing. An existing log is
   * continued: its last line gives the next `seq` and `prev`. A log whose last line is
   * incomplete or not JSON is refused with a clear error (nothing is rewritten).
   */
  static async open(path: string, opts: AuditLogOptions = {}): Promise<AuditLog> {
    const { seq, head } = await readAuditTail(path);
    const fh = await open(path, fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_CREAT, 0o600);
    try {
      return new AuditLog(path, fh, seq, head, opts);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  /** Sequence number and hash of the last line appended (0 and the genesis for an empty log). */
  get head(): { seq: number; hash: string } {
    return { seq: this.#seq, hash: this.#headHash() };
  }

  /**
   * Set when a write or an fsync failed: the log refuses further lines, and keyd refuses
   * operations (an fsync failure may have lost lines already written).
   */
  get failed(): Error | undefined {
    return this.#failed;
  }

  /** Lines written and fsynced so far (counted since open). */
  get stats(): AuditLogStats {
    return { written: this.#written, synced: this.#synced, syncs: this.#syncs };
  }

  /**
   * Appends one line. Resolves when it is written to the file (mode 'batch'; fsync follows
   * shortly) or written and fsynced (mode 'always'); rejects when it could not be written.
   */
  append(rec: AuditRecord): Promise<void> {
    if (this.#failed) return Promise.reject(this.#failed);
    if (this.#closed) return Promise.reject(new Error('audit log is closed'));
    const text = this.#chain(rec);
    return new Promise<void>((resolve, reject) => this.#enqueue({ text, resolve, reject }));
  }

  /**
   * True when a written line is all a result waits for (every mode but 'always'): then a
   * caller may {@link add} lines and {@link writeNow} them in the same turn, without a promise.
   */
  get writeIsEnough(): boolean {
    return this.#mode !== 'always';
  }

  /**
   * Numbers, chains and queues one line for the caller's next {@link writeNow} (in the same
   * turn: nothing else writes it). Only when {@link writeIsEnough}. Throws when the log has
   * failed or is closed.
   */
  add(rec: AuditRecord): void {
    if (this.#failed) throw this.#failed;
    if (this.#closed) throw new Error('audit log is closed');
    if (this.#mode === 'always') throw new Error('audit log in mode "always": use append');
    this.#queue.push({ text: this.#chain(rec), resolve: noop, reject: noop });
  }

  /** Writes every queued line now, with one write(2). Throws when they could not be written. */
  writeNow(): void {
    this.#writeQueued();
    if (this.#failed) throw this.#failed;
  }

  #chain(rec: AuditRecord, time = this.#isoTime()): string {
    // The same text JSON.stringify would give for {seq, time, prev, ...fields in FIELD_ORDER},
    // built directly: this runs once per operation, before its result leaves.
    let text = `{"seq":${this.#seq + 1},"time":"${time}","prev":"${this.#headHash()}"`;
    for (const k of FIELD_ORDER) {
      const v = rec[k];
      if (v !== undefined) text += typeof v === 'string' && REPEATED_FIELDS.has(k) ? this.#fragment(k, v) : `,"${k}":${JSON.stringify(v)}`;
    }
    text += '}';
    this.#seq += 1;
    this.#lastText = text;
    if (this.#checkpoints && rec.op !== 'checkpoint') this.#planCheckpoint();
    return text + '\n';
  }

  /** Arms the checkpoint timer for a line not covered yet, or checkpoints soon when enough wait. */
  #planCheckpoint(): void {
    const cp = this.#checkpoints!;
    if (this.#seq - this.#coveredSeq >= cp.lines) {
      if (this.#checkpointSoon) return;
      // Not in the middle of a caller's add()/writeNow() turn: right after it.
      this.#checkpointSoon = true;
      if (this.#checkpointTimer) clearTimeout(this.#checkpointTimer);
      this.#checkpointTimer = setTimeout(() => this.#timedCheckpoint(), 0);
    } else if (!this.#checkpointTimer) {
      this.#checkpointTimer = setTimeout(() => this.#timedCheckpoint(), cp.intervalMs);
    } else {
      return;
    }
    this.#checkpointTimer.unref();
  }

  #timedCheckpoint(): void {
    this.#checkpointTimer = undefined;
    this.#checkpointSoon = false;
    // A failed or closed log has no checkpoint to add; the failure is reported elsewhere.
    this.checkpoint().catch(() => undefined);
  }

  /**
   * Appends a checkpoint line signed by the audit key, covering every line before it.
   * Resolves like {@link append}; resolves at once, writing nothing, when every line is
   * covered already or the log has no checkpoint key.
   */
  checkpoint(): Promise<void> {
    const cp = this.#checkpoints;
    if (!cp || this.#seq === this.#coveredSeq) return Promise.resolve();
    if (this.#failed) return Promise.reject(this.#failed);
    if (this.#closed) return Promise.reject(new Error('audit log is closed'));
    if (this.#checkpointTimer) clearTimeout(this.#checkpointTimer);
    this.#checkpointTimer = undefined;
    this.#checkpointSoon = false;
    const time = this.#isoTime();
    const seq = this.#seq + 1;
    const prev = this.#headHash();
    const signature = cryptoSign(null, checkpointPayload(seq, prev, time, cp.signer.keyId), cp.signer.privateKey).toString('base64');
    const text = this.#chain({ client: '-', op: 'checkpoint', outcome: 'ok', auditKey: cp.signer.keyId, signature }, time);
    this.#coveredSeq = this.#seq;
    return new Promise<void>((resolve, reject) => this.#enqueue({ text, resolve, reject }));
  }

  /** `,"k":"v"` for identities, key ids, schemes, outcomes: a few values, each encoded once. */
  #fragment(k: string, v: string): string {
    const key = `${k}\u0000${v}`;
    let part = this.#fragments.get(key);
    if (part === undefined) {
      part = `,"${k}":${JSON.stringify(v)}`;
      if (this.#fragments.size >= MAX_FRAGMENTS) this.#fragments.clear();
      this.#fragments.set(key, part);
    }
    return part;
  }

  /**
   * The chain's head hash. Computed when first needed (by the next line, or by
   * {@link settle} once a turn's results have left), so that hashing is not on the path
   * of a lone operation's result.
   */
  #headHash(): string {
    if (this.#lastText !== undefined) {
      this.#head = hexDigest('sha256', this.#lastText);
      this.#lastText = undefined;
    }
    return this.#head;
  }

  /** Computes the head hash now (off the critical path: after a turn's replies are sent). */
  settle(): void {
    this.#headHash();
  }

  /** Date.prototype.toISOString() of now; its first 20 characters are rebuilt once a second. */
  #isoTime(): string {
    const ms = Date.now();
    let inSecond = ms - this.#secondStart;
    if (inSecond < 0 || inSecond >= 1000) {
      this.#secondStart = Math.floor(ms / 1000) * 1000;
      inSecond = ms - this.#secondStart;
      const iso = new Date(ms).toISOString();
      // Years outside 0000-9999 have a longer form: no cached prefix for them.
      if (iso.length !== 24) {
        this.#secondStart = NaN;
        return iso;
      }
      this.#secondPrefix = iso.slice(0, 20);
    }
    return `${this.#secondPrefix}${String(inSecond).padStart(3, '0')}Z`;
  }

  #enqueue(l: PendingLine): void {
    this.#queue.push(l);
    if (!this.#scheduled) {
      this.#scheduled = true;
      // Let every request finished in this turn of the loop share one write.
      setImmediate(() => {
        this.#scheduled = false;
        this.#writeQueued();
      });
    }
  }

  /** Writes every queued line with one write(2) (looping on short writes). */
  #writeQueued(): void {
    const batch = this.#queue;
    if (batch.length === 0) return;
    this.#queue = [];
    if (this.#failed) {
      for (const l of batch) l.reject(this.#failed);
      return;
    }
    try {
      const buf = Buffer.from(batch.length === 1 ? batch[0].text : batch.map((l) => l.text).join(''), 'utf8');
      let off = 0;
      while (off < buf.length) off += writeSync(this.#fh.fd, buf, off, buf.length - off);
    } catch (e) {
      // A partial line may be in the file now; the next open refuses it, as it should.
      this.#fail('write', e);
      for (const l of batch) l.reject(this.#failed!);
      return;
    }
    this.#written += batch.length;
    if (this.#onWritten) {
      try {
        this.#onWritten(batch.map((l) => l.text));
      } catch {
        // A sink's failure is its own to report; the file has the lines.
      }
    }
    if (this.#mode === 'always') {
      for (const l of batch) this.#syncWaiters.push({ upTo: this.#written, resolve: l.resolve, reject: l.reject });
      this.#requestSync();
      return;
    }
    for (const l of batch) l.resolve();
    if (this.#mode === 'batch') this.#planSync();
  }

  /** Batch mode: fsync now when enough lines wait, else arm the interval timer. */
  #planSync(): void {
    const covered = Math.max(this.#synced, this.#syncTarget ?? 0);
    const waiting = this.#written - covered;
    if (waiting <= 0) return;
    if (waiting >= this.#maxLines) {
      this.#requestSync();
    } else if (!this.#syncTimer) {
      this.#syncTimer = setTimeout(() => {
        this.#syncTimer = undefined;
        this.#requestSync();
      }, this.#intervalMs);
      // Written lines are safe from a crash of this process; an idle timer must not keep it alive.
      this.#syncTimer.unref();
    }
  }

  /** Starts an fsync of everything written so far, or asks for one after the fsync in flight. */
  #requestSync(): void {
    if (this.#failed) return;
    if (this.#syncTarget !== undefined) {
      this.#syncAgain = true;
      return;
    }
    if (this.#syncTimer) {
      clearTimeout(this.#syncTimer);
      this.#syncTimer = undefined;
    }
    if (this.#written === this.#synced) {
      this.#settleWaiters();
      return;
    }
    const target = this.#written;
    this.#syncTarget = target;
    this.#fh.datasync().then(
      () => {
        this.#syncTarget = undefined;
        this.#synced = target;
        this.#syncs += 1;
        this.#settleWaiters();
        if (this.#syncAgain || this.#syncWaiters.length > 0) {
          this.#syncAgain = false;
          this.#requestSync();
        } else if (this.#mode === 'batch') {
          this.#planSync();
        }
      },
      (e: unknown) => {
        this.#syncTarget = undefined;
        this.#fail('fsync', e);
      },
    );
  }

  #settleWaiters(): void {
    if (this.#syncWaiters.length === 0) return;
    const still: SyncWaiter[] = [];
    for (const w of this.#syncWaiters) {
      if (w.upTo <= this.#synced) w.resolve();
      else still.push(w);
    }
    this.#syncWaiters = still;
  }

  /** Marks the log failed and rejects everything waiting on it. */
  #fail(what: 'write' | 'fsync', e: unknown): void {
    this.#failed ??= new Error(`audit log ${this.path} ${what} failed: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    if (this.#syncTimer) {
      clearTimeout(this.#syncTimer);
      this.#syncTimer = undefined;
    }
    const queued = this.#queue;
    const waiters = this.#syncWaiters;
    this.#queue = [];
    this.#syncWaiters = [];
    for (const l of queued) l.reject(this.#failed);
    for (const w of waiters) w.reject(this.#failed);
  }

  /** Writes every line appended so far (resolves at once when there is none). */
  async flush(): Promise<void> {
    this.#writeQueued();
  }

  /**
   * Writes and fsyncs every line appended so far, whatever the mode. Rejects when the log
   * has failed.
   */
  sync(): Promise<void> {
    this.#writeQueued();
    if (this.#failed) return Promise.reject(this.#failed);
    if (this.#synced >= this.#written) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.#syncWaiters.push({ upTo: this.#written, resolve, reject });
      this.#requestSync();
    });
  }

  /** Writes and fsyncs what is queued (in every mode) and closes the file; later appends are refused. */
  async close(): Promise<void> {
    if (this.#closed) return;
    // The last lines are covered before the file closes.
    await this.checkpoint().catch(() => undefined);
    if (this.#checkpointTimer) clearTimeout(this.#checkpointTimer);
    this.#checkpointTimer = undefined;
    this.#closed = true;
    try {
      await this.sync();
    } catch {
      // Already reported through `failed` and the appends it rejected.
    }
    // An fsync started by a timer may still be running on the handle.
    while (this.#syncTarget !== undefined) await new Promise((r) => setImmediate(r));
    if (this.#syncTimer) clearTimeout(this.#syncTimer);
    this.#syncTimer = undefined;
    await this.#fh.close();
  }
}

/** Reads the last line of an existing log: its seq and hash (0 and the genesis when missing or empty). Throws when the last line is torn or not an audit line. */
export async function readAuditTail(path: string): Promise<{ seq: number; head: string }> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { seq: 0, head: AUDIT_GENESIS };
    throw e;
  }
  if (size === 0) return { seq: 0, head: AUDIT_GENESIS };
  const fh = await open(path, 'r');
  try {
    let want = Math.min(size, 64 * 1024);
    for (;;) {
      const buf = Buffer.alloc(want);
      await fh.read(buf, 0, want, size - want);
      if (buf[buf.length - 1] !== 0x0a) {
        throw new Error(`audit log ${path} ends with an incomplete line (a torn write?); run "keyward audit verify ${path}", move the file aside, and start again`);
      }
      const start = buf.lastIndexOf(0x0a, buf.length - 2) + 1;
      if (start === 0 && want < size) {
        if (want >= MAX_LINE_BYTES) throw new Error(`audit log ${path}: last line is longer than ${MAX_LINE_BYTES} bytes`);
        want = Math.min(size, want * 4);
        continue;
      }
      const line = buf.subarray(start, buf.length - 1);
      let seq: unknown;
      try {
        seq = (JSON.parse(line.toString('utf8')) as { seq?: unknown }).seq;
      } catch {
        seq = undefined;
      }
      if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) {
        throw new Error(`audit log ${path}: the last line is not a keyward audit line; run "keyward audit verify ${path}"`);
      }
      return { seq, head: hexDigest('sha256', line) };
    }
  } finally {
    await fh.close();
  }
}

/** What is wrong with an audit log, at the first line where it shows. */
export interface AuditProblem {
  /** 1-based line number. */
  line: number;
  /**
   * 'rechained': a checkpoint's signature does not cover the chain as it is now (lines
   * before it were changed and every later `prev` recomputed, or the checkpoint edited);
   * 'unsigned': an audit public key was given but no checkpoint signed by it was found;
   * 'wrong-key': a checkpoint names another audit key.
   */
  kind: 'malformed' | 'edited' | 'removed' | 'reordered' | 'truncated' | 'rechained' | 'unsigned' | 'wrong-key';
  message: string;
}

/** What the checkpoints of a log showed (verified with the audit public key). */
export interface AuditCheckpointSummary {
  /** Id of the audit key checked against. */
  auditKey: string;
  /** Checkpoints whose signature verified. */
  verified: number;
  /** seq and line number of the last verified checkpoint (0 when none). */
  lastSeq: number;
  lastLine: number;
  /** Lines after the last verified checkpoint: protected by the hash chain alone. */
  unsignedTail: number;
}

/** Outcome of {@link verifyAuditLog}. */
export interface AuditVerifyResult {
  ok: boolean;
  /** Lines read (all of them, also after a problem). */
  lines: number;
  /** seq and hash of the last line when ok: compare with a head keyd logged, to catch a cut tail. */
  lastSeq: number;
  head: string;
  problem?: AuditProblem;
  /** Checkpoint lines found (all, verified or not). */
  checkpoints: number;
  /** Present when an audit public key was given. */
  signed?: AuditCheckpointSummary;
}

/**
 * Checks the whole chain of the audit log at `path`, streaming, and reports the first
 * line that was edited, removed, reordered, or is not an audit line. With
 * `auditPublicKey` (the audit key's public half, kept away from keyd's host) it also
 * checks every checkpoint's signature, which catches a log whose lines were changed and
 * re-chained before the last checkpoint. Rejects only when the file cannot be read.
 */
export async function verifyAuditLog(path: string, opts: { auditPublicKey?: KeyObject } = {}): Promise<AuditVerifyResult> {
  const pub = opts.auditPublicKey;
  const signed: AuditCheckpointSummary | undefined = pub ? { auditKey: keyIdOf(pub), verified: 0, lastSeq: 0, lastLine: 0, unsignedTail: 0 } : undefined;
  let checkpoints = 0;
  let expectedPrev = AUDIT_GENESIS;
  let expectedSeq = 1;
  let lineNo = 0;
  let problem: AuditProblem | undefined;
  // When a seq gap is found, the lines after it tell removal from reordering.
  let gap: { line: number; from: number; to: number; seq: number } | undefined;
  let movedLater = false;

  const onLine = (raw: Buffer): void => {
    lineNo += 1;
    if (problem && !gap) return;
    let obj: { seq?: unknown; prev?: unknown; time?: unknown; op?: unknown; auditKey?: unknown; signature?: unknown };
    try {
      obj = JSON.parse(raw.toString('utf8')) as typeof obj;
    } catch {
      if (!problem) problem = { line: lineNo, kind: 'malformed', message: `line ${lineNo} is not valid JSON (edited or damaged)` };
      return;
    }
    const seq = obj?.seq;
    const prev = obj?.prev;
    if (gap) {
      if (typeof seq === 'number' && seq >= gap.from && seq < gap.to) movedLater = true;
      return;
    }
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || typeof prev !== 'string' || !/^[0-9a-f]{64}$/.test(prev)) {
      problem = { line: lineNo, kind: 'malformed', message: `line ${lineNo} is not an audit line (missing or bad "seq" or "prev")` };
      return;
    }
    if (prev === expectedPrev && seq !== expectedSeq) {
      problem = { line: lineNo, kind: 'edited', message: `line ${lineNo} was edited: its seq is ${seq}, expected ${expectedSeq}, though it chains to the line before` };
    } else if (prev !== expectedPrev && seq === expectedSeq) {
      problem =
        lineNo === 1
          ? { line: 1, kind: 'edited', message: 'line 1 was edited: it does not chain to the genesis hash' }
          : { line: lineNo - 1, kind: 'edited', message: `line ${lineNo - 1} was edited: its hash no longer matches the "prev" recorded in line ${lineNo}` };
    } else if (prev !== expectedPrev && seq > expectedSeq) {
      gap = { line: lineNo, from: expectedSeq, to: seq, seq };
      problem = { line: lineNo, kind: 'removed', message: '' };
    } else if (prev !== expectedPrev) {
      problem = { line: lineNo, kind: 'reordered', message: `line ${lineNo} (seq ${seq}) is out of order or duplicated: expected seq ${expectedSeq}` };
    } else if (obj.op === 'checkpoint') {
      checkpoints += 1;
      if (signed) problem = checkCheckpoint(obj, seq, prev, lineNo, pub!, signed);
    }
    expectedPrev = hexDigest('sha256', raw);
    expectedSeq = seq + 1;
  };

  let carry: Buffer = Buffer.alloc(0);
  let tooLong = false;
  for await (const chunk of createReadStream(path)) {
    let buf = carry.length ? Buffer.concat([carry, chunk as Buffer]) : (chunk as Buffer);
    let nl: number;
    while ((nl = buf.indexOf(0x0a)) >= 0) {
      onLine(buf.subarray(0, nl));
      buf = buf.subarray(nl + 1);
    }
    if (buf.length > MAX_LINE_BYTES) {
      tooLong = true;
      break;
    }
    carry = Buffer.from(buf);
  }
  if (tooLong && !problem) {
    problem = { line: lineNo + 1, kind: 'malformed', message: `line ${lineNo + 1} is longer than ${MAX_LINE_BYTES} bytes` };
  } else if (carry.length > 0) {
    lineNo += 1;
    if (!problem) problem = { line: lineNo, kind: 'truncated', message: `line ${lineNo} is incomplete (no newline): a torn write or a cut file` };
  }
  if (gap && problem) {
    const missing = gap.to - gap.from;
    problem = movedLater
      ? { line: gap.line, kind: 'reordered', message: `line ${gap.line} (seq ${gap.seq}) is out of order: seq ${gap.from} comes later in the file` }
      : {
          line: gap.line,
          kind: 'removed',
          message: `${missing} line(s) removed before line ${gap.line} (seq ${gap.from}${missing > 1 ? `..${gap.to - 1}` : ''} missing)`,
        };
  }
  if (signed) signed.unsignedTail = expectedSeq - 1 - signed.lastSeq;
  if (!problem && signed && signed.verified === 0) {
    problem = { line: lineNo, kind: 'unsigned', message: `no checkpoint signed by audit key ${signed.auditKey}: the log is protected by its hash chain alone (were checkpoint lines removed and the chain recomputed?)` };
  }
  const base = { lines: lineNo, lastSeq: expectedSeq - 1, head: expectedPrev, checkpoints, ...(signed ? { signed } : {}) };
  return problem ? { ok: false, ...base, problem } : { ok: true, ...base };
}

/** Verifies one checkpoint line (its chain position is already checked); a problem, or undefined. */
function checkCheckpoint(
  obj: { time?: unknown; auditKey?: unknown; signature?: unknown },
  seq: number,
  prev: string,
  lineNo: number,
  pub: KeyObject,
  signed: AuditCheckpointSummary,
): AuditProblem | undefined {
  if (typeof obj.time !== 'string' || typeof obj.auditKey !== 'string' || typeof obj.signature !== 'string') {
    return { line: lineNo, kind: 'malformed', message: `line ${lineNo} is a checkpoint without its time, auditKey or signature` };
  }
  if (obj.auditKey !== signed.auditKey) {
    return { line: lineNo, kind: 'wrong-key', message: `line ${lineNo}: the checkpoint is signed by audit key ${obj.auditKey}, not by the given key ${signed.auditKey}` };
  }
  const ok = cryptoVerify(null, checkpointPayload(seq, prev, obj.time, obj.auditKey), pub, Buffer.from(obj.signature, 'base64'));
  if (!ok) {
    const since = signed.lastLine === 0 ? 'the start of the log' : `line ${signed.lastLine} (the last checkpoint that verifies)`;
    return {
      line: lineNo,
      kind: 'rechained',
      message: `line ${lineNo} (seq ${seq}): the checkpoint's signature does not cover the chain as it is now: a line between ${since} and line ${lineNo} was changed and every later "prev" recomputed (or the checkpoint itself was edited)`,
    };
  }
  signed.verified += 1;
  signed.lastSeq = seq;
  signed.lastLine = lineNo;
  return undefined;
}
