import { Command, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runDemo } from './demo.js';
import { registerKeydCommands } from './keydCommands.js';
import { registerCertsCommands } from './certsCommand.js';
import { registerConnectCommand } from './connect.js';
import {
  addFrontOptions,
  addTls13PskServerOptions,
  certificateSpecs,
  definedFields,
  delegationSettings,
  frontSettingsFromFlags,
  keySourceOptions,
  positiveInt,
  pskSettings,
  resolveSettings,
  ticketKeysFromKeyd,
  type FrontFlagValues,
  type KeySpecList,
} from './frontOptions.js';
import type { FrontSettings } from './roleConfig.js';
import { dropFrontPrivileges } from './frontUser.js';
import { registerProxyCommand } from './proxyCommand.js';
import { CliError, serve } from './serve.js';
import { stopOnSignals } from './signals.js';

/** The package's version, from package.json beside dist/. */
function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

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

Session tickets: by default this front makes its own ticket keys (in memory,
rotated hourly). --ticket-keys-keyd takes them from keyd instead, so that every
front of a fleet resumes the sessions of the others (keyd rotates them; the
front's rule in keyd.json needs "ticketKeys": true; tls:// keyd addresses only).

Delegated credentials (RFC 9345): --delegated-credentials [--dc-validity 1h]. The
key holder (keyd, whose rule for this front needs "delegatedCredentials": true; a
key process; or --key in this process) signs a short-lived credential for a key
this process makes in memory, renewed before expiry. TLS 1.3 clients that offer
them (Firefox, NSS tstclnt -B) get it and a handshake signed with its key, no
key-holder call; every other client gets the key holder's signature. The
certificate needs DelegationUsage (keyward certs issue --delegation) and
digitalSignature; the start lines say per certificate whether they are on.

TLS 1.2 PSK suites (PSK-AES128-GCM-SHA256, ECDHE-PSK-AES128-GCM-SHA256,
ECDHE-PSK-CHACHA20-POLY1305; --cert is optional then):
  keyd          --psk-keyd --keyd ADDR ...   PSKs put with "keyward keys put-psk"
  key process   --psk-process --psk-file psks.txt
                psks.txt holds "identity:hexkey" lines; only a forked child reads it.
  in-process    --psk-file psks.txt          (a baseline, not isolation)
  An unknown identity gets a random master secret (the handshake fails at Finished);
  --psk-unknown reject sends unknown_psk_identity instead. --psk-hint sets the hint.
  psks.txt lines may end in the PSK's TLS 1.3 hash: "identity:hexkey sha384".

TLS 1.3 external PSKs (--tls13-psk, the PSK from the same source; its holder runs
the key schedule, so the PSK, the Early Secret and the binder key never enter this
process; no Certificate, no 0-RTT):
  --tls13-psk [--psk-hash sha384] [--tls13-psk-ke]
  With --cert also --tls13-psk-identity ID (repeat): an identity not listed gets the
  certificate handshake; a listed one with a wrong binder gets decrypt_error. Without
  --cert every identity goes to the holder, and an unknown one ends in decrypt_error
  like a wrong binder. --tls13-psk-ke accepts psk_ke (no (EC)DHE, no forward secrecy)
  from clients that offer no (EC)DHE this server shares.

Versions, groups and suites: --min-version, --max-version, --groups, --cipher
(tls.minVersion, tls.maxVersion, tls.groups, tls.ciphers with --config). The
ffdhe groups are for TLS 1.3 only (keyward has no DHE suite); suites of one
version only limit the server to that version; an unknown name exits 2 naming
the flag.
  keyward serve --cert site.pem --key-process --key site-key.pem \\
                --groups ffdhe2048,X25519 --cipher TLS_AES_256_GCM_SHA384

Examples:
  keyward serve --listen 0.0.0.0:443 --cert site.pem --key-process --key site-key.pem --key-user keyward
  keyward serve --listen 127.0.0.1:0 --cert a.pem --cert b.pem --keyd unix:/run/keyward/keyd.sock
  keyward serve --cert ec.pem --pkcs11 'pkcs11:token=web;object=ec' --cert rsa.pem --key-process --key rsa-key.pem \\
                --pkcs11-module /usr/lib/softhsm/libsofthsm2.so --pkcs11-pin-file pin.txt

Once listening it prints "keyward listening on https://HOST:PORT/" (the real port
when --listen asks for port 0). SIGTERM or SIGINT stop it gracefully.`;

function hostUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

export function buildProgram(): Command {
  const program = new Command('keyward');
  program
    .description('TLS termination whose private key stays in a key holder (key process, keyd, PKCS#11)')
    .version(packageVersion(), '-V, --version', 'print the version')
    .showHelpAfterError();

  // The key options of every --cert, in the order given (commander calls the parsers in argv order).
  const keySpecs: KeySpecList = [];
  const serveCmd = program
    .command('serve')
    .description('serve a small HTTPS page (HTTP/2 when h2 is negotiated) over the keyward TLS engine, the key in a key process, keyd or a PKCS#11 token')
    .option('--listen <addr>', 'address to listen on, HOST:PORT (port 0: any free port; default 127.0.0.1:8443)')
    .option('--client-ca <ca.pem>', 'mutual TLS: ask clients for a certificate from this CA (the page names the client)')
    .option('--require-client-cert', 'with --client-ca: refuse clients without a valid certificate')
    .addOption(new Option('--handshake-timeout <ms>', 'close a connection that has not finished its TLS handshake after this long (default 10000)').argParser(positiveInt))
    .addOption(new Option('--max-connections <n>', 'connections open at once; more are closed at accept (default 10000)').argParser(positiveInt))
    .addOption(new Option('--max-connections-per-source <n>', 'connections open at once from one IP address (default: no such limit)').argParser(positiveInt));
  addTls13PskServerOptions(addFrontOptions(serveCmd, keySpecs, { alpn: 'h2,http/1.1' }))
    .addHelpText('after', SERVE_HELP)
    .action(async (o: FrontFlagValues & { clientCa?: string; requireClientCert?: boolean; handshakeTimeout?: number; maxConnections?: number; maxConnectionsPerSource?: number }) => {
      const flags: FrontSettings = {
        ...frontSettingsFromFlags(o, keySpecs),
        clientAuth: definedFields({ ca: o.clientCa, required: o.requireClientCert ? true : undefined }),
        limits: definedFields({ handshakeTimeoutMs: o.handshakeTimeout, maxConnections: o.maxConnections, maxConnectionsPerSource: o.maxConnectionsPerSource }),
      };
      const s = resolveSettings('serve', o.config, flags);
      if (s.clientAuth?.required && s.clientAuth.ca === undefined) throw new CliError('--require-client-cert needs --client-ca');
      const { certs, keys } = certificateSpecs(s);
      const psk = pskSettings(s);
      ticketKeysFromKeyd(s);
      const dc = delegationSettings(s);
      const running = await serve({
        listen: s.listen ?? '127.0.0.1:8443',
        certs,
        keys,
        alpn: s.tls?.alpn ?? ['h2', 'http/1.1'],
        minVersion: s.tls?.minVersion ?? 'TLSv1.2',
        ...(s.tls?.maxVersion ? { maxVersion: s.tls.maxVersion } : {}),
        ...(s.tls?.groups ? { groups: s.tls.groups } : {}),
        ...(s.tls?.ciphers ? { ciphers: s.tls.ciphers } : {}),
        rsaKeyExchange: s.tls?.rsaKeyExchange === true,
        // serve lets clients without a certificate see the page unless told to require one.
        ...(s.clientAuth?.ca !== undefined ? { clientCa: s.clientAuth.ca, requireClientCert: s.clientAuth.required === true } : {}),
        ...(psk ? { psk } : {}),
        sources: keySourceOptions(s),
        ...(dc ? { delegatedCredentials: dc } : {}),
        ...s.limits,
      });
      stopOnSignals(() => running.close());
      let runsAs;
      try {
        runsAs = dropFrontPrivileges(s.user);
      } catch (err) {
        await running.close(0);
        throw err;
      }
      process.stdout.write(`keyward: this front runs as uid ${runsAs.uid}, gid ${runsAs.gid}${runsAs.user !== undefined ? ` (--user ${runsAs.user}: root dropped for good)` : ''}\n`);
      for (const c of running.certificates) {
        process.stdout.write(`keyward: ${c.certPath}: private key ${c.describe()}\n`);
        if (c.delegation) process.stdout.write(`keyward: ${c.certPath}: ${c.delegation}\n`);
      }
      if (running.psk) process.stdout.write(`keyward: ${running.psk.describe()}\n`);
      if (running.ticketKeys) process.stdout.write(`keyward: session ticket keys from keyd (${running.ticketKeys.stats.keyNames.length} key(s)); this front keeps them in memory only\n`);
      const { address, port } = running.address;
      process.stdout.write(`keyward listening on https://${hostUrl(address)}:${port}/\n`);
    });

  registerProxyCommand(program);
  registerConnectCommand(program);
  registerCertsCommands(program);

  program
    .command('demo')
    .description('keyd with a sealed store, a site key made inside it, and keyward proxy on https://localhost:8443 in front of a small web app (first run creates it all in --dir)')
    .option('--dir <dir>', 'data folder', join(process.cwd(), '.keyward-demo'))
    .option('--listen <addr>', 'address to listen on (port 0: any free port)', '127.0.0.1:8443')
    .action(async (o: { dir: string; listen: string }) => {
      const demo = await runDemo(o);
      stopOnSignals(() => demo.stop());
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
