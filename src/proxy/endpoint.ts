/**
 * Where the proxy listens and where it forwards: `HOST:PORT`, `[V6]:PORT`, or `unix:/path`.
 */
import { unlink } from 'node:fs/promises';
import { isIP } from 'node:net';
import { probeUnixSocketFile } from '../node/unixSocketFile.js';

/** A TCP address or a Unix socket path. */
export type Endpoint = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

/** Parses `HOST:PORT`, `[V6]:PORT` or `unix:/path`; throws a RangeError naming `what` and the text. */
export function parseEndpoint(text: string, what: string, allowPortZero = false): Endpoint {
  if (text.startsWith('unix:')) {
    const path = text.slice(5);
    if (path.length === 0 || path.includes('\0')) throw new RangeError(`${what}: "${text}" has no socket path after unix:`);
    return { kind: 'unix', path };
  }
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (!m) throw new RangeError(`${what} must be HOST:PORT, [IPV6]:PORT or unix:/path, got "${text}"`);
  const host = m[1] ?? m[2];
  if (m[1] !== undefined && isIP(m[1]) !== 6) throw new RangeError(`${what}: "${m[1]}" in brackets is not an IPv6 address`);
  const port = Number(m[3]);
  if (port > 65535 || (port === 0 && !allowPortZero)) throw new RangeError(`${what}: port ${port} is out of range (1-65535${allowPortZero ? ', or 0 for any' : ''})`);
  return { kind: 'tcp', host, port };
}

/** The endpoint as text, in the form parseEndpoint reads. */
export function formatEndpoint(e: Endpoint): string {
  if (e.kind === 'unix') return `unix:${e.path}`;
  return isIP(e.host) === 6 ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

/**
 * Removes a socket file left by a process that died, so a restart can listen again; a
 * socket something still answers on, or a file that is not a socket, is left alone (the
 * listen then fails with EADDRINUSE, naming the path).
 */
export async function clearStaleSocket(path: string): Promise<void> {
  if ((await probeUnixSocketFile(path)) === 'stale') await unlink(path).catch(() => undefined);
}
