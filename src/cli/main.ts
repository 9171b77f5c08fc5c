import { Command, InvalidArgumentError, Option } from 'commander';
import { join } from 'node:path';
import { ensureDemoPki } from './pki.js';
import { runDemo } from './demo.js';
import { registerKeydCommands } from './keydCommands.js';
import { CliError, serve, type KeySpec, type PskSpec, type RunningServer, type ServeOptions } from './serve.js';

const collect = (value: string, previous: string[]) => [...previous, value];

const SERVE_HELP = `
Where each certificate's private key lives (the k-th of --key, --pkcs11 and
--keyd-key-id, in command-line order, goes with the k-th --cert; a --cert left
without one is looked up in keyd by its public key):

  key process   --cert chain.pem --key-process --key key.pem [--key-user USER]
                A forked child alone opens key.pem and signs; this process never
                reads it. If the child dies it is restarted; handshakes meanwhile
                fail with internal_error. --key-user runs it as another user (root only).
  keyd          --cert chain.pem --keyd tls://HOST:PORT --keyd-ca ca.pem
                  --keyd-cert front.pem --keyd-key front-key.pem
                --cert chain.pem --keyd unix:/run/keyward/keyd.sock
                No --key: keyd holds it; it is found by the certificate's key id
                (SHA-256 of its SubjectPublicKeyInfo) or by --keyd-key-id. Repeat
                --keyd for failover. --keyd-key is the key of this front's client
                certificate on the keyd link, not the TLS server key.
  PKCS#11       --cert chain.pem --pkcs11 'pkcs11:token=web;object=server'
                  --pkcs11-module /usr/lib/softhsm/libsofthsm2.so [--pkcs11-pin-file pin.txt]
                The PIN comes from the file, or from the URI (pin-value=, pin-source=).
  in-process    --cert chain.pem --key key.pem
                The key is loaded into this process (a baseline, not isolation).

TLS 1.2 PSK suites (PSK-AES128-GCM-SHA256, ECDHE-PSK-AES128-GCM-SHA256,
ECDHE-PSK-CHACHA20-POLY1305; --cert is optional then):
  keyd          --psk-keyd --keyd ADDR ...   PSKs put with "keyward keys put-psk"
  key process   --psk-process --psk-file psks.txt
                psks.txt holds "identity:hexkey" lines; only a forked child reads it.
  in-process    --psk-file psks.txt          (a baseline, not isolation)
  An unknown identity gets a random master secret (the handshake fails at Finished);
  --psk-unknown reject sends unknown_psk_identity instead. --psk-hint sets the hint.

Examples:
  keyward serve --listen 0.0.0.0:443 --cert site.pem --key-process --key site-key.pem --key-user keyward
  keyward serve --listen 127.0.0.1:0 --cert a.pem --cert b.pem --keyd unix:/run/keyward/keyd.sock
  keyward serve --cert ec.pem --pkcs11 'pkcs11:token=web;object=ec' --cert rsa.pem --key-process --key rsa-key.pem \\
                --pkcs11-module /usr/lib/softhsm/libsofthsm2.so --pkcs11-pin-file pin.txt

Once listening it prints "keyward listening on https://HOST:PORT/" (the real port
when --listen asks for port 0). SIGTERM or SIGINT stop it gracefully.`;

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer (milliseconds)');
  return n;
}

interface ServeCliOptions {
  listen: string;
  cert: string[];
  keyProcess?: boolean;
  keyUser?: string;
  keyd: string[];
  keydCa?: string;
  keydCert?: string;
  keydKey?: string;
  keydBound?: boolean;
  keydDeadline: number;
  pkcs11Module?: string;
  pkcs11PinFile?: string;
  alpn: string;
  minVersion: 'TLSv1.2' | 'TLSv1.3';
  rsaKeyExchange?: boolean;
  pskKeyd?: boolean;
  pskProcess?: boolean;
  pskFile?: string;
  pskHint?: string;
  pskUnknown?: 'random' | 'reject';
}

/** The PSK part of serve's options, checking the combination of --psk-* flags. */
function pskOptions(o: ServeCliOptions): Pick<ServeOptions, 'psk'> {
  if (o.pskKeyd && (o.pskProcess || o.pskFile !== undefined)) throw new CliError('--psk-keyd and --psk-file/--psk-process are alternatives: give one PSK source');
  if (o.pskProcess && o.pskFile === undefined) throw new CliError('--psk-process needs --psk-file (the file the key process reads)');
  const source: PskSpec | undefined = o.pskKeyd ? { kind: 'keyd' } : o.pskFile !== undefined ? { kind: o.pskProcess ? 'process' : 'file', path: o.pskFile } : undefined;
  if (!source) {
    if (o.pskHint !== undefined || o.pskUnknown !== undefined) throw new CliError('--psk-hint and --psk-unknown need a PSK source: --psk-keyd, --psk-process --psk-file, or --psk-file');
    return {};
  }
  return { psk: { source, ...(o.pskHint !== undefined ? { identityHint: o.pskHint } : {}), ...(o.pskUnknown ? { unknownIdentity: o.pskUnknown } : {}) } };
}

function hostUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** Stops the server on SIGTERM/SIGINT: gracefully, then at once on a second signal. */
function stopOnSignals(running: RunningServer): void {
  let stopping = false;
  const stop = (): void => {
    if (stopping) process.exit(1);
    stopping = true;
    void running.close().finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

export function buildProgram(): Command {
  const program = new Command('keyward');
  program
    .description('TLS termination whose private key stays in a key holder (key process, keyd, PKCS#11)')
    .showHelpAfterError();

  // The key options of every --cert, in the order given (commander calls the parsers in argv order).
  const keySpecs: KeySpec[] = [];
  const keyOption = (make: (v: string) => KeySpec) => (value: string, previous: string[] | undefined) => {
    keySpecs.push(make(value));
    return [...(previous ?? []), value];
  };

  program
    .command('serve')
    .description('serve a small HTTPS page (HTTP/2 when h2 is negotiated) over the keyward TLS engine, the key in a key process, keyd or a PKCS#11 token')
    .option('--listen <addr>', 'address to listen on, HOST:PORT (port 0: any free port)', '127.0.0.1:8443')
    .addOption(new Option('--cert <chain.pem>', 'certificate chain, leaf first (repeat for several certificates)').argParser(collect).default([]))
    .addOption(new Option('--key <key.pem>', 'private key file of a --cert: read by a key process with --key-process, else by this process (repeat)').argParser(keyOption((path) => ({ kind: 'file', path }))))
    .option('--key-process', 'keep each --key in a forked key process; this process never opens the key file')
    .option('--key-user <user>', 'run the key processes as this user (name, uid or uid:gid; needs root)')
    .addOption(new Option('--keyd <address>', 'keyd holds the keys: tls://HOST:PORT or unix:/path (repeat for failover)').argParser(collect).default([]))
    .option('--keyd-ca <ca.pem>', 'CA certificate that issued keyd\'s certificate (tls://)')
    .option('--keyd-cert <front.pem>', 'this front\'s client certificate for keyd (tls://)')
    .option('--keyd-key <front-key.pem>', 'the private key of --keyd-cert (the keyd link\'s key, not the TLS server key)')
    .addOption(new Option('--keyd-key-id <hex>', 'key id in keyd for a --cert (default: the certificate\'s own key id)').argParser(keyOption((keyId) => ({ kind: 'keyd-id', keyId }))))
    .option('--keyd-bound', 'send the handshake messages with each sign request, so keyd recomputes what it signs (bound mode; keyd may require it)')
    .addOption(new Option('--keyd-deadline <ms>', 'deadline of one key operation in keyd').argParser(positiveInt).default(2000))
    .addOption(new Option('--pkcs11 <uri>', 'RFC 7512 URI of a --cert\'s private key in a PKCS#11 token (repeat)').argParser(keyOption((uri) => ({ kind: 'pkcs11', uri }))))
    .option('--pkcs11-module <path>', 'PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so (else module-path in the URI)')
    .option('--pkcs11-pin-file <file>', 'file holding the token\'s user PIN (else pin-value or pin-source in the URI)')
    .option('--alpn <list>', 'ALPN protocols in preference order', 'h2,http/1.1')
    .addOption(new Option('--min-version <version>', 'lowest TLS version accepted').choices(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'))
    .option('--rsa-key-exchange', 'also offer TLS 1.2 RSA key exchange for old clients (no forward secrecy; the key holder decrypts the premaster)')
    .option('--psk-keyd', 'offer TLS 1.2 PSK suites with the PSKs held by the --keyd key server')
    .option('--psk-process', 'offer TLS 1.2 PSK suites with --psk-file read by a forked key process; this process never opens it')
    .option('--psk-file <file>', 'PSK file, "identity:hexkey" per line (read by this process unless --psk-process)')
    .option('--psk-hint <hint>', 'PSK identity hint sent to clients')
    .addOption(new Option('--psk-unknown <mode>', 'answer to an unknown PSK identity (with --psk-file)').choices(['random', 'reject']))
    .addHelpText('after', SERVE_HELP)
    .action(async (o: ServeCliOptions) => {
      const running = await serve({
        listen: o.listen,
        certs: o.cert,
        keys: keySpecs,
        alpn: o.alpn.split(',').filter(Boolean),
        minVersion: o.minVersion,
        rsaKeyExchange: o.rsaKeyExchange === true,
        ...pskOptions(o),
        sources: {
          keyProcess: o.keyProcess === true,
          pskProcess: o.pskProcess === true,
          ...(o.keyUser !== undefined ? { keyUser: o.keyUser } : {}),
          ...(o.keyd.length > 0
            ? { keyd: { addresses: o.keyd, caPath: o.keydCa, certPath: o.keydCert, keyPath: o.keydKey, deadlineMs: o.keydDeadline, bound: o.keydBound === true } }
            : {}),
          pkcs11: { module: o.pkcs11Module, pinFile: o.pkcs11PinFile },
        },
      });
      stopOnSignals(running);
      for (const c of running.certificates) process.stdout.write(`keyward: ${c.certPath}: private key ${c.describe()}\n`);
      if (running.psk) process.stdout.write(`keyward: ${running.psk.describe()}\n`);
      const { address, port } = running.address;
      process.stdout.write(`keyward listening on https://${hostUrl(address)}:${port}/\n`);
    });

  program
    .command('demo')
    .description('first run: create a demo CA and localhost certificate; then serve on https://localhost:8443 with the key in a key process')
    .option('--dir <dir>', 'data folder', join(process.cwd(), '.keyward-demo'))
    .option('--listen <addr>', 'address to listen on (port 0: any free port)', '127.0.0.1:8443')
    .action(async (o: { dir: string; listen: string }) => {
      stopOnSignals(await runDemo(o));
    });

  // Used by `demo` so that the process that serves never reads the demo key file.
  program
    .command('demo-pki', { hidden: true })
    .requiredOption('--dir <dir>', 'data folder')
    .action(async (o: { dir: string }) => {
      const pki = await ensureDemoPki(o.dir);
      process.stdout.write(JSON.stringify({ caPath: pki.caPath, certPath: pki.certPath, keyPath: pki.keyPath, created: pki.created }));
    });

  registerKeydCommands(program);
  return program;
}

async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CliError) {
      process.stderr.write(`keyward: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

await main();
