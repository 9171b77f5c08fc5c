/**
 * The key process launcher: a small process that keeps the privilege to start key
 * processes as another user (--key-user) after the front has dropped its own. Started by
 * keyProcessLauncher.ts with an IPC channel and, as its one argument, the JSON of what it
 * may start: `{ "argv": [...], "uid": N, "gid": N }`. It does exactly that on each "spawn"
 * request (the front chooses nothing else), hands the key process's end of the channel
 * back over IPC, reports its exit, and signals only key processes it started. When the
 * front goes away, it stops them and exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';

interface Spec {
  argv: string[];
  uid: number;
  gid: number;
}

/** Requests from the front. */
type Request = { type: 'spawn' } | { type: 'kill'; pid: number; signal: NodeJS.Signals };

const SIGNALS = new Set<string>(['SIGTERM', 'SIGKILL']);

function main(): void {
  process.title = 'keyward-key-launcher';
  let spec: Spec;
  try {
    spec = JSON.parse(process.argv[2] ?? '') as Spec;
    if (!Array.isArray(spec.argv) || !spec.argv.every((a) => typeof a === 'string') || !Number.isInteger(spec.uid) || !Number.isInteger(spec.gid)) throw new Error('bad spec');
  } catch {
    process.stderr.write('keyward key launcher: it must be started by keyProcessLauncher\n');
    process.exit(2);
  }
  if (!process.send) process.exit(2);
  const children = new Map<number, ChildProcess>();
  const send = (msg: object, handle?: Socket): void => {
    if (process.connected) process.send!(msg, handle, { keepOpen: false });
  };

  process.on('message', (m: Request) => {
    if (m?.type === 'spawn') {
      const env: NodeJS.ProcessEnv = {};
      if (process.env.UV_THREADPOOL_SIZE) env.UV_THREADPOOL_SIZE = process.env.UV_THREADPOOL_SIZE;
      let child: ChildProcess;
      try {
        child = spawn(process.execPath, spec.argv, { stdio: ['ignore', 'ignore', 'inherit', 'pipe'], cwd: '/', env, uid: spec.uid, gid: spec.gid });
      } catch (e) {
        send({ type: 'spawn-failed', message: (e as Error).message });
        return;
      }
      child.once('error', (e) => send({ type: 'spawn-failed', message: e.message }));
      if (child.pid === undefined) return;
      const pid = child.pid;
      children.set(pid, child);
      child.once('exit', (code, signal) => {
        children.delete(pid);
        send({ type: 'exit', pid, code, signal });
      });
      // The channel's other end goes to the front; this process keeps no copy.
      send({ type: 'spawned', pid }, child.stdio[3] as Socket);
    } else if (m?.type === 'kill' && SIGNALS.has(m.signal)) {
      children.get(m.pid)?.kill(m.signal);
    }
  });
  process.on('disconnect', () => {
    for (const c of children.values()) c.kill('SIGTERM');
    process.exit(0);
  });
}

main();
