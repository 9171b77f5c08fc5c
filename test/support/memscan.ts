/**
 * Whole-process memory scan for "the key is absent from the front": reads every
 * readable mapping of a process through /proc/PID/mem (native heap included, where
 * OpenSSL keeps a KeyObject's material, which a V8 heap snapshot does not show) and
 * looks for the secret components of a private key.
 *
 * Needs ptrace-level access to the target (root, or the same user without Yama
 * restrictions). Linux only.
 */
import { createPrivateKey } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';

export interface Needle {
  name: string;
  bytes: Buffer;
}

export interface ScanResult {
  /** Names of the needles found (each at most once). */
  found: string[];
  bytesScanned: number;
  /** Readable regions read (regions that failed with EIO etc. are not counted). */
  regions: number;
}

/** Big-endian integer bytes without leading zeros. */
function stripLeadingZeros(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
}

/**
 * The secret parts of a private key, as byte strings that would betray it if found in
 * a process: every private component (EC scalar; RSA d, p, q, dp, dq, qi; EdDSA seed)
 * big- and little-endian (OpenSSL's BIGNUMs are little-endian limbs on x86-64), the
 * PKCS#8 DER, the PKCS#1 / SEC1 DER, the PEM text as given and its longest line.
 */
export function keySecretNeedles(privateKeyPem: string): Needle[] {
  const key = createPrivateKey(privateKeyPem);
  const jwk = key.export({ format: 'jwk' }) as Record<string, string | undefined>;
  const needles: Needle[] = [];
  const components = key.asymmetricKeyType === 'rsa' ? ['d', 'p', 'q', 'dp', 'dq', 'qi'] : ['d'];
  const label = key.asymmetricKeyType === 'ec' ? 'scalar' : key.asymmetricKeyType === 'rsa' ? '' : 'seed';
  for (const c of components) {
    const v = jwk[c];
    if (!v) continue;
    const be = stripLeadingZeros(Buffer.from(v, 'base64url'));
    const name = label ? `${label} (${c})` : c;
    needles.push({ name: `${name} big-endian`, bytes: be });
    needles.push({ name: `${name} little-endian`, bytes: Buffer.from(be).reverse() });
  }
  needles.push({ name: 'PKCS#8 DER', bytes: key.export({ type: 'pkcs8', format: 'der' }) });
  if (key.asymmetricKeyType === 'rsa') needles.push({ name: 'PKCS#1 DER', bytes: key.export({ type: 'pkcs1', format: 'der' }) });
  if (key.asymmetricKeyType === 'ec') needles.push({ name: 'SEC1 DER', bytes: key.export({ type: 'sec1', format: 'der' }) });

  const body = privateKeyPem
    .split(/\r?\n/)
    .filter((l) => l.length > 0 && !l.startsWith('-----'));
  needles.push({ name: 'PEM base64 body', bytes: Buffer.from(body.join('\n'), 'latin1') });
  const longest = body.reduce((a, b) => (b.length > a.length ? b : a), '');
  needles.push({ name: 'PEM longest line', bytes: Buffer.from(longest, 'latin1') });
  return needles;
}

interface Region {
  start: bigint;
  end: bigint;
  name: string;
}

/** Readable regions from /proc/PID/maps, minus the kernel's special ones. */
async function readableRegions(pid: number): Promise<Region[]> {
  const maps = await readFile(`/proc/${pid}/maps`, 'latin1');
  const regions: Region[] = [];
  for (const line of maps.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+)\s+(\S{4})\s+\S+\s+\S+\s+\S+\s*(.*)$/.exec(line);
    if (!m) continue;
    const [, start, end, perms, name] = m;
    if (perms[0] !== 'r') continue;
    if (name === '[vvar]' || name === '[vsyscall]' || name === '[vvar_vclock]') continue;
    if (BigInt(`0x${end}`) > BigInt(Number.MAX_SAFE_INTEGER)) continue;
    regions.push({ start: BigInt(`0x${start}`), end: BigInt(`0x${end}`), name });
  }
  return regions;
}

const CHUNK = 8 * 1024 * 1024;

/**
 * Scans the memory of process `pid` for every needle. Memory use stays bounded (one
 * 8 MiB chunk plus an overlap of the longest needle); regions the kernel refuses to
 * read (EIO) are skipped.
 */
export async function scanProcessMemory(pid: number, needles: readonly Needle[]): Promise<ScanResult> {
  const maxNeedle = needles.reduce((m, n) => Math.max(m, n.bytes.length), 1);
  const overlap = maxNeedle - 1;
  const found = new Set<string>();
  let bytesScanned = 0;
  let regionsRead = 0;
  const regions = await readableRegions(pid);
  const fh = await open(`/proc/${pid}/mem`, 'r');
  // Room for the carried-over tail of the previous chunk plus a new chunk.
  const buf = Buffer.allocUnsafe(overlap + CHUNK);
  try {
    for (const r of regions) {
      let pos = r.start;
      let carried = 0;
      let ok = false;
      while (pos < r.end) {
        const want = Number(r.end - pos < BigInt(CHUNK) ? r.end - pos : BigInt(CHUNK));
        let n: number;
        try {
          // Addresses go far beyond 2^32 but stay below 2^47 on x86-64 and arm64 user
          // space, so a number is exact. (FileHandle.read with a bigint position fails
          // with EIO on Node 20: do not "fix" this into a bigint.)
          ({ bytesRead: n } = await fh.read(buf, carried, want, Number(pos)));
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'EIO' || code === 'EFAULT' || code === 'EPERM' || code === 'EACCES') break;
          throw e;
        }
        if (n <= 0) break;
        ok = true;
        bytesScanned += n;
        const view = buf.subarray(0, carried + n);
        for (const nd of needles) {
          if (!found.has(nd.name) && nd.bytes.length <= view.length && view.indexOf(nd.bytes) >= 0) found.add(nd.name);
        }
        // Keep the tail so a needle spanning two chunks is still seen.
        carried = Math.min(overlap, view.length);
        buf.copy(buf, 0, view.length - carried, view.length);
        pos += BigInt(n);
      }
      if (ok) regionsRead++;
    }
  } finally {
    await fh.close();
  }
  return { found: [...found], bytesScanned, regions: regionsRead };
}
