/**
 * Ships each audit line, as it is written, to a syslog receiver over TLS (RFC 5425): what
 * rsyslog (imtcp with a TLS stream driver), syslog-ng (`network(transport("tls"))`) and
 * most log collectors accept. Each line becomes one RFC 5424 message (facility 13, "log
 * audit", severity informational; APP-NAME keyd; MSGID audit; the JSON line as MSG),
 * framed by octet counting (`LENGTH SP MESSAGE`).
 *
 * Shipping never holds up keyd: lines are written to the TLS connection at once when it
 * is up and not backed up, else queued (bounded: the oldest are dropped and counted). The
 * connection is re-established with backoff. Syslog has no acknowledgement, and a line
 * written just before a connection breaks may never arrive: so the lines written in the
 * last `resendWindowMs` are sent again after a reconnect (at least once, for breaks noticed
 * within that window; a repeated line is identical, with the same `seq`).
 */
import { hostname as osHostname } from 'node:os';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';

/** Where and how to ship audit lines. */
export interface SyslogTlsSinkOptions {
  host: string;
  port: number;
  /** CA(s) for the receiver's certificate (PEM); default the system's. */
  ca?: string | Buffer;
  /** Client certificate and key (PEM), when the receiver asks for one. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Name checked in the receiver's certificate; default `host`. */
  serverName?: string;
  /** RFC 5424 HOSTNAME field; default this machine's host name. */
  hostname?: string;
  /** Lines kept while the receiver is unreachable (default 100000); beyond, the oldest are dropped. */
  maxQueuedLines?: number;
  /** Lines written this recently are sent again after a reconnect (default 10000 ms, at most 10000 lines). */
  resendWindowMs?: number;
  logger?: Logger;
  /** Counts lines sent and dropped, and the connection state. */
  onStats?: (event: 'sent' | 'dropped' | 'up' | 'down', n: number) => void;
}

/** Bytes the TLS socket may hold unsent before lines wait in the queue instead. */
const MAX_SOCKET_BACKLOG = 4 << 20;
/** Most lines kept for sending again after a reconnect. */
const MAX_RESEND_LINES = 10_000;
/** PRI = facility 13 (log audit) * 8 + severity 6 (informational). */
const PRI = 13 * 8 + 6;

/** RFC 5424 fields: printable US-ASCII without spaces, at most `max` characters, or '-'. */
function headerField(s: string, max: number): string {
  const clean = s.replace(/[^\x21-\x7e]/g, '').slice(0, max);
  return clean.length > 0 ? clean : '-';
}

/** A syslog-over-TLS connection that audit lines are handed to as they are written. */
export class SyslogTlsSink {
  readonly #opts: SyslogTlsSinkOptions;
  readonly #prefixTail: string;
  #socket: TLSSocket | undefined;
  #connected = false;
  #queue: Buffer[] = [];
  /** Frames written to the current or a past connection recently, oldest first, with when. */
  #recent: Array<{ at: number; frame: Buffer }> = [];
  #dropped = 0;
  #closed = false;
  #backoffMs = 100;
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: SyslogTlsSinkOptions) {
    this.#opts = opts;
    this.#prefixTail = ` ${headerField(opts.hostname ?? osHostname(), 255)} keyd ${process.pid} audit - `;
    this.#connect();
  }

  /** True while the TLS connection to the receiver is up. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Lines waiting for the connection. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Hands lines (each ending in "\n", as written to the file) to the receiver. */
  send(lines: readonly string[]): void {
    if (this.#closed) return;
    const frames = lines.map((l) => this.#frame(l));
    if (this.#connected && this.#queue.length === 0 && this.#socket!.writableLength < MAX_SOCKET_BACKLOG) {
      this.#write(frames);
      return;
    }
    this.#queue.push(...frames);
    this.#flushQueue();
    const max = this.#opts.maxQueuedLines ?? 100_000;
    if (this.#queue.length > max) {
      const n = this.#queue.length - max;
      this.#queue.splice(0, n);
      if (this.#dropped === 0) this.#opts.logger?.warn({ maxQueuedLines: max }, 'audit sink: receiver unreachable and queue full; dropping the oldest lines');
      this.#dropped += n;
      this.#opts.onStats?.('dropped', n);
    }
  }

  /** One RFC 5424 message in RFC 5425 framing; TIMESTAMP is the line's own time. */
  #frame(line: string): Buffer {
    const msg = line.endsWith('\n') ? line.slice(0, -1) : line;
    const t = /"time":"([^"]+)"/.exec(msg.slice(0, 80))?.[1] ?? new Date().toISOString();
    const body = Buffer.from(`<${PRI}>1 ${t}${this.#prefixTail}${msg}`, 'utf8');
    return Buffer.concat([Buffer.from(`${body.length} `, 'ascii'), body]);
  }

  #connect(): void {
    if (this.#closed) return;
    const o = this.#opts;
    const socket = tlsConnect({
      host: o.host,
      port: o.port,
      servername: o.serverName ?? o.host,
      minVersion: 'TLSv1.2',
      ...(o.ca ? { ca: o.ca } : {}),
      ...(o.cert ? { cert: o.cert } : {}),
      ...(o.key ? { key: o.key } : {}),
    });
    this.#socket = socket;
    socket.setNoDelay(true);
    // A receiver that vanishes without a reset is noticed within about 15 s.
    socket.setKeepAlive(true, 5_000);
    socket.once('secureConnect', () => {
      this.#connected = true;
      this.#backoffMs = 100;
      if (this.#dropped > 0) o.logger?.warn({ dropped: this.#dropped }, 'audit sink: reconnected; lines were dropped while the receiver was unreachable');
      else o.logger?.info({ receiver: `${o.host}:${o.port}` }, 'audit sink connected');
      this.#dropped = 0;
      o.onStats?.('up', 1);
      // What the broken connection may have lost goes first, then what waited.
      this.#trimRecent(Date.now());
      const again = this.#recent.map((r) => r.frame);
      this.#recent = [];
      this.#queue.unshift(...again);
      this.#flushQueue();
    });
    socket.on('drain', () => this.#flushQueue());
    // Nothing is expected from the receiver; anything it sends is ignored.
    socket.on('data', () => undefined);
    socket.on('error', (e: NodeJS.ErrnoException) => o.logger?.warn({ receiver: `${o.host}:${o.port}`, err: e.code ?? e.message }, 'audit sink: connection failed'));
    socket.once('close', () => {
      if (this.#socket !== socket) return;
      if (this.#connected) o.onStats?.('down', 1);
      this.#connected = false;
      this.#socket = undefined;
      if (this.#closed) return;
      this.#timer = setTimeout(() => this.#connect(), this.#backoffMs);
      this.#timer.unref();
      this.#backoffMs = Math.min(this.#backoffMs * 2, 5_000);
    });
  }

  #flushQueue(): void {
    const s = this.#socket;
    if (!this.#connected || !s) return;
    let n = 0;
    const parts: Buffer[] = [];
    let bytes = s.writableLength;
    while (n < this.#queue.length && bytes < MAX_SOCKET_BACKLOG) {
      parts.push(this.#queue[n]);
      bytes += this.#queue[n].length;
      n++;
    }
    if (n === 0) return;
    this.#queue.splice(0, n);
    this.#write(parts);
  }

  /** Writes frames to the connection and remembers them for a resend after a break. */
  #write(frames: Buffer[]): void {
    this.#socket!.write(frames.length === 1 ? frames[0] : Buffer.concat(frames));
    this.#opts.onStats?.('sent', frames.length);
    const now = Date.now();
    for (const frame of frames) this.#recent.push({ at: now, frame });
    this.#trimRecent(now);
  }

  #trimRecent(now: number): void {
    const oldest = now - (this.#opts.resendWindowMs ?? 10_000);
    let i = 0;
    while (i < this.#recent.length && (this.#recent[i].at < oldest || this.#recent.length - i > MAX_RESEND_LINES)) i++;
    if (i > 0) this.#recent.splice(0, i);
  }

  /** Sends what is queued (waiting at most `timeoutMs` for the connection), then closes it. */
  async close(timeoutMs = 2_000): Promise<void> {
    if (this.#closed) return;
    const deadline = Date.now() + timeoutMs;
    while (this.#queue.length > 0 && Date.now() < deadline) {
      this.#flushQueue();
      if (this.#queue.length > 0) await new Promise((r) => setTimeout(r, 20));
    }
    this.#closed = true;
    clearTimeout(this.#timer);
    const s = this.#socket;
    if (!s) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        s.destroy();
        resolve();
      }, Math.max(100, deadline - Date.now()));
      s.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      s.end();
    });
  }
}
