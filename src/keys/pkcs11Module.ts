/**
 * Loading PKCS#11 modules once per process.
 *
 * A PKCS#11 library has process-wide state: C_Initialize may be called once, and
 * C_Finalize ends it for every user in the process. So every user of a module in this
 * process goes through one reference-counted entry: the first acquire initializes, the
 * last release finalizes. The loaded library is never unloaded (dlclose of a library
 * that links OpenSSL is a known source of crashes at exit).
 */
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { join, isAbsolute } from 'node:path';
import pkcs11js from 'pkcs11js';
import type { Pkcs11Uri } from './pkcs11Uri.js';

/** A PKCS#11 module loaded and initialized in this process. */
export interface Pkcs11Module {
  /** Real path of the shared library. */
  readonly path: string;
  /** The binding: call only between acquire and release. */
  readonly lib: pkcs11js.PKCS11;
  /** Drops this reference; the last one finalizes the library (if this process initialized it). */
  release(): void;
}

interface Entry {
  lib: pkcs11js.PKCS11;
  refs: number;
  /** false when someone else in the process had already initialized the library. */
  owned: boolean;
}

const loaded = new Map<string, pkcs11js.PKCS11>();
const active = new Map<string, Entry>();

/** The `CKR_...` name of a PKCS#11 error, or undefined for any other error. Never secret. */
export function ckrName(err: unknown): string | undefined {
  const m = err instanceof Error ? /CKR_[A-Z0-9_]+/.exec(err.message) : null;
  return m ? m[0] : undefined;
}

/**
 * Loads (once) and initializes (once, reference-counted) the module at `path`.
 * C_Initialize is asked for CKF_OS_LOCKING_OK because keyward calls the library from
 * several threads (its worker pool).
 *
 * @throws Error when the file is missing or is not a PKCS#11 module.
 */
export function acquirePkcs11Module(path: string): Pkcs11Module {
  let real: string;
  try {
    real = realpathSync(path);
  } catch {
    throw new Error(`PKCS#11 module not found: ${path}`);
  }
  let entry = active.get(real);
  if (!entry) {
    let lib = loaded.get(real);
    if (!lib) {
      lib = new pkcs11js.PKCS11();
      try {
        lib.load(real);
      } catch (err) {
        throw new Error(`cannot load PKCS#11 module ${real}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
      loaded.set(real, lib);
    }
    let owned = true;
    try {
      lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    } catch (err) {
      if (ckrName(err) !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') {
        throw new Error(`PKCS#11 C_Initialize failed for ${real}: ${ckrName(err) ?? (err instanceof Error ? err.message : String(err))}`, { cause: err });
      }
      // Another binding instance in this process initialized it: use it, never finalize it.
      owned = false;
    }
    entry = { lib, refs: 0, owned };
    active.set(real, entry);
  }
  entry.refs++;
  const e = entry;
  let released = false;
  return {
    path: real,
    lib: e.lib,
    release(): void {
      if (released) return;
      released = true;
      e.refs--;
      if (e.refs === 0) {
        active.delete(real);
        if (e.owned) {
          try {
            e.lib.C_Finalize();
          } catch {
            // Nothing useful to do: the library state is gone either way.
          }
        }
      }
    },
  };
}

/** True while some user in this process holds `path` initialized. */
export function pkcs11ModuleInUse(path: string): boolean {
  try {
    return active.has(realpathSync(path));
  } catch {
    return false;
  }
}

/** Directories searched for a `module-name` (p11-kit's and the usual Linux ones). */
const MODULE_DIRS = [
  '/usr/lib/x86_64-linux-gnu/pkcs11',
  '/usr/lib/aarch64-linux-gnu/pkcs11',
  '/usr/lib64/pkcs11',
  '/usr/lib/pkcs11',
  '/usr/local/lib/pkcs11',
  '/usr/lib/x86_64-linux-gnu',
  '/usr/lib/aarch64-linux-gnu',
  '/usr/lib',
  '/usr/local/lib',
];
const P11KIT_CONFIG_DIRS = ['/etc/pkcs11/modules', '/usr/share/p11-kit/modules'];

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

function candidatesIn(dir: string, name: string): string[] {
  return [join(dir, name), join(dir, `${name}.so`), join(dir, `lib${name}.so`)];
}

/** `module:` line of a p11-kit module config for `name`, resolved against p11-kit's module dir. */
function fromP11KitConfig(name: string): string | undefined {
  for (const dir of P11KIT_CONFIG_DIRS) {
    const conf = join(dir, `${name}.module`);
    if (!isFile(conf)) continue;
    const m = /^\s*module\s*:\s*(\S+)\s*$/m.exec(readFileSync(conf, 'utf8'));
    if (!m) continue;
    const mod = m[1]!;
    if (isAbsolute(mod)) return isFile(mod) ? mod : undefined;
    for (const d of MODULE_DIRS.slice(0, 5)) if (isFile(join(d, mod))) return join(d, mod);
  }
  return undefined;
}

/**
 * Picks the module library: `explicit` (the caller's option) first, else the URI's
 * `module-path` (a file, or a directory holding `module-name`), else `module-name`
 * looked up in p11-kit's configuration and the usual library directories.
 *
 * @throws Error saying what was tried when nothing is found.
 */
export function resolvePkcs11ModulePath(explicit: string | undefined, uri: Pkcs11Uri): string {
  if (explicit !== undefined && explicit !== '') {
    if (!isFile(explicit)) throw new Error(`PKCS#11 module not found: ${explicit}`);
    return explicit;
  }
  if (uri.modulePath !== undefined) {
    let isDir: boolean;
    try {
      isDir = statSync(uri.modulePath).isDirectory();
    } catch {
      throw new Error(`PKCS#11 module-path from the URI not found: ${uri.modulePath}`);
    }
    if (!isDir) return uri.modulePath;
    if (uri.moduleName === undefined) throw new Error(`PKCS#11 module-path ${uri.modulePath} is a directory: add module-name to the URI`);
    const found = candidatesIn(uri.modulePath, uri.moduleName).find(isFile);
    if (!found) throw new Error(`PKCS#11 module "${uri.moduleName}" not found in ${uri.modulePath}`);
    return found;
  }
  if (uri.moduleName !== undefined) {
    const fromConfig = fromP11KitConfig(uri.moduleName);
    if (fromConfig) return fromConfig;
    for (const dir of MODULE_DIRS) {
      const found = candidatesIn(dir, uri.moduleName).find(isFile);
      if (found) return found;
    }
    throw new Error(`PKCS#11 module "${uri.moduleName}" not found (looked in p11-kit's configuration and ${MODULE_DIRS.join(', ')})`);
  }
  throw new Error('no PKCS#11 module given: pass the module path, or put module-path or module-name in the URI');
}

/** Well-known SoftHSM2 library locations (Debian and others), first existing one wins. */
export function findSoftHsmModule(): string | undefined {
  const candidates = [
    '/usr/lib/softhsm/libsofthsm2.so',
    '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
    '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so',
    '/usr/lib64/softhsm/libsofthsm2.so',
    '/usr/local/lib/softhsm/libsofthsm2.so',
  ];
  return candidates.find(isFile) ?? fromP11KitConfig('softhsm2');
}
