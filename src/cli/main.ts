import { Command, Option } from 'commander';
import { join } from 'node:path';
import { CliError, serve } from './serve.js';
import { ensureDemoPki } from './pki.js';
import { registerKeydCommands } from './keydCommands.js';

const collect = (value: string, previous: string[]) => [...previous, value];

export function buildProgram(): Command {
  const program = new Command('keyward');
  program
    .description('TLS termination whose private key stays in a key holder (key process, keyd, PKCS#11)')
    .showHelpAfterError();

  program
    .command('serve')
    .description('serve a small HTTPS page (HTTP/2 when h2 is negotiated) over the keyward TLS engine')
    .requiredOption('--listen <addr>', 'address to listen on, HOST:PORT', '127.0.0.1:8443')
    .addOption(new Option('--cert <chain.pem>', 'certificate chain, leaf first (repeat for several)').argParser(collect).default([]))
    .addOption(new Option('--key <key.pem>', 'private key of the preceding --cert, loaded in this process (repeat)').argParser(collect).default([]))
    .option('--alpn <list>', 'ALPN protocols in preference order', 'h2,http/1.1')
    .action(async (o: { listen: string; cert: string[]; key: string[]; alpn: string }) => {
      const { address } = await serve({ listen: o.listen, certs: o.cert, keys: o.key, alpn: o.alpn.split(',').filter(Boolean) });
      process.stdout.write(`keyward listening on https://${address.address}:${address.port}/\n`);
    });

  program
    .command('demo')
    .description('first run: create a demo CA and localhost certificate, then serve on https://localhost:8443')
    .option('--dir <dir>', 'data folder', join(process.cwd(), '.keyward-demo'))
    .option('--listen <addr>', 'address to listen on', '127.0.0.1:8443')
    .action(async (o: { dir: string; listen: string }) => {
      const pki = await ensureDemoPki(o.dir);
      if (pki.created) process.stdout.write(`created a demo CA and a localhost certificate in ${o.dir}\n`);
      const { address } = await serve({ listen: o.listen, certs: [pki.certPath], keys: [pki.keyPath], keyDescription: 'in this process (demo)' });
      const port = address.port;
      process.stdout.write(
        [
          `keyward demo listening on https://localhost:${port}/`,
          `try:  curl --cacert ${pki.caPath} https://localhost:${port}/`,
          `      curl --http2 --cacert ${pki.caPath} https://localhost:${port}/`,
          `      openssl s_client -connect localhost:${port} -CAfile ${pki.caPath}`,
          `browsers: import ${pki.caPath} as a trusted CA, or accept the warning`,
          'stop with Ctrl-C',
          '',
        ].join('\n'),
      );
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
