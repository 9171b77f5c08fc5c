/**
 * Starting key processes as another user from a front that gave up root. Starting a
 * process as another user needs root, and a key process is restarted whenever it dies: a
 * front that drops its privileges after start-up could not do that. So with `keyUser`, key
 * processes are started by a launcher (keyProcessLauncherChild.ts) that the front starts
 * while it is still root. The launcher keeps root, starts only the key process it was
 * told about at its own start, and passes each key process's channel back over IPC; the
 * front, now unprivileged, can ask for a restart but can neither choose what runs nor
 * trace the launcher or the key process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

const LAUNCHER_SCRIPT = fileURLToPath(new URL('./keyProcessLauncherChild.js', import.meta.url));

/** The part of a ChildProcess that keyProcess.ts uses: a local child and a launched one alike. */
export interface KeyChild {
  readonly pid?: number | undefined;
  readonly exitCode: number | null;
  readonly signalCode: NodeJS.Signals | null;
  kill(signal: NodeJS.Signals): void;
  once(event: 'exit', listener: (code: number | null, signal: NodeJS.Signals | null) => void): this;
  once(event: 'close', listener: (code: number | null, signal: NodeJS.Signals | null) => void): this;
  on(event: 'error', listener: (e: Error) => void): this;
}

/** A key process started by the launcher: its exit is reported over the launcher's IPC. */
class LaunchedChild extends EventEmitter implements KeyChild {
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;

  constructor(
    readonly pid: number,
    private readonly socket: Socket,
    private readonly launcher: ChildProcess,
  ) {
    super();
  }

  kill(signal: NodeJS.Signals): void {
    if (this.exitCode === null && this.signalCode === null && this.launcher.connected) this.launcher.send({ type: 'kill', pid: this.pid, signal });
  }

  /** 'exit' now, 'close' once the channel has closed too (as a ChildProcess does). */
  exited(code: number | null, signal: NodeJS.Signals | null): void {
    this.exitCode = code;
    this.signalCode = signal;
    this.emit('exit', code, signal);
    if (this.socket.closed) this.emit('close', code, signal);
    else this.socket.once('close', () => this.emit('close', code, signal));
  }
}

/** A running launcher for one key process spec (argv, user). */
export class KeyProcessLauncher {
  readonly #proc: ChildProcess;
  readonly #children = new Map<number, LaunchedChild>();
  #waiting: Array<{ resolve: (r: { child: KeyChild; socket: Socket }) => void; reject: (e: Error) => void }> = [];
  #gone: Error | undefined;

  /** Starts the launcher (this process must be able to start processes as `uid`, i.e. root). */
  constructor(argv: readonly string[], ids: { uid: number; gid: number }) {
    this.#proc = spawn(process.execPath, [LAUNCHER_SCRIPT, JSON.stringify({ argv, uid: ids.uid, gid: ids.gid })], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      cwd: '/',
      env: {},
    });
    this.#proc.on('message', (m: { type: string; pid?: number; code?: number | null; signal?: NodeJS.Signals | null; message?: string }, handle?: Socket) => {
      if (m.type === 'spawned' && handle && m.pid !== undefined) {
        const child = new LaunchedChild(m.pid, handle, this.#proc);
        this.#children.set(m.pid, child);
        this.#waiting.shift()?.resolve({ child, socket: handle });
      } else if (m.type === 'spawn-failed') {
        this.#waiting.shift()?.reject(new Error(m.message ?? 'spawn failed'));
      } else if (m.type === 'exit' && m.pid !== undefined) {
        const c = this.#children.get(m.pid);
        this.#children.delete(m.pid);
        c?.exited(m.code ?? null, m.signal ?? null);
      }
    });
    const gone = (why: string): void => {
      this.#gone ??= new Error(`the key process launcher ${why}`);
      for (const w of this.#waiting) w.reject(this.#gone);
      this.#waiting = [];
    };
    this.#proc.once('error', (e) => gone(`cannot start: ${e.message}`));
    this.#proc.once('exit', (code, signal) => gone(`exited (${signal ?? `code ${code}`})`));
  }

  /** Pid of the launcher process. */
  get pid(): number | undefined {
    return this.#proc.pid;
  }

  /** Asks for a new key process; resolves with it and its end of the channel. */
  spawn(): Promise<{ child: KeyChild; socket: Socket }> {
    if (this.#gone) return Promise.reject(this.#gone);
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      this.#proc.send({ type: 'spawn' });
    });
  }

  /** Stops the launcher; key processes it started exit when their channel closes (it signals them too). */
  close(): void {
    if (this.#proc.connected) this.#proc.disconnect();
  }
}
