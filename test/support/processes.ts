/**
 * Bounded child processes for tests: every run has a hard timeout after which the child
 * is killed by its pid, and the promise always settles. Children still alive when the
 * test process exits are killed too, so a failing test never leaves a peer behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';

/** What a bounded run produced. */
export interface RunResult {
  /** Exit code, or null when the child was ended by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** True when the hard timeout fired and the child was killed. */
  timedOut: boolean;
  pid: number | undefined;
}

/** Options for {@link runProcess}. */
export interface RunOptions {
  /**
   * Written to stdin. An array is written one element at a time, `inputGapMs` apart, for
   * programs that treat each read as one command (openssl s_client's "k", "Q").
   */
  input?: string | string[];
  /** Pause between input chunks, default 200 ms. */
  inputGapMs?: number;
  /** Delay before the first chunk of input, default 0. */
  inputDelayMs?: number;
  /**
   * Hold the input back until the output (stdout and stderr) matches this, e.g. a line the
   * program prints once its handshake is done. Never matching means no input is sent.
   */
  inputAfter?: RegExp;
  /**
   * After the input, close stdin as soon as the output matches this (bounded by `keepOpenMs`
   * when that is given, otherwise only by the hard timeout and the program's exit).
   */
  closeWhen?: RegExp;
  /** How long stdin stays open after the last input (default 0): EOF makes most clients quit. */
  keepOpenMs?: number;
  /** Hard limit for the whole run, default 15000 ms. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Output beyond this per stream is dropped: a runaway child must not eat the test's memory. */
const MAX_OUTPUT = 8 * 1024 * 1024;

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) {
      try {
        if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Runs `command args` with stdin/stdout/stderr piped, feeds it `input`, closes stdin after
 * `keepOpenMs`, and kills it (SIGKILL, by pid) if it is still running after `timeoutMs`.
 * Resolves with the collected output; rejects only when the program cannot be started
 * (a missing peer must fail loudly, not pass as a silent no-op).
 */
export function runProcess(command: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  installExitHook();
  const timeoutMs = opts.timeoutMs ?? 15_000;
  return new Promise<RunResult>((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
    });
    live.add(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    let timedOut = false;
    let settled = false;
    let exited = false;
    // Output seen so far, for inputAfter/closeWhen (both streams: some programs mix them).
    let seen = '';
    const waiters: Array<() => void> = [];
    const notify = (d: Buffer): void => {
      if (seen.length < MAX_OUTPUT) seen += d.toString('utf8');
      for (const w of waiters.splice(0)) w();
    };
    /** Resolves when the output matches `re`, the child exits, or `limitMs` passes. */
    const outputMatches = (re: RegExp, limitMs?: number): Promise<void> =>
      new Promise((res) => {
        let timer: NodeJS.Timeout | undefined;
        const check = (): void => {
          if (exited || re.test(seen)) {
            if (timer) clearTimeout(timer);
            res();
          } else {
            waiters.push(check);
          }
        };
        if (limitMs !== undefined) timer = setTimeout(res, limitMs);
        check();
      });

    child.stdout.on('data', (d: Buffer) => {
      if (outLen < MAX_OUTPUT) out.push(d);
      outLen += d.length;
      notify(d);
    });
    child.stderr.on('data', (d: Buffer) => {
      if (errLen < MAX_OUTPUT) err.push(d);
      errLen += d.length;
      notify(d);
    });
    // The child may exit before reading everything: EPIPE on its stdin is expected then.
    child.stdin.on('error', () => {});

    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      } catch {
        // Exited in the meantime.
      }
    }, timeoutMs);

    /** True the first time only: the run ends, waiters wake, the kill timer stops. */
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      exited = true;
      for (const w of waiters.splice(0)) w();
      clearTimeout(timer);
      live.delete(child);
      return true;
    };

    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (!settle()) return;
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        timedOut,
        pid: child.pid,
      });
    };

    child.on('error', (e) => {
      if (settle()) reject(new Error(`cannot run ${command}: ${e.message}`));
    });
    child.on('close', (code, signal) => finish(code, signal));
    child.on('exit', (code, signal) => {
      exited = true;
      for (const w of waiters.splice(0)) w();
      // A grandchild holding our pipes open must not keep us waiting for 'close'.
      setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        finish(code, signal);
      }, 1_000).unref();
    });

    void (async () => {
      const chunks = opts.input === undefined ? [] : Array.isArray(opts.input) ? opts.input : [opts.input];
      if (chunks.length > 0 && opts.inputAfter) await outputMatches(opts.inputAfter);
      if (chunks.length > 0 && opts.inputDelayMs) await sleep(opts.inputDelayMs);
      for (let i = 0; i < chunks.length && !exited; i++) {
        if (i > 0) await sleep(opts.inputGapMs ?? 200);
        if (!exited && child.stdin.writable) child.stdin.write(chunks[i]);
      }
      if (opts.closeWhen) await outputMatches(opts.closeWhen, opts.keepOpenMs);
      else if (opts.keepOpenMs) await sleep(opts.keepOpenMs);
      if (child.stdin.writable) child.stdin.end();
    })();
  });
}

/** True if a process with this pid exists (signal 0 probes without killing). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
