/**
 * Keeping other processes out of the key process's memory. On Linux a process may read
 * the memory of another one running as the same user (`/proc/PID/mem`, ptrace), and
 * Yama's default scope still lets a parent trace its children: a compromised front could
 * read the key out of its own key process. `prctl(PR_SET_DUMPABLE, 0)` closes that: the
 * kernel then refuses ptrace and `/proc/PID/mem` to every process without
 * CAP_SYS_PTRACE, the parent included, and writes no core dump.
 *
 * Node has no prctl, so a tiny Node-API addon (native/nodump.c, built by node-gyp at
 * `npm install`) makes the call; Node-API keeps one build valid for Node 20 and 24. The
 * flag does not survive execve: the key process sets it itself, before it reads the key.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * What a key process does about being dumpable: 'require' (default) refuses to load the
 * key unless it is non-dumpable; 'prefer' runs dumpable when it cannot (and says so);
 * 'off' stays dumpable (debugging with gdb or core dumps; never in production).
 */
export type NonDumpablePolicy = 'require' | 'prefer' | 'off';

export const NON_DUMPABLE_POLICIES: readonly NonDumpablePolicy[] = ['require', 'prefer', 'off'];

/** Where `npm install` (node native/build.mjs) puts the addon, from dist/src/keys/. */
export const NODUMP_ADDON_PATH = fileURLToPath(new URL('../../../native/build/Release/keyward_nodump.node', import.meta.url));

interface NoDumpAddon {
  /** PR_GET_DUMPABLE: 0 non-dumpable, 1 dumpable, 2 core dumps readable by root only. */
  dumpable(): number;
  /** PR_SET_DUMPABLE 0; returns the value read back. */
  setNonDumpable(): number;
}

/** The outcome of {@link makeNonDumpable}: non-dumpable, or why not (never a secret). */
export type HardeningResult = { nonDumpable: true } | { nonDumpable: false; reason: string };

function loadAddon(): NoDumpAddon | string {
  if (process.platform !== 'linux') return `PR_SET_DUMPABLE exists only on Linux (this is ${process.platform})`;
  try {
    return createRequire(import.meta.url)(NODUMP_ADDON_PATH) as NoDumpAddon;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'MODULE_NOT_FOUND'
      ? `the native addon ${NODUMP_ADDON_PATH} is not built (run "npm run build:native"; it needs a C compiler)`
      : `the native addon ${NODUMP_ADDON_PATH} does not load: ${(e as Error).message}`;
  }
}

/** Makes the calling process non-dumpable, and reads the flag back to be sure. */
export function makeNonDumpable(): HardeningResult {
  const addon = loadAddon();
  if (typeof addon === 'string') return { nonDumpable: false, reason: addon };
  try {
    const now = addon.setNonDumpable();
    return now === 0 ? { nonDumpable: true } : { nonDumpable: false, reason: `the process is still dumpable (${now}) after PR_SET_DUMPABLE 0` };
  } catch (e) {
    return { nonDumpable: false, reason: (e as Error).message };
  }
}

/** What protects a key process's memory from the front, as {@link KeyProcessHost.protection} reports it. */
export interface KeyProcessProtection {
  /** PR_SET_DUMPABLE 0 is in force: no ptrace and no /proc/PID/mem for processes without CAP_SYS_PTRACE. */
  nonDumpable: boolean;
  /** The user the key process runs as when it is not the front's (--key-user). */
  user: string | undefined;
}

/** One plain sentence for start-up output: what the front (or its user) can and cannot do. */
export function describeProtection(p: KeyProcessProtection): string {
  if (p.nonDumpable && p.user !== undefined) return `protection: runs as user ${p.user} and is non-dumpable; this process cannot trace it or read its memory`;
  if (p.nonDumpable) return 'protection: non-dumpable; processes of this user (this one included) cannot trace it or read its memory, root can (--key-user adds a separate user)';
  if (p.user !== undefined) return `protection: runs as user ${p.user}, but is DUMPABLE: other processes of ${p.user} and root can read the key from its memory`;
  return 'protection: NONE: the key process is DUMPABLE and runs as this user; a compromised front can read the key from its memory';
}
