/**
 * `--user` of `serve` and `proxy`: a front started as root (to listen on a low port and to
 * launch key processes under --key-user) gives root up for good once that is done.
 */
import { dropPrivileges } from '../keys/keyProcess.js';
import { CliError } from './keySources.js';

/**
 * `--user`: drops this process from root to `user` for good (after listening and after the
 * key processes started); what the process runs as, for the start line, either way.
 */
export function dropFrontPrivileges(user: string | undefined): { user?: string; uid: number; gid: number } {
  if (user !== undefined) {
    if (process.getuid?.() !== 0) throw new CliError(`--user ${user} needs root: this process runs as uid ${process.getuid?.()}`);
    try {
      dropPrivileges(user);
    } catch (err) {
      throw new CliError(`--user ${user}: ${(err as Error).message.replace(/^key process: /, '')}`);
    }
  }
  return { ...(user !== undefined ? { user } : {}), uid: process.getuid?.() ?? -1, gid: process.getgid?.() ?? -1 };
}
