/**
 * The keyd commands of the `keyward` CLI:
 *   keyward keyd --config keyd.json          run the key server
 *   keyward keys put|list|delete|generate|put-psk|delete-psk --keyd ADDR ...   provision it
 *   keyward audit verify FILE [--audit-pubkey F]   check an audit log's hash chain and signed checkpoints
 */
import { Command, Option } from 'commander';
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { verifyAuditLog, type AuditVerifyResult } from '../keyd/audit.js';
import { KeydConfigError, loadKeydConfig } from '../keyd/config.js';
import { checkKeydFiles } from '../keyd/configCheck.js';
import { GENERATED_KEY_TYPES, type GeneratedKeyType, type KeyInfo } from '../keyd/protocol.js';
import { startKeyd } from '../keyd/server.js';
import { KeyOperationError } from '../keys/keyOperations.js';
import { connectKeydAdmin, type KeydAdmin } from '../keys/remoteKey.js';
import { schemeName } from '../tls/crypto/signatureSchemes.js';

const CONFIG_HELP = `
Configuration (keyd.json; relative paths are relative to the file):
  {
    "listen":  { "tls": "127.0.0.1:7443", "unix": "/run/keyward/keyd.sock",
                 "unixMode": "0600", "unixIdentity": "local-front" },
    "tls":     { "cert": "keyd-cert.pem", "key": "keyd-key.pem", "clientCa": "fronts-ca.pem" },
    "store":   { "dir": "store", "passphraseEnv": "KEYD_PASSPHRASE" },
    "audit":   { "file": "audit.log", "checkpoints": { "publicKeyFile": "audit-key.pub.pem" },
                 "sink": { "syslogTls": "logs.internal:6514", "ca": "logs-ca.pem" } },
    "metrics": { "listen": "127.0.0.1:9464" },
    "log":     { "level": "info" },
    "clients": [
      { "id": "cn:front-1", "keys": ["example.com"], "bound": true,
        "rateLimit": { "perSecond": 2000, "burst": 4000 } },
      { "id": "local-front", "keys": ["*"], "psks": ["*"] },
      { "id": "cn:admin", "admin": true }
    ],
    "pkcs11": [ { "module": "/usr/lib/softhsm/libsofthsm2.so",
                  "uri": "pkcs11:token=keys;object=web", "pinFile": "pin.txt",
                  "serverNames": ["www.example.com"] } ]
  }
  store: exactly one of "passphraseEnv", "passphraseFile", "keyFile" (32+ random bytes)
         or "pkcs11Kek": { "module", "uri" (an AES key in a token), "pinFile" }.
  listen: "tls" (mutual TLS 1.3; clients need a certificate from tls.clientCa) and/or "unix".
  clients[].bound: that front must send the handshake messages with each sign request
         (keyward serve --keyd-bound); keyd recomputes what it signs from them.
  audit.checkpoints: signed by an audit key sealed in the store (on by default; false turns
         them off); check them with: keyward audit verify audit.log --audit-pubkey FILE.
  audit.sink: each audit line also goes to a syslog receiver over TLS (RFC 5425).
  See docs/keyd.md for every setting, the protocol, and the audit log.

Signals: SIGTERM or SIGINT shut keyd down gracefully (in-flight operations finish).`;

/** Adds `keyd`, `keys ...` and `audit verify` to the program. */
export function registerKeydCommands(program: Command): void {
  program
    .command('keyd')
    .description('run keyd, the key server: private-key operations for authenticated fronts, over mutual TLS or a Unix socket')
    .requiredOption('--config <file>', 'keyd.json configuration file')
    .option('--check', 'validate the configuration and the files it names (certificates and keys match, the store opens, the audit log continues), then exit: 0 ok, 1 a problem, 2 an invalid configuration')
    .addHelpText('after', CONFIG_HELP)
    .action(async (o: { config: string; check?: boolean }) => {
      await runKeyd(o.config, o.check === true);
    });

  const keys = program.command('keys').description('provision keys in keyd (needs an admin identity)');

  adminCommand(keys, 'put <keyFile>', 'import a private key (PEM or DER, PKCS#8/PKCS#1/SEC1); the file may be deleted afterwards')
    .addOption(new Option('--name <serverName>', 'server name the key serves (repeat)').argParser(collect).default([]))
    .action(
      withAdmin(async (admin, o: { name: string[]; json?: boolean }, keyFile: string) => {
        const key = await readPrivateKey(keyFile);
        printKey(await admin.putKey(key, o.name), o.json === true);
      }),
    );

  adminCommand(keys, 'generate', 'generate a key inside keyd; it never leaves keyd')
    .addOption(new Option('--type <type>', 'key type').choices(GENERATED_KEY_TYPES as string[]).default('ec-p256'))
    .addOption(new Option('--name <serverName>', 'server name the key serves (repeat)').argParser(collect).default([]))
    .option('--public-out <file>', 'write the public key (SPKI PEM) here, e.g. to have a certificate issued for it')
    .action(
      withAdmin(async (admin, o: { type: GeneratedKeyType; name: string[]; publicOut?: string; json?: boolean }) => {
        const info = await admin.generateKey(o.type, o.name);
        if (o.publicOut) await writeFile(o.publicOut, spkiPem(info));
        printKey(info, o.json === true);
      }),
    );

  adminCommand(keys, 'list', 'list the keys and PSK identities keyd holds (public facts only)').action(
    withAdmin(async (admin, o: { json?: boolean }) => {
      const r = await admin.listKeys();
      if (o.json) {
        process.stdout.write(
          JSON.stringify(
            {
              keys: r.keys.map(keyJson),
              psks: r.psks.map((p) => ({ identity: identityText(p.identity), createdAt: p.createdAt, hash: p.hash })),
            },
            null,
            2,
          ) + '\n',
        );
        return;
      }
      const rows = [['KEY ID', 'TYPE', 'SOURCE', 'ORIGIN', 'CREATED', 'SERVER NAMES']];
      for (const k of r.keys) rows.push([k.keyId, k.keyType, k.source, k.origin ?? '-', k.createdAt ?? '-', k.serverNames.join(',') || '-']);
      process.stdout.write(table(rows));
      if (r.psks.length > 0) {
        process.stdout.write('\n' + table([['PSK IDENTITY', 'HASH', 'CREATED'], ...r.psks.map((p) => [identityText(p.identity), p.hash ?? '-', p.createdAt ?? '-'])]));
      }
    }),
  );

  adminCommand(keys, 'delete <keyId>', 'delete a stored key (PKCS#11 keys are removed from the configuration instead)').action(
    withAdmin(async (admin, _o: object, keyId: string) => {
      await admin.deleteKey(keyId);
      process.stdout.write(`deleted ${keyId.toLowerCase()}\n`);
    }),
  );

  // `put-psk --identity ID --psk-file F` as documented; the older positional identity and
  // --secret-file still work.
  adminCommand(keys, 'put-psk [identity]', 'store a TLS PSK under an identity ("hex:..." for a binary identity); audited like any key')
    .option('--identity <id>', 'PSK identity ("hex:..." for a binary identity)')
    .option('--psk-file <file>', 'file holding the PSK (raw bytes, or hex text with --hex)')
    .addOption(new Option('--secret-file <file>', 'same as --psk-file').hideHelp())
    .option('--hex', 'the PSK file holds hex text')
    .addOption(new Option('--hash <hash>', 'the hash TLS 1.3 uses the PSK with (RFC 8446 4.2.11: one hash per PSK; TLS 1.2 PSK suites ignore it)').choices(['sha256', 'sha384']).default('sha256'))
    .action(
      withAdmin(async (admin, o: { identity?: string; pskFile?: string; secretFile?: string; hex?: boolean; hash: 'sha256' | 'sha384' }, positional?: string) => {
        const identity = pskIdentityOption(o.identity, positional);
        const file = o.pskFile ?? o.secretFile;
        if (file === undefined) throw new CliUsageError('--psk-file is required (the file holding the PSK)');
        if (o.pskFile !== undefined && o.secretFile !== undefined) throw new CliUsageError('give --psk-file once (--secret-file is its old name)');
        const raw = await readFile(file);
        let secret: Buffer;
        if (o.hex) {
          const text = raw.toString('latin1').trim();
          if (!/^([0-9a-fA-F]{2})+$/.test(text)) throw new CliUsageError(`${file} does not hold hex text`);
          secret = Buffer.from(text, 'hex');
        } else {
          secret = Buffer.from(raw);
        }
        raw.fill(0);
        try {
          await admin.putPsk(parseIdentity(identity), secret, o.hash);
        } finally {
          secret.fill(0);
        }
        process.stdout.write(`stored PSK ${identity}\n`);
      }),
    );

  adminCommand(keys, 'delete-psk [identity]', 'delete a stored PSK')
    .option('--identity <id>', 'PSK identity ("hex:..." for a binary identity)')
    .action(
      withAdmin(async (admin, o: { identity?: string }, positional?: string) => {
        const identity = pskIdentityOption(o.identity, positional);
        await admin.deletePsk(parseIdentity(identity));
        process.stdout.write(`deleted PSK ${identity}\n`);
      }),
    );

  const audit = program.command('audit').description('audit log tools');
  audit
    .command('verify <file>')
    .description("check a keyd audit log's hash chain, and with --audit-pubkey its signed checkpoints; exit code 1 and the first bad line when it was edited, re-chained, cut or reordered")
    .option('--audit-pubkey <file>', "the audit key's public key (PEM, from audit.checkpoints.publicKeyFile), kept away from keyd's host")
    .option('--json', 'print the result as JSON')
    .action(async (file: string, o: { auditPubkey?: string; json?: boolean }) => {
      let auditPublicKey: KeyObject | undefined;
      if (o.auditPubkey !== undefined) {
        try {
          auditPublicKey = createPublicKey(await readFile(o.auditPubkey));
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          process.stderr.write(`keyward audit verify: ${o.auditPubkey}: ${code?.startsWith('E') ? `cannot read (${code})` : 'not a public key (PEM or DER SubjectPublicKeyInfo)'}\n`);
          process.exitCode = 2;
          return;
        }
        if (auditPublicKey.asymmetricKeyType !== 'ed25519') {
          process.stderr.write(`keyward audit verify: ${o.auditPubkey}: not an Ed25519 key (audit keys are Ed25519)\n`);
          process.exitCode = 2;
          return;
        }
      }
      let r;
      try {
        r = await verifyAuditLog(file, auditPublicKey ? { auditPublicKey } : {});
      } catch (e) {
        process.stderr.write(`keyward audit verify: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}\n`);
        process.exitCode = 2;
        return;
      }
      if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
      else if (r.ok) process.stdout.write(`${file}: ok, ${r.lines} line(s); head seq ${r.lastSeq} sha256 ${r.head}\n${checkpointText(r)}`);
      else process.stdout.write(`${file}:${r.problem!.line}: ${r.problem!.kind}: ${r.problem!.message}\n`);
      if (!r.ok) process.exitCode = 1;
    });
}

/** What the checkpoints showed, for `audit verify`'s ok output. */
function checkpointText(r: AuditVerifyResult): string {
  if (!r.signed) return r.checkpoints > 0 ? `${r.checkpoints} checkpoint(s) not checked: give --audit-pubkey to check their signatures\n` : '';
  const s = r.signed;
  const tail = s.unsignedTail === 0 ? 'no line after it' : `${s.unsignedTail} line(s) after it are protected by the hash chain alone`;
  return `${s.verified} checkpoint(s) signed by audit key ${s.auditKey} verified, the last at seq ${s.lastSeq} (line ${s.lastLine}); ${tail}\n`;
}

/** A usage problem: printed without a stack, exit code 2. */
class CliUsageError extends Error {}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function adminCommand(parent: Command, nameAndArgs: string, description: string): Command {
  return parent
    .command(nameAndArgs)
    .description(description)
    .requiredOption('--keyd <address>', 'keyd address: tls://HOST:PORT or unix:/path')
    .option('--ca <file>', "CA certificate that issued keyd's certificate (PEM)")
    .option('--cert <file>', 'admin client certificate (PEM)')
    .option('--key <file>', 'admin client private key (PEM)')
    .option('--server-name <name>', "name to check keyd's certificate against (default: the address's host)")
    .option('--timeout <ms>', 'deadline per request in ms', (v) => Number(v), 60_000)
    .option('--json', 'print JSON');
}

interface AdminOptions {
  keyd: string;
  ca?: string;
  cert?: string;
  key?: string;
  serverName?: string;
  timeout: number;
}

/** Wraps an admin action: connects, runs, reports errors with an exit code, closes. */
function withAdmin<O extends object>(fn: (admin: KeydAdmin, o: O & AdminOptions, ...args: string[]) => Promise<void>): (...args: unknown[]) => Promise<void> {
  return async (...args: unknown[]) => {
    // commander passes the positional arguments, then the options, then the command.
    const cmd = args[args.length - 1] as Command;
    const positional = args.slice(0, args.length - 2) as string[];
    const o = cmd.opts<O & AdminOptions>();
    let admin: KeydAdmin | undefined;
    try {
      if (!Number.isInteger(o.timeout) || o.timeout <= 0) throw new CliUsageError('--timeout must be a positive number of milliseconds');
      const tls = o.keyd.startsWith('tls://');
      if (tls && (!o.cert || !o.key)) throw new CliUsageError('a tls:// keyd address needs --cert and --key (the admin client certificate)');
      const [ca, cert, key] = await Promise.all([o.ca ? readFile(o.ca) : undefined, o.cert ? readFile(o.cert) : undefined, o.key ? readFile(o.key) : undefined]);
      admin = await connectKeydAdmin({
        addresses: [o.keyd],
        ...(ca ? { ca } : {}),
        ...(cert ? { cert } : {}),
        ...(key ? { key } : {}),
        ...(o.serverName ? { tlsServerName: o.serverName } : {}),
        deadlineMs: o.timeout,
      });
      await fn(admin, o, ...positional);
    } catch (e) {
      const msg = e instanceof KeyOperationError ? `${e.code}: ${e.message}` : (e as Error).message;
      process.stderr.write(`keyward ${cmd.parent?.name() ?? ''} ${cmd.name()}: ${msg}\n`);
      process.exitCode = e instanceof CliUsageError ? 2 : 1;
    } finally {
      admin?.close();
    }
  };
}

async function readPrivateKey(path: string): Promise<KeyObject> {
  const raw = await readFile(path);
  try {
    const text = raw.toString('latin1');
    if (text.includes('-----BEGIN')) {
      if (text.includes('ENCRYPTED')) throw new CliUsageError(`${path} is an encrypted key; decrypt it first (e.g. openssl pkey -in ${path})`);
      return createPrivateKey(text);
    }
    for (const type of ['pkcs8', 'pkcs1', 'sec1'] as const) {
      try {
        return createPrivateKey({ key: raw, format: 'der', type });
      } catch {
        // try the next encoding
      }
    }
    throw new CliUsageError(`${path} is not a private key in PEM or DER`);
  } catch (e) {
    if (e instanceof CliUsageError) throw e;
    // The parser's message could quote key text; say only what went wrong.
    throw new CliUsageError(`${path} is not a readable private key`);
  } finally {
    raw.fill(0);
  }
}

/** The identity from --identity or the positional argument (exactly one of them). */
function pskIdentityOption(option: string | undefined, positional: string | undefined): string {
  if (option !== undefined && positional !== undefined) throw new CliUsageError('give the PSK identity once: --identity ID');
  const id = option ?? positional;
  if (id === undefined) throw new CliUsageError('--identity is required (the PSK identity)');
  return id;
}

function parseIdentity(s: string): Buffer {
  if (s.startsWith('hex:')) {
    const h = s.slice(4);
    if (!/^([0-9a-fA-F]{2})+$/.test(h)) throw new CliUsageError(`identity ${JSON.stringify(s)}: bad hex`);
    return Buffer.from(h, 'hex');
  }
  if (s.length === 0) throw new CliUsageError('empty PSK identity');
  return Buffer.from(s, 'utf8');
}

function identityText(b: Uint8Array): string {
  const s = Buffer.from(b).toString('utf8');
  // eslint-disable-next-line no-control-regex
  return Buffer.from(s, 'utf8').equals(Buffer.from(b)) && !/[\u0000-\u001f\u007f]/.test(s) && !s.startsWith('hex:') ? s : `hex:${Buffer.from(b).toString('hex')}`;
}

function spkiPem(info: KeyInfo): string {
  return createPublicKey({ key: Buffer.from(info.spki), format: 'der', type: 'spki' }).export({ type: 'spki', format: 'pem' }) as string;
}

function keyJson(k: KeyInfo): Record<string, unknown> {
  return {
    keyId: k.keyId,
    keyType: k.keyType,
    source: k.source,
    origin: k.origin,
    createdAt: k.createdAt,
    serverNames: k.serverNames,
    schemes: k.schemes.map(schemeName),
    publicKey: spkiPem(k),
  };
}

function printKey(k: KeyInfo, json: boolean): void {
  if (json) process.stdout.write(JSON.stringify(keyJson(k), null, 2) + '\n');
  else process.stdout.write(`key ${k.keyId} (${k.keyType}, ${k.origin ?? k.source}) serves ${k.serverNames.join(', ') || 'no names'}\n`);
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n') + '\n';
}

async function runKeyd(configPath: string, checkOnly: boolean): Promise<void> {
  let config;
  try {
    config = await loadKeydConfig(configPath);
  } catch (e) {
    process.stderr.write(`keyward keyd: ${e instanceof KeydConfigError ? e.message : (e as Error).message}\n`);
    process.exitCode = 2;
    return;
  }
  if (checkOnly) {
    const checks = await checkKeydFiles(config);
    for (const c of checks) process.stdout.write(`${c.ok ? 'ok     ' : 'PROBLEM'} ${c.setting}: ${c.message}\n`);
    const problems = checks.filter((c) => !c.ok).length;
    if (problems === 0) {
      process.stdout.write(`${configPath}: configuration ok\n`);
    } else {
      process.stdout.write(`${configPath}: ${problems} problem(s)\n`);
      process.exitCode = 1;
    }
    return;
  }
  let keyd;
  try {
    keyd = await startKeyd(config);
  } catch (e) {
    process.stderr.write(`keyward keyd: cannot start: ${(e as Error).message}\n`);
    process.exitCode = 1;
    return;
  }
  const stop = (signal: string): void => {
    keyd.logger.info({ signal }, 'signal received');
    keyd.close().then(
      () => process.exit(0),
      (e: Error) => {
        process.stderr.write(`keyward keyd: shutdown failed: ${e.message}\n`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}
