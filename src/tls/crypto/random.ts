import { randomBytes, randomFillSync } from 'node:crypto';

// A handshake takes two small random values (ServerHello.random and an ephemeral
// scalar); one randomFillSync per 4 KiB costs far less than a call per value.
const POOL_SIZE = 4096;
let pool = Buffer.alloc(0);
let offset = 0;

/**
 * `n` fresh random bytes from the OS CSPRNG, served from a pool. Every byte is handed
 * out once; callers may wipe what they got (the slice is theirs alone).
 */
export function secureRandom(n: number): Buffer {
  if (n > POOL_SIZE / 8) return randomBytes(n);
  if (offset + n > pool.length) {
    pool = randomFillSync(Buffer.allocUnsafe(POOL_SIZE));
    offset = 0;
  }
  const out = pool.subarray(offset, offset + n);
  offset += n;
  return out;
}
