import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { KeyOperations } from '../keys/keyOperations.js';
import { LocalKey } from '../keys/localKey.js';
import { createHttp2SecureServer, createHttpsServer } from '../node/http.js';
import type { CertificateWithKey } from '../node/server.js';
import { certifiedKey } from '../tls/engine/certificates.js';
import { demoPage } from './page.js';

/** A clear, user-facing error: printed without a stack trace. */
export class CliError extends Error {}

export interface ServeOptions {
  listen: string;
  certs: string[];
  keys: string[];
  alpn?: string[];
  /** Describes where keys live, for the page and the log. */
  keyDescription?: string;
  /** Builds the key operations for the i-th certificate when keys are not local files. */
  keyFor?: (index: number, certPem: string) => Promise<KeyOperations>;
}

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(listen) ?? /^(\d+)$/.exec(listen);
  if (!m) throw new CliError(`--listen must be HOST:PORT or PORT, got "${listen}"`);
  const port = Number(m[3] ?? m[1]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new CliError(`invalid port in --listen ${listen}`);
  return { host: m[3] ? (m[1] ?? m[2]) : '127.0.0.1', port };
}

function readFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Loads each --cert with its key and checks that they belong together. */
export async function loadCertificates(opts: ServeOptions): Promise<CertificateWithKey[]> {
  if (opts.certs.length === 0) throw new CliError('at least one --cert is required');
  if (!opts.keyFor && opts.keys.length !== opts.certs.length) {
    throw new CliError(`each --cert needs its --key: got ${opts.certs.length} certificate(s) and ${opts.keys.length} key(s)`);
  }
  const out: CertificateWithKey[] = [];
  for (let i = 0; i < opts.certs.length; i++) {
    const certPem = readFile(opts.certs[i], 'certificate file');
    if (!certPem.includes('-----BEGIN CERTIFICATE-----')) throw new CliError(`${opts.certs[i]} holds no PEM certificate`);
    let key: KeyOperations;
    if (opts.keyFor) {
      key = await opts.keyFor(i, certPem);
    } else {
      const keyPem = readFile(opts.keys[i], 'key file');
      try {
        key = new LocalKey(keyPem);
      } catch {
        throw new CliError(`${opts.keys[i]} is not a usable private key (PEM PKCS#8, PKCS#1 or SEC1)`);
      }
    }
    try {
      certifiedKey(certPem, key);
    } catch (err) {
      throw new CliError(`${opts.certs[i]}: ${(err as Error).message}${opts.keys[i] ? ` (key ${opts.keys[i]})` : ''}`);
    }
    out.push({ cert: certPem, key });
  }
  return out;
}

/** Runs the HTTPS (and h2) demo server; resolves with the server once listening. */
export async function serve(opts: ServeOptions) {
  const { host, port } = parseListen(opts.listen);
  const certificates = await loadCertificates(opts);
  const alpn = opts.alpn ?? ['h2', 'http/1.1'];
  const page = demoPage(opts.keyDescription ?? 'in this process (--key)');
  const server = alpn.includes('h2')
    ? createHttp2SecureServer({ certificates, ALPNProtocols: alpn }, page)
    : createHttpsServer({ certificates, ALPNProtocols: alpn }, page);
  server.on('tlsClientError', (err: Error) => {
    process.stderr.write(`tls: ${err.message}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new CliError(`cannot listen on ${host}:${port}: ${err.code ?? err.message}`)));
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return { server, address: addr };
}
