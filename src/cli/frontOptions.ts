/**
 * The flags `serve`, `proxy` and `connect` share (certificates, where their keys are, TLS
 * options, PSKs, --config) and how they become settings: a flag given on the command line
 * overrides the configuration file's value.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { GROUP_NAME_LIST, groupByName, suiteByName } from '../node/clientSocket.js';
import type { KeywardServerOptions } from '../node/server.js';
import { suiteInfo } from '../tls/crypto/cipherSuites.js';
import { groupSpec } from '../tls/crypto/groups.js';
import { holderMaxValidity, parseDcValidity, DEFAULT_DC_VALIDITY_MS } from './delegation.js';
import { CliError, type KeySourceOptions, type KeySpec, type PskSpec } from './keySources.js';
import { loadRoleConfig, mergeSettings, RoleConfigError, type CertificateEntry, type FrontSettings, type ProxySettings, type Role } from './roleConfig.js';

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

export function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
}

/** The key options in command-line order, filled while commander parses (the k-th goes with the k-th --cert). */
export type KeySpecList = KeySpec[];

/**
 * Adds the certificate and key-holder flags (and the PSK sources) that a TLS server
 * (`serve`, `proxy`) and a TLS client (`connect`, `proxy --client`) share; key options are
 * recorded in `keySpecs` in command-line order.
 */
export function addKeyOptions(cmd: Command, keySpecs: KeySpecList): Command {
  const keyOption = (make: (v: string) => KeySpec) => (value: string, previous: string[] | undefined) => {
    keySpecs.push(make(value));
    return [...(previous ?? []), value];
  };
  return cmd
    .addOption(new Option('--cert <chain.pem>', 'certificate chain, leaf first (a server may repeat it for several certificates)').argParser(collect))
    .addOption(new Option('--key <key.pem>', 'private key file of a --cert: read by a key process with --key-process, else by this process (repeat)').argParser(keyOption((path) => ({ kind: 'file', path }))))
    .option('--key-process', 'keep each --key in a forked key process; this process never opens the key file')
    .option('--key-user <user>', 'run the key processes as this user (name, uid or uid:gid; needs root)')
    .addOption(new Option('--keyd <address>', 'keyd holds the keys: tls://HOST:PORT or unix:/path (repeat for failover)').argParser(collect))
    .option('--keyd-ca <ca.pem>', "CA certificate that issued keyd's certificate (tls://)")
    .option('--keyd-cert <front.pem>', "this program's client certificate for keyd (tls://)")
    .option('--keyd-key <front-key.pem>', "the private key of --keyd-cert (the keyd link's key, not the TLS key)")
    .addOption(new Option('--keyd-key-id <hex>', "key id in keyd for a --cert (default: the certificate's own key id)").argParser(keyOption((keyId) => ({ kind: 'keyd-id', keyId }))))
    .option('--keyd-bound', 'send the handshake messages with each sign request, so keyd recomputes what it signs (bound mode; keyd may require it)')
    .addOption(new Option('--keyd-deadline <ms>', 'deadline of one key operation in keyd (default 2000)').argParser(positiveInt))
    .addOption(new Option('--pkcs11 <uri>', "RFC 7512 URI of a --cert's private key in a PKCS#11 token (repeat)").argParser(keyOption((uri) => ({ kind: 'pkcs11', uri }))))
    .option('--pkcs11-module <path>', 'PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so (else module-path in the URI)')
    .option('--pkcs11-pin-file <file>', "file holding the token's user PIN (else pin-value or pin-source in the URI)")
    .option('--psk-keyd', "PSKs held by the --keyd key server (a server's TLS 1.2 PSK suites, TLS 1.3 too with --tls13-psk; a client's --psk-identity)")
    .option('--psk-process', 'PSKs in --psk-file, read by a forked key process; this process never opens it')
    .option('--psk-file <file>', 'PSK file, "identity:hexkey [sha256|sha384]" per line (read by this process unless --psk-process)');
}

/**
 * Adds the flags of a TLS server front: --config, the key flags, TLS options (versions,
 * groups, suites), the PSK hint and policy, --user. `clientMode`: the proxy, whose
 * --client mode uses the TLS options toward its target.
 */
export function addFrontOptions(cmd: Command, keySpecs: KeySpecList, defaults: { alpn?: string; clientMode?: boolean }): Command {
  cmd.option('--config <file>', 'JSON configuration file (docs/configuration.md); flags given here override it');
  return addKeyOptions(cmd, keySpecs)
    .option('--alpn <list>', `ALPN protocols in preference order${defaults.alpn ? ` (default ${defaults.alpn})` : ' (default: none)'}`)
    .addOption(new Option('--min-version <version>', 'lowest TLS version accepted (default TLSv1.2)').choices(['TLSv1.2', 'TLSv1.3']))
    .addOption(new Option('--max-version <version>', 'highest TLS version used (default TLSv1.3)').choices(['TLSv1.2', 'TLSv1.3']))
    .option(
      '--groups <list>',
      `key-exchange groups in preference order, comma-separated: ${GROUP_NAME_LIST} (the ffdhe groups: TLS 1.3 only)${defaults.clientMode ? '; client mode: a share is sent for the first' : ''}`,
    )
    .option('--cipher <list>', 'cipher suites by IANA name in preference order, comma-separated, e.g. TLS_AES_256_GCM_SHA384,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384; suites of one version only limit it to that version')
    .option('--rsa-key-exchange', 'also offer TLS 1.2 RSA key exchange for old clients (no forward secrecy; the key holder decrypts the premaster)')
    .option('--ticket-keys-keyd', "session ticket keys from the --keyd key server (rotated there, shared by the fleet's fronts so they resume each other's sessions; the front's rule in keyd needs \"ticketKeys\": true)")
    .option('--delegated-credentials', "RFC 9345: the certificate's key holder (keyd, key process, --key) signs a short-lived credential whose key this process makes in memory; TLS 1.3 clients that offer them (Firefox, NSS) are served without a key-holder call (the certificate needs DelegationUsage: keyward certs issue --delegation)")
    .option('--dc-validity <duration>', 'with --delegated-credentials: validity of each credential, 5m to 7d (default 1h; keyd signs up to its own maximum, 6h unless configured)')
    .option('--psk-hint <hint>', 'PSK identity hint sent to clients')
    .addOption(new Option('--psk-unknown <mode>', 'answer to an unknown PSK identity (with --psk-file)').choices(['random', 'reject']))
    .option('--user <user>', 'once listening and the key processes started, drop this process from root to this user for good (name, uid or uid:gid)');
}

/**
 * The TLS 1.3 external-PSK flags of a server (serve, proxy); the PSK comes from the PSK
 * source flags (--psk-keyd, --psk-process --psk-file, --psk-file). `clientToo`: the proxy,
 * whose client mode reads --tls13-psk-ke and --psk-hash as `keyward connect` does.
 */
export function addTls13PskServerOptions(cmd: Command, clientToo = false): Command {
  return cmd
    .option('--tls13-psk', 'also take TLS 1.3 external PSKs from the PSK source: its holder runs their key schedule (docs/tls13-psk.md)')
    .addOption(
      new Option('--tls13-psk-identity <identity>', 'an identity taken over TLS 1.3 (repeat); required with --cert: any other identity gets the certificate handshake').argParser(collect),
    )
    .option(
      '--tls13-psk-ke',
      `TLS 1.3 PSKs: also accept psk_ke (no (EC)DHE, so no forward secrecy) from a client that offers no (EC)DHE this server shares${clientToo ? '; client mode: offer psk_ke only' : ''}`,
    )
    .addOption(pskHashOption());
}

/** --psk-hash, for serve --tls13-psk, proxy and connect. */
export function pskHashOption(): Option {
  return new Option('--psk-hash <hash>', 'the hash the TLS 1.3 PSK is used with (RFC 8446 4.2.11; default sha256)').choices(['sha256', 'sha384']);
}

/** The key flags' values, as commander gives them (addKeyOptions). */
export interface KeyFlagValues {
  cert?: string[];
  keyProcess?: boolean;
  keyUser?: string;
  keyd?: string[];
  keydCa?: string;
  keydCert?: string;
  keydKey?: string;
  keydBound?: boolean;
  keydDeadline?: number;
  pkcs11Module?: string;
  pkcs11PinFile?: string;
  pskKeyd?: boolean;
  pskProcess?: boolean;
  pskFile?: string;
}

/** A server front's flag values (addFrontOptions). */
export interface FrontFlagValues extends KeyFlagValues {
  config?: string;
  ticketKeysKeyd?: boolean;
  listen?: string;
  alpn?: string;
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  maxVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** Comma-separated group names (--groups). */
  groups?: string;
  /** Comma-separated IANA cipher suite names (--cipher). */
  cipher?: string;
  rsaKeyExchange?: boolean;
  pskHint?: string;
  pskUnknown?: 'random' | 'reject';
  user?: string;
  delegatedCredentials?: boolean;
  dcValidity?: string;
  /** serve only (addTls13PskServerOptions). */
  tls13Psk?: boolean;
  tls13PskIdentity?: string[];
  tls13PskKe?: boolean;
  pskHash?: 'sha256' | 'sha384';
}

/** The certificates and where their keys and PSKs are, from the key flags (only flags actually given). */
export function keySettingsFromFlags(o: KeyFlagValues, keySpecs: KeySpecList): FrontSettings {
  const s: FrontSettings = {};
  if (o.cert !== undefined) {
    if (keySpecs.length > o.cert.length) {
      throw new CliError(`more key options (--key, --pkcs11, --keyd-key-id: ${keySpecs.length}) than certificates (--cert: ${o.cert.length}); the k-th key option goes with the k-th --cert`);
    }
    s.certificates = o.cert.map((cert, i): CertificateEntry => {
      const k = keySpecs[i];
      if (!k) return { cert };
      return k.kind === 'file' ? { cert, key: k.path } : k.kind === 'pkcs11' ? { cert, pkcs11: k.uri } : { cert, keydKeyId: k.keyId };
    });
  } else if (keySpecs.length > 0) {
    throw new CliError('a key option (--key, --pkcs11, --keyd-key-id) needs its certificate: --cert on the command line (the k-th key option goes with the k-th --cert)');
  }
  if (o.keyProcess) s.keyProcess = true;
  if (o.keyUser !== undefined) s.keyUser = o.keyUser;
  s.keyd = definedFields({ addresses: o.keyd, ca: o.keydCa, cert: o.keydCert, key: o.keydKey, bound: o.keydBound, deadlineMs: o.keydDeadline });
  s.pkcs11 = definedFields({ module: o.pkcs11Module, pinFile: o.pkcs11PinFile });
  s.psk = definedFields({ keyd: o.pskKeyd, process: o.pskProcess, file: o.pskFile });
  return s;
}

/** The shared settings the command line gave (only flags actually given). */
export function frontSettingsFromFlags(o: FrontFlagValues, keySpecs: KeySpecList): FrontSettings {
  const s = keySettingsFromFlags(o, keySpecs);
  if (o.listen !== undefined) s.listen = o.listen;
  if (o.user !== undefined) s.user = o.user;
  if (o.ticketKeysKeyd) s.keyd = { ...s.keyd, ticketKeys: true };
  s.psk = definedFields({ ...s.psk, hint: o.pskHint, unknown: o.pskUnknown, tls13: o.tls13Psk, tls13Identities: o.tls13PskIdentity, tls13PskKe: o.tls13PskKe, hash: o.pskHash });
  s.tls = definedFields({
    alpn: o.alpn?.split(',').filter(Boolean),
    minVersion: o.minVersion,
    maxVersion: o.maxVersion,
    rsaKeyExchange: o.rsaKeyExchange,
    groups: namesFromFlag(o.groups, '--groups', groupByName),
    ciphers: namesFromFlag(o.cipher, '--cipher', suiteByName),
  });
  s.delegatedCredentials = definedFields({ enabled: o.delegatedCredentials ? true : undefined, validity: o.dcValidity });
  return s;
}

/** A comma-separated list of names `byName` knows (groups, cipher suites); an unknown one is an error naming the flag. */
function namesFromFlag(value: string | undefined, flag: string, byName: (name: string) => unknown): string[] | undefined {
  if (value === undefined) return undefined;
  const names = value.split(',').map((v) => v.trim()).filter(Boolean);
  if (names.length === 0) throw new CliError(`${flag}: expected a comma-separated list, got "${value}"`);
  for (const name of names) known(name, flag, byName);
  return names;
}

/** `byName(name)`; an unknown name is an error naming `flag`. */
function known<T>(name: string, flag: string, byName: (name: string) => T): T {
  try {
    return byName(name);
  } catch (err) {
    throw new CliError(`${flag}: ${(err as Error).message}`);
  }
}

/**
 * A server's groups, suites and versions from `tls` (serve, proxy): the listed suites split
 * by version; suites of one version only serve that version. Errors name the flag and the
 * file's field.
 */
export function serverTlsChoices(t: FrontSettings['tls']): Pick<KeywardServerOptions, 'groups' | 'tls13CipherSuites' | 'tls12CipherSuites' | 'minVersion' | 'maxVersion'> {
  const groups = t?.groups?.map((name) => known(name, '--groups (tls.groups)', groupByName));
  const suites = t?.ciphers?.map((name) => known(name, '--cipher (tls.ciphers)', suiteByName));
  const tls13 = suites?.filter((x) => suiteInfo(x)!.version === 'TLSv1.3');
  const tls12 = suites?.filter((x) => suiteInfo(x)!.version === 'TLSv1.2');
  let minVersion = t?.minVersion;
  let maxVersion = t?.maxVersion;
  if (minVersion === 'TLSv1.3' && maxVersion === 'TLSv1.2') throw new CliError('--min-version (tls.minVersion) TLSv1.3 is above --max-version (tls.maxVersion) TLSv1.2');
  if (tls13 && tls13.length === 0) {
    if (maxVersion === 'TLSv1.3' || minVersion === 'TLSv1.3') throw new CliError('--cipher (tls.ciphers) lists no TLS 1.3 suite, yet TLS 1.3 is asked for (--min-version/--max-version)');
    maxVersion = 'TLSv1.2';
  }
  if (tls12 && tls12.length === 0) {
    if (maxVersion === 'TLSv1.2') throw new CliError('--cipher (tls.ciphers) lists no TLS 1.2 suite, yet --max-version (tls.maxVersion) is TLSv1.2');
    minVersion = 'TLSv1.3';
  }
  // keyward's TLS 1.2 suites are ECDHE only: finite-field groups alone leave TLS 1.2 nothing.
  if (groups && !groups.some((g) => groupSpec(g).tls12 === 'ECDHE')) {
    if (maxVersion === 'TLSv1.2') throw new CliError('--groups (tls.groups) lists no elliptic curve, which TLS 1.2 (ECDHE only) needs, yet --max-version (tls.maxVersion) is TLSv1.2');
    minVersion = 'TLSv1.3';
  }
  return {
    ...(groups ? { groups } : {}),
    ...(tls13 && tls13.length > 0 ? { tls13CipherSuites: tls13 } : {}),
    ...(tls12 && tls12.length > 0 ? { tls12CipherSuites: tls12 } : {}),
    ...(minVersion ? { minVersion } : {}),
    ...(maxVersion ? { maxVersion } : {}),
  };
}

/** The delegated-credential settings when they are on, checked: their validity in ms. */
export function delegationSettings(s: FrontSettings): { validityMs: number } | undefined {
  const d = s.delegatedCredentials;
  if (d?.enabled !== true) {
    if (d?.validity !== undefined && d.enabled === undefined) throw new CliError('--dc-validity needs --delegated-credentials');
    return undefined;
  }
  return { validityMs: d.validity === undefined ? DEFAULT_DC_VALIDITY_MS : parseDcValidity(d.validity) };
}

/** `o` without its undefined fields, or undefined when none is left (a group no flag set). */
export function definedFields<T extends object>(o: T): T | undefined {
  const entries = Object.entries(o).filter(([, v]) => v !== undefined);
  return entries.length > 0 ? (Object.fromEntries(entries) as T) : undefined;
}

/** The configuration file's settings (when --config was given) with the flags' on top. */
export function resolveSettings<R extends Role>(role: R, configPath: string | undefined, fromFlags: R extends 'proxy' ? ProxySettings : FrontSettings): R extends 'proxy' ? ProxySettings : FrontSettings {
  if (configPath === undefined) return fromFlags;
  let fromFile;
  try {
    fromFile = loadRoleConfig(role, configPath);
  } catch (err) {
    if (err instanceof RoleConfigError) throw new CliError(`invalid configuration:\n${err.message}`);
    throw err;
  }
  return mergeSettings(fromFile, fromFlags);
}

/** Where keys come from, for KeySources. */
export function keySourceOptions(s: FrontSettings): KeySourceOptions {
  const dc = delegationSettings(s);
  return {
    ...(dc ? { delegatedCredentials: { maxValidityMs: holderMaxValidity(dc.validityMs) } } : {}),
    keyProcess: s.keyProcess === true,
    pskProcess: s.psk?.process === true,
    ...(s.keyUser !== undefined ? { keyUser: s.keyUser } : {}),
    ...(s.keyd?.addresses && s.keyd.addresses.length > 0
      ? {
          keyd: {
            addresses: s.keyd.addresses,
            caPath: s.keyd.ca,
            certPath: s.keyd.cert,
            keyPath: s.keyd.key,
            deadlineMs: s.keyd.deadlineMs ?? 2_000,
            bound: s.keyd.bound === true,
            ticketKeys: s.keyd.ticketKeys === true,
          },
        }
      : {}),
    pkcs11: { module: s.pkcs11?.module, pinFile: s.pkcs11?.pinFile },
  };
}

/** Whether the front's ticket keys come from keyd (--ticket-keys-keyd), checking keyd is there to give them. */
export function ticketKeysFromKeyd(s: FrontSettings): boolean {
  if (s.keyd?.ticketKeys !== true) return false;
  const addresses = s.keyd.addresses ?? [];
  if (addresses.length === 0) throw new CliError('--ticket-keys-keyd needs --keyd (the key server that rotates the ticket keys)');
  if (!addresses.some((a) => a.startsWith('tls://'))) throw new CliError('--ticket-keys-keyd needs a tls:// --keyd address: keyd serves ticket keys over mutual TLS only');
  return true;
}

/** Certificate paths and, per certificate, its key option (undefined: keyd by the certificate's key id). */
export function certificateSpecs(s: FrontSettings): { certs: string[]; keys: (KeySpec | undefined)[] } {
  const entries = s.certificates ?? [];
  return {
    certs: entries.map((c) => c.cert),
    keys: entries.map((c): KeySpec | undefined =>
      c.key !== undefined ? { kind: 'file', path: c.key } : c.pkcs11 !== undefined ? { kind: 'pkcs11', uri: c.pkcs11 } : c.keydKeyId !== undefined ? { kind: 'keyd-id', keyId: c.keydKeyId } : undefined,
    ),
  };
}

/** How a server uses its PSKs over TLS 1.3 (serve --tls13-psk). */
export interface Tls13PskSettings {
  hash?: 'sha256' | 'sha384';
  identities?: string[];
  allowPskOnly?: boolean;
}

/** Where the PSKs are (--psk-keyd, --psk-process --psk-file, --psk-file), checking the sources given are one; undefined without one. */
export function pskSource(s: FrontSettings): PskSpec | undefined {
  const p = s.psk;
  if (!p) return undefined;
  if (p.keyd && (p.process || p.file !== undefined)) throw new CliError('--psk-keyd and --psk-file/--psk-process are alternatives: give one PSK source (in a file: psk.keyd or psk.file)');
  if (p.process && p.file === undefined) throw new CliError('--psk-process needs --psk-file (the file the key process reads; in a file: psk.file)');
  return p.keyd ? { kind: 'keyd' } : p.file !== undefined ? { kind: p.process ? 'process' : 'file', path: p.file } : undefined;
}

/** A server's PSK settings (serve, proxy), checking that the combination makes sense. */
export function pskSettings(s: FrontSettings): { source: PskSpec; identityHint?: string; unknownIdentity?: 'random' | 'reject'; tls13?: Tls13PskSettings } | undefined {
  const p = s.psk;
  if (!p) return undefined;
  const source = pskSource(s);
  if (!p.tls13 && (p.tls13Identities !== undefined || p.tls13PskKe !== undefined || p.hash !== undefined)) throw new CliError('--tls13-psk-identity, --tls13-psk-ke and --psk-hash go with --tls13-psk (in a file: psk.tls13Identities, psk.tls13PskKe and psk.hash go with psk.tls13)');
  if (!source) {
    if (p.hint !== undefined || p.unknown !== undefined || p.tls13) {
      throw new CliError('--psk-hint, --psk-unknown and --tls13-psk need a PSK source: --psk-keyd, --psk-process --psk-file, or --psk-file (in a file: psk.keyd or psk.file)');
    }
    return undefined;
  }
  if (p.tls13 && (s.certificates?.length ?? 0) > 0 && p.tls13Identities === undefined) {
    throw new CliError('--tls13-psk with --cert needs --tls13-psk-identity ID (repeat): an identity not listed, a stale ticket say, then gets the certificate handshake instead of decrypt_error');
  }
  const tls13: Tls13PskSettings | undefined = p.tls13 ? definedFields({ hash: p.hash, identities: p.tls13Identities, allowPskOnly: p.tls13PskKe }) ?? {} : undefined;
  return { source, ...(p.hint !== undefined ? { identityHint: p.hint } : {}), ...(p.unknown ? { unknownIdentity: p.unknown } : {}), ...(tls13 ? { tls13 } : {}) };
}
