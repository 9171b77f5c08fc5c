/**
 * The PSK file a key process reads: one `identity:hexkey` per line. Blank lines and lines
 * starting with `#` are skipped; the identity is the UTF-8 text before the last colon (so
 * it may itself hold colons), the key the hex digits after it. Errors name the file and the
 * line, never a key.
 */

/** Largest PSK accepted (RFC 4279: psk<0..2^16-1>; real ones are 16 to 64 bytes). */
const MAX_PSK = 0xffff;

/**
 * Parses a PSK file into identity → PSK bytes. Throws an Error naming `name` and the line
 * number when a line is malformed, a key is empty or not hex, or an identity repeats.
 */
export function parsePskFile(data: Uint8Array, name: string): Map<string, Buffer> {
  const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8');
  const out = new Map<string, Buffer>();
  const lines = text.split('\n');
  try {
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i].replace(/\r$/, '').trim();
      if (line === '' || line.startsWith('#')) continue;
      const where = `${name} line ${i + 1}`;
      const colon = line.lastIndexOf(':');
      if (colon <= 0) throw new Error(`${where}: expected identity:hexkey`);
      const identity = line.slice(0, colon);
      const hex = line.slice(colon + 1).trim();
      if (hex.length === 0 || hex.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(hex)) throw new Error(`${where}: the key must be an even number of hex digits`);
      if (hex.length / 2 > MAX_PSK) throw new Error(`${where}: the key is longer than 65535 bytes`);
      if (Buffer.byteLength(identity, 'utf8') > 0xffff) throw new Error(`${where}: the identity is longer than 65535 bytes`);
      if (out.has(identity)) throw new Error(`${where}: identity ${JSON.stringify(identity)} appears twice`);
      out.set(identity, Buffer.from(hex, 'hex'));
    }
  } catch (e) {
    for (const v of out.values()) v.fill(0);
    throw e;
  }
  if (out.size === 0) throw new Error(`${name} holds no PSK (expected identity:hexkey lines)`);
  return out;
}
