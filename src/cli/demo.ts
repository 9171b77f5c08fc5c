/**
 * `keyward demo` (what `npm start` runs): on first use a demo CA and a localhost
 * certificate are made, then the page is served with the private key in a key process.
 *
 * The demo PKI is created and checked in a short-lived child process, because checking
 * it reads the key file: the serving process itself never reads the key.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CliError } from './keySources.js';
import { serve, type RunningServer } from './serve.js';

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

/** Paths of the demo PKI, as the `demo-pki` helper command prints them. */
export interface DemoPkiPaths {
  caPath: string;
  certPath: string;
  keyPath: string;
  created: boolean;
}

/** Runs `keyward demo-pki --dir DIR` in a child process and returns what it made or reused. */
export function demoPkiInChild(dir: string, timeoutMs = 60_000): Promise<DemoPkiPaths> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, 'demo-pki', '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new CliError(`cannot prepare the demo certificates: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) {
        reject(new CliError(`cannot prepare the demo certificates in ${dir} (${signal ?? `exit ${code}`}): ${err.trim() || 'no message'}`));
        return;
      }
      try {
        resolve(JSON.parse(out) as DemoPkiPaths);
      } catch {
        reject(new CliError(`cannot prepare the demo certificates in ${dir}: unexpected helper output`));
      }
    });
  });
}

/** Serves the demo page with the key in a key process; prints how to try it. */
export async function runDemo(o: { dir: string; listen: string }): Promise<RunningServer> {
  const pki = await demoPkiInChild(o.dir);
  if (pki.created) process.stdout.write(`created a demo CA and a localhost certificate in ${o.dir}\n`);
  const running = await serve({
    listen: o.listen,
    certs: [pki.certPath],
    keys: [{ kind: 'file', path: pki.keyPath }],
    sources: { keyProcess: true },
  });
  const port = running.address.port;
  process.stdout.write(
    [
      `keyward demo listening on https://localhost:${port}/`,
      `private key: ${running.certificates[0].describe()}`,
      `try:  curl --cacert ${pki.caPath} https://localhost:${port}/`,
      `      curl --http2 --cacert ${pki.caPath} https://localhost:${port}/`,
      `      openssl s_client -connect localhost:${port} -CAfile ${pki.caPath}`,
      `browsers: import ${pki.caPath} as a trusted CA, or accept the warning`,
      'stop with Ctrl-C',
      '',
    ].join('\n'),
  );
  return running;
}
