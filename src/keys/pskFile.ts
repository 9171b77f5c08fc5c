/**
 * The PSK file a key process reads: one `identity:hexkey` per line, optionally followed by
 * whitespace and the PSK's TLS 1.3 hash (`sha256`, the default, or `sha384`; RFC 8446
 * 4.2.11: a PSK is used with one hash only). Blank lines and lines starting with `#` are
 * skipped; the identity is the UTF-8 text before the last colon (so it may itself hold
 * colons), the key the hex digits after it. Errors name the file and the line, never a key.
 */
import type { Tls13PskHash } from './tls13PskSchedule.js';

/** Largest PSK accepted (RFC 4279: psk<0..2^16-1>; real ones are 16 to 64 bytes). */
const MAX_PSK = 0xffff;

/** One PSK of the file: its bytes and its TLS 1.3 hash. */
export interface PskFileEntry {
  secret: Buffer;
  hash: Tls13PskHash;
}

/**
 * Parses a PSK file into identity → PSK bytes and hash. Throws an Error naming `name` and
 * the line number when a line is malformed, a key is empty or not hex, a hash unknown, or
 * an identity repeats.
 */
export function parsePskEntries(data: Uint8Array, name: string): Map<string, PskFileEntry> {
  const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8');
  const out = new Map<string, PskFileEntry>();
  const lines = text.split('\n');
  try {
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i].replace(/\r$/, '').trim();
      if (line === '' || line.startsWith('#')) continue;
      const where = `${name} line ${i + 1}`;
      const colon = line.lastIndexOf(':');
      if (colon <= 0) throw new Error(`${where}: expected identity:hexkey`);
      const identity = line.slice(0, colon);
      const [hex = '', hash = 'sha256', ...rest] = line.slice(colon + 1).trim().split(/\s+/);
      if (hex.length === 0 || hex.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(hex)) throw new Error(`${where}: the key must be an even number of hex digits`);
      if (hash !== 'sha256' && hash !== 'sha384') throw new Error(`${where}: the hash after the key must be sha256 or sha384`);
      if (rest.length > 0) throw new Error(`${where}: expected identity:hexkey [sha256|sha384]`);
      if (hex.length / 2 > MAX_PSK) throw new Error(`${where}: the key is longer than 65535 bytes`);
      if (Buffer.byteLength(identity, 'utf8') > 0xffff) throw new Error(`${where}: the identity is longer than 65535 bytes`);
      if (out.has(identity)) throw new Error(`${where}: identity ${JSON.stringify(identity)} appears twice`);
      out.set(identity, { secret: Buffer.from(hex, 'hex'), hash });
    }
  } catch (e) {
    for (const v of out.values()) v.secret.fill(0);
    throw e;
  }
  if (out.size === 0) throw new Error(`${name} holds no PSK (expected identity:hexkey lines)`);
  return out;
}
