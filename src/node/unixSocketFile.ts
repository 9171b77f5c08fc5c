import { lstat } from 'node:fs/promises';
import { createConnection } from 'node:net';

/**
 * What is at a Unix socket path before a server listens there: nothing, something that is
 * not a socket, a socket a live process answers on, or a stale socket file left by a process
 * that died (which the caller may unlink so that a restart can listen again).
 */
export async function probeUnixSocketFile(path: string): Promise<'absent' | 'not-a-socket' | 'live' | 'stale'> {
  const st = await lstat(path).catch(() => undefined);
  if (st === undefined) return 'absent';
  if (!st.isSocket()) return 'not-a-socket';
  const live = await new Promise<boolean>((resolve) => {
    const c = createConnection(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  return live ? 'live' : 'stale';
}
