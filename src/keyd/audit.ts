/**
 * Tamper-evident audit log: append-only JSON lines, each carrying `prev`, the SHA-256 of
 * the previous line's exact bytes (the first line chains to a fixed genesis hash), and
 * `seq`, its position in the log. Editing, removing or reordering any line breaks the
 * chain at a place `verifyAuditLog` names. Lines are durable (written and fsynced) before
 * `append` resolves, and keyd awaits that before it returns an operation's result.
 *
 * What a hash chain alone cannot show: lines cut from the end of the log (and an edit of
 * the very last line). keyd logs the head (seq and hash) in its own log at intervals and at
 * shutdown; compare it with the head `verifyAuditLog` reports, or ship lines elsewhere.
 */
import { createHash } from 'node:crypto';
import { constants as fsConstants, createReadStream } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';

/** `prev` of the first line: SHA-256 of a fixed string. */
export const AUDIT_GENESIS = createHash('sha256').update('keyward audit log v1 genesis').digest('hex');

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
  connectionId?: string;
  /** PSK identity, hex (identities travel in clear in TLS). */
  pskIdentity?: string;
  /** Why a request was refused or failed. */
  reason?: string;
  latencyMs?: number;
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
  'connectionId',
  'pskIdentity',
  'reason',
  'latencyMs',
];

function sha256Hex(b: Uint8Array | string): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Options for {@link AuditLog.open}. */
export interface AuditLogOptions {
  /** fsync each batch before resolving appends (default true; turn off only for benchmarks). */
  durable?: boolean;
}

interface PendingLine {
  text: string;
  resolve: () => void;
  reject: (e: Error) => void;
}

/**
 * The writer. Lines are numbered and chained when `append` is called (so the chain
 * follows call order); they are written in batches: every line appended while one batch
 * is being written and fsynced goes into the next batch (group commit).
 */
export class AuditLog {
  #fh: FileHandle;
  #seq: number;
  #head: string;
  #queue: PendingLine[] = [];
  #flushing = false;
  #scheduled = false;
  #failed: Error | undefined;
  #closed = false;
  readonly #durable: boolean;
  #idle: Array<() => void> = [];

  private constructor(
    readonly path: string,
    fh: FileHandle,
    seq: number,
    head: string,
    durable: boolean,
  ) {
    this.#fh = fh;
    this.#seq = seq;
    this.#head = head;
    this.#durable = durable;
  }

  /**
   * Opens `path` for appending, creating it (mode 0600) when missing. An existing log is
   * continued: its last line gives the next `seq` and `prev`. A log whose last line is
   * incomplete or not JSON is refused with a clear error (nothing is rewritten).
   */
  static async open(path: string, opts: AuditLogOptions = {}): Promise<AuditLog> {
    const { seq, head } = await readTail(path);
    const fh = await open(path, fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_CREAT, 0o600);
    return new AuditLog(path, fh, seq, head, opts.durable ?? true);
  }

  /** Sequence number and hash of the last line appended (0 and the genesis for an empty log). */
  get head(): { seq: number; hash: string } {
    return { seq: this.#seq, hash: this.#head };
  }

  /** Set when a write failed: the log refuses further lines, and keyd refuses operations. */
  get failed(): Error | undefined {
    return this.#failed;
  }

  /** Appends one line; resolves when it is on disk (fsynced when durable). */
  append(rec: AuditRecord): Promise<void> {
    if (this.#failed) return Promise.reject(this.#failed);
    if (this.#closed) return Promise.reject(new Error('audit log is closed'));
    const line: Record<string, unknown> = { seq: this.#seq + 1, time: new Date().toISOString(), prev: this.#head };
    for (const k of FIELD_ORDER) if (rec[k] !== undefined) line[k] = rec[k];
    const text = JSON.stringify(line);
    this.#seq += 1;
    this.#head = sha256Hex(text);
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ text: text + '\n', resolve, reject });
      if (!this.#flushing && !this.#scheduled) {
        this.#scheduled = true;
        // Let every request handled in this turn of the loop join the batch.
        setImmediate(() => {
          this.#scheduled = false;
          void this.#flush();
        });
      }
    });
  }

  async #flush(): Promise<void> {
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue;
        this.#queue = [];
        try {
          const buf = Buffer.from(batch.map((l) => l.text).join(''), 'utf8');
          let off = 0;
          while (off < buf.length) off += (await this.#fh.write(buf, off, buf.length - off)).bytesWritten;
          if (this.#durable) await this.#fh.datasync();
          for (const l of batch) l.resolve();
        } catch (e) {
          this.#failed = new Error(`audit log ${this.path} write failed: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
          for (const l of [...batch, ...this.#queue]) l.reject(this.#failed);
          this.#queue = [];
        }
      }
    } finally {
      this.#flushing = false;
      const idle = this.#idle;
      this.#idle = [];
      for (const f of idle) f();
    }
  }

  /** Resolves once every line appended so far is written. */
  async flush(): Promise<void> {
    if (this.#queue.length === 0 && !this.#flushing && !this.#scheduled) return;
    await new Promise<void>((resolve) => {
      this.#idle.push(resolve);
      if (!this.#flushing) void this.#flush();
    });
    if (this.#queue.length > 0) await this.flush();
  }

  /** Writes what is queued and closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.flush();
    this.#closed = true;
    await this.#fh.close();
  }
}

/** Reads the last line of an existing log: its seq and hash. */
async function readTail(path: string): Promise<{ seq: number; head: string }> {
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
      return { seq, head: sha256Hex(line) };
    }
  } finally {
    await fh.close();
  }
}

/** What is wrong with an audit log, at the first line where it shows. */
export interface AuditProblem {
  /** 1-based line number. */
  line: number;
  kind: 'malformed' | 'edited' | 'removed' | 'reordered' | 'truncated';
  message: string;
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
}

/**
 * Checks the whole chain of the audit log at `path`, streaming, and reports the first
 * line that was edited, removed, reordered, or is not an audit line. Rejects only when
 * the file cannot be read.
 */
export async function verifyAuditLog(path: string): Promise<AuditVerifyResult> {
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
    let obj: { seq?: unknown; prev?: unknown };
    try {
      obj = JSON.parse(raw.toString('utf8')) as { seq?: unknown; prev?: unknown };
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
    }
    expectedPrev = sha256Hex(raw);
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
  return problem ? { ok: false, lines: lineNo, lastSeq: expectedSeq - 1, head: expectedPrev, problem } : { ok: true, lines: lineNo, lastSeq: expectedSeq - 1, head: expectedPrev };
}
