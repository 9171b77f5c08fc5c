/**
 * `keyward connect HOST:PORT`: a TLS client like `openssl s_client -quiet`, whose client
 * key or PSK can stay in a key holder. stdin goes to the server, the server's bytes to
 * stdout; the end of stdin does not close the connection. Once the handshake is done one
 * line on stderr says what was negotiated, as key=value with IANA names.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { connect, type KeywardClientSocket, type KeywardConnectOptions } from '../node/clientSocket.js';
import type { TlsHandshakeError } from '../node/engineSocket.js';
import { schemeName } from '../tls/crypto/signatureSchemes.js';
import { parseClientSession } from '../tls/resumption/clientSession.js';
import { alertName } from '../tls/wire/alerts.js';
import { clientPskOffer, openClientCredentials } from './clientCredentials.js';
import { addKeyOptions, keySettingsFromFlags, keySourceOptions, positiveInt, pskHashOption, type KeyFlagValues, type KeySpecList } from './frontOptions.js';
import { CliError, KeySources } from './keySources.js';

/** The flags of `keyward connect`, as commander gives them (the key flags are serve's: addKeyOptions). */
export interface ConnectFlags extends KeyFlagValues {
  servername?: string;
  ca?: string;
  alpn?: string;
  tlsVersion?: '1.3' | '1.2';
  groups?: string;
  cipher?: string;
  pskIdentity?: string;
  pskHash?: 'sha256' | 'sha384';
  tls13PskKe?: boolean;
  insecure?: boolean;
  timeout?: number;
  sessIn?: string;
  sessOut?: string;
  delegatedCredentials?: boolean;
}

/** Where the command reads and writes (the process's streams, or a test's). */
export interface ConnectIo {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/** Names of the key-exchange groups in the connected line. */
const GROUP_NAMES: Record<number, string> = {
  0x17: 'secp256r1',
  0x18: 'secp384r1',
  0x19: 'secp521r1',
  0x1d: 'X25519',
  0x1e: 'X448',
  0x100: 'ffdhe2048',
  0x101: 'ffdhe3072',
  0x102: 'ffdhe4096',
  0x11ec: 'X25519MLKEM768',
};

/** HOST:PORT, [IPv6]:PORT. */
export function parseTarget(target: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(target);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535) throw new CliError(`${target}: expected HOST:PORT (or [IPv6]:PORT)`);
  return { host: m[1] ?? m[2], port };
}

/** A certificate's subject as one line, most specific first: CN=example.com,O=Example. */
export function subjectLine(cert: X509Certificate): string {
  return cert.subject.split('\n').reverse().join(',');
}

/**
 * The one line `connect` prints once connected (ending in `resumed=yes` when a session was
 * resumed, `dc=yes` when the server signed with a delegated credential).
 */
export function connectedLine(s: KeywardClientSocket): string {
  const n = s.negotiated;
  const leaf = s.getPeerX509Certificate();
  const fields = [
    ['version', n.version],
    ['suite', n.cipherName],
    ['group', n.group === undefined ? undefined : (GROUP_NAMES[n.group] ?? `0x${n.group.toString(16)}`)],
    ['sigalg', n.signatureScheme === undefined ? undefined : schemeName(n.signatureScheme)],
    ['alpn', n.alpnProtocol],
    ['subject', leaf ? subjectLine(leaf) : undefined],
  ];
  if (n.pskIdentity !== undefined) fields.push(['psk', n.pskIdentity]);
  if (s.isSessionReused()) fields.push(['resumed', 'yes']);
  if (n.delegatedCredential) fields.push(['dc', 'yes']);
  return `connected ${fields.map(([k, v]) => `${k}=${v ?? '-'}`).join(' ')}`;
}

function list(value: string | undefined): string[] | undefined {
  return value === undefined ? undefined : value.split(',').map((v) => v.trim()).filter((v) => v.length > 0);
}

/**
 * Runs one connection; resolves with the exit code: 0 after the server's close_notify,
 * 1 for a failed handshake (the alert named on stderr), a connection error, or a close
 * without close_notify (a truncation).
 */
export async function runConnect(target: string, f: ConnectFlags, keySpecs: KeySpecList, io: ConnectIo): Promise<number> {
  const { host, port } = parseTarget(target);
  const keys = keySettingsFromFlags(f, keySpecs);
  const sources = new KeySources({ ...keySourceOptions(keys), log: (line) => io.stderr.write(`keyward: ${line}\n`) });
  try {
    const options: KeywardConnectOptions = {
      host,
      port,
      servername: f.servername,
      rejectUnauthorized: !f.insecure,
      ALPNProtocols: list(f.alpn),
      groups: list(f.groups),
      cipherSuites: list(f.cipher),
      handshakeTimeout: f.timeout ?? 30_000,
      ...(f.delegatedCredentials ? { delegatedCredentials: true } : {}),
    };
    if (f.ca !== undefined) options.ca = readText(f.ca, '--ca');
    if (f.sessIn !== undefined) options.session = readSession(f.sessIn);
    if (f.tlsVersion !== undefined) options.minVersion = options.maxVersion = f.tlsVersion === '1.3' ? 'TLSv1.3' : 'TLSv1.2';
    const { certificate, psk } = await openClientCredentials(keys, f.pskIdentity, sources);
    if (certificate) {
      options.cert = certificate.cert;
      options.key = certificate.key;
    }
    // The PSK is offered in each version the connection may use: TLS 1.3 as an external PSK, TLS 1.2 with PSK suites.
    const offer = clientPskOffer(psk !== undefined, { minVersion: options.minVersion, maxVersion: options.maxVersion, cipherSuites: options.cipherSuites, hash: f.pskHash, pskKe: f.tls13PskKe });
    if (psk && offer) {
      if (offer.tls12) options.psk = { holder: psk.holder, identity: psk.identity };
      if (offer.tls13) options.tls13Psk = { holder: psk.holder, identity: psk.identity, ...offer.tls13 };
    }
    let socket: KeywardClientSocket;
    try {
      socket = connect(options);
    } catch (err) {
      throw new CliError((err as Error).message);
    }
    if (f.sessOut !== undefined) {
      const path = f.sessOut;
      socket.on('session', (session: Buffer) => saveSession(path, session, io));
    }
    return await relay(socket, io);
  } finally {
    await sources.close();
  }
}

function readText(path: string, flag: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new CliError(`${flag} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** A session `--sess-out` saved, checked before it is offered (a bad file is an error naming it). */
function readSession(path: string): Buffer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new CliError(`--sess-in ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    parseClientSession(bytes);
  } catch (err) {
    throw new CliError(`--sess-in ${path}: ${(err as Error).message}`);
  }
  return bytes;
}

/**
 * Writes the latest session to `path`, readable by the owner only (it holds the session's
 * PSK): a new file of mode 0600 renamed over the old one, so no reader sees half of it.
 */
function saveSession(path: string, session: Buffer, io: ConnectIo): void {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, session, { mode: 0o600, flag: 'wx' });
    renameSync(tmp, path);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // Nothing was written.
    }
    io.stderr.write(`keyward: connect: --sess-out ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}\n`);
  }
}

/** stdin to the server, the server to stdout, until the connection ends. */
function relay(socket: KeywardClientSocket, io: ConnectIo): Promise<number> {
  return new Promise((resolve) => {
    let failed = false;
    socket.once('secureConnect', () => {
      io.stderr.write(`${connectedLine(socket)}\n`);
      // The end of stdin does not end the connection (like s_client -quiet): only the server does.
      io.stdin.pipe(socket, { end: false });
    });
    socket.on('data', (d: Buffer) => io.stdout.write(d));
    socket.on('error', (err: TlsHandshakeError) => {
      failed = true;
      const alert = err.alertSent ?? err.alertReceived;
      const what = alert === undefined ? (err.code ?? 'error') : `${err.alertSent !== undefined ? 'sent' : 'received'} ${alertName(alert)}`;
      io.stderr.write(`keyward: connect: ${what}: ${err.message}\n`);
    });
    socket.on('close', () => {
      io.stdin.unpipe(socket);
      if (failed) return resolve(1);
      if (!socket.peerSentCloseNotify) {
        io.stderr.write('keyward: connect: the server closed without close_notify (truncated)\n');
        return resolve(1);
      }
      resolve(0);
    });
  });
}

/** Registers `keyward connect` on the program. */
export function registerConnectCommand(program: Command): void {
  const keySpecs: KeySpecList = [];
  const cmd = program
    .command('connect')
    .description('connect to a TLS server (like openssl s_client -quiet), the client key or PSK in a key holder: stdin to the server, the server to stdout')
    .argument('<host:port>', 'server address, HOST:PORT or [IPv6]:PORT')
    .option('--servername <name>', 'SNI and the name the certificate must be valid for (default: the host, when it is a name)')
    .option('--ca <ca.pem>', "trust anchors for the server's certificate (default: Node's root store)")
    .option('--alpn <list>', 'ALPN protocols to offer, comma-separated, e.g. h2,http/1.1')
    .addOption(new Option('--tls-version <version>', 'only this TLS version').choices(['1.3', '1.2']))
    .option('--groups <list>', 'key-exchange groups in preference order, e.g. X25519,P-256 or ffdhe2048 (TLS 1.3 only); a share is sent for the first')
    .option('--cipher <list>', 'cipher suites by IANA name, comma-separated, e.g. TLS_AES_128_GCM_SHA256');
  // The client key and PSK: the same flags as serve's (one --cert here).
  addKeyOptions(cmd, keySpecs)
    .option('--psk-identity <identity>', 'the PSK identity to use: a TLS 1.3 external PSK and TLS 1.2 PSK suites, or the one --tls-version names')
    .addOption(pskHashOption())
    .option('--tls13-psk-ke', 'TLS 1.3 PSK: offer psk_ke only (no (EC)DHE, so no forward secrecy)')
    .option('--insecure', "do not verify the server's certificate (still reported on stderr)")
    .option('--sess-out <file>', 'save the session the server gives (TLS 1.3: the last ticket) to FILE, mode 0600, to resume with --sess-in')
    .option('--sess-in <file>', 'offer the session saved in FILE by --sess-out (a full handshake if the server does not take it)')
    .option('--delegated-credentials', "offer delegated credentials (RFC 9345): a server may sign with one, checked as RFC 9345 4.1.3 says; the connected line then ends in dc=yes")
    .addOption(new Option('--timeout <ms>', 'handshake timeout (default 30000)').argParser(positiveInt))
    .action(async (target: string, f: ConnectFlags) => {
      const code = await runConnect(target, f, keySpecs, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr });
      process.exit(code);
    });
}
