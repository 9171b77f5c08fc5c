/**
 * Helpers for the proxy tests: a small PKI, upstream servers that echo, answer or record
 * what reached them (the PROXY v2 header included), an in-process KeywardProxy with log
 * capture, and node:tls clients.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { pino } from 'pino';
import { createCa, issueCertificate, type Issuer } from '../../src/cli/pki.js';
import { localKey } from '../../src/keys/localKey.js';
import type { Endpoint } from '../../src/proxy/endpoint.js';
import { decodeProxyV2, type DecodedProxyV2 } from '../../src/proxy/proxyProtocol.js';
import { KeywardProxy, type ProxyGeneration } from '../../src/proxy/proxyServer.js';
import type { KeywardChild } from '../support/keywardCli.js';

/** A CA and two server certificates: `localhost` and `example.test` (+ `*.wild.test`). */
export interface ProxyPki {
  dir: string;
  ca: Issuer;
  caPath: string;
  localhost: { chainPem: string; keyPem: string; chainPath: string; keyPath: string };
  example: { chainPem: string; keyPem: string; chainPath: string; keyPath: string };
  /** A client certificate (CN app-client) for mutual TLS. */
  client: { chainPem: string; keyPem: string; chainPath: string; keyPath: string };
  cleanup(): Promise<void>;
}

export async function makeProxyPki(): Promise<ProxyPki> {
  const dir = await mkdtemp(join(tmpdir(), 'keyward-proxy-'));
  const ca = await createCa({ commonName: 'proxy test CA' });
  const caPath = join(dir, 'ca.pem');
  await writeFile(caPath, ca.certPem);
  const save = async (name: string, c: { chainPem: string; keyPem: string }) => {
    const chainPath = join(dir, `${name}-chain.pem`);
    const keyPath = join(dir, `${name}-key.pem`);
    await writeFile(chainPath, c.chainPem);
    await writeFile(keyPath, c.keyPem, { mode: 0o600 });
    return { chainPem: c.chainPem, keyPem: c.keyPem, chainPath, keyPath };
  };
  const localhost = await save('localhost', await issueCertificate(ca, { keyType: 'ecdsa-p256', commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usage: 'server' }));
  const example = await save('example', await issueCertificate(ca, { keyType: 'ecdsa-p256', commonName: 'example.test', dnsNames: ['example.test', '*.wild.test'], usage: 'server' }));
  const client = await save('client', await issueCertificate(ca, { keyType: 'ecdsa-p256', commonName: 'app-client', usage: 'client' }));
  return { dir, ca, caPath, localhost, example, client, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** An upstream test server: what it saw, and how to stop it. */
export interface TestUpstream {
  server: Server;
  endpoint: Endpoint;
  port: number;
  /** PROXY v2 headers read (when `expectProxyHeader`). */
  headers: DecodedProxyV2[];
  connections: number;
  close(): Promise<void>;
}

/**
 * Starts an upstream on 127.0.0.1:0 (or a Unix socket at `unixPath`). `handler` gets each
 * connection after the PROXY v2 header (when `expectProxyHeader`) was read off it.
 */
export async function startUpstream(handler: (socket: Socket, header?: DecodedProxyV2) => void, opts: { expectProxyHeader?: boolean; unixPath?: string } = {}): Promise<TestUpstream> {
  const up: TestUpstream = { server: undefined as unknown as Server, endpoint: { kind: 'tcp', host: '127.0.0.1', port: 0 }, port: 0, headers: [], connections: 0, close: async () => undefined };
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    up.connections++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    if (!opts.expectProxyHeader) return handler(socket);
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      let h;
      try {
        h = decodeProxyV2(buf);
      } catch (err) {
        socket.destroy(err as Error);
        return;
      }
      if (!h) return;
      socket.off('data', onData);
      socket.pause();
      up.headers.push(h);
      const rest = buf.subarray(h.length);
      if (rest.length > 0) socket.unshift(rest);
      handler(socket, h);
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => (opts.unixPath ? server.listen(opts.unixPath, resolve) : server.listen(0, '127.0.0.1', resolve)));
  up.server = server;
  if (opts.unixPath) up.endpoint = { kind: 'unix', path: opts.unixPath };
  else {
    up.port = (server.address() as AddressInfo).port;
    up.endpoint = { kind: 'tcp', host: '127.0.0.1', port: up.port };
  }
  up.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return up;
}

/** An echo upstream (half-close respected: it ends after the client's end). */
export function echoHandler(socket: Socket): void {
  socket.pipe(socket);
}

/** Captured pino lines. */
export class Lines {
  readonly all: Array<Record<string, unknown>> = [];
  write(s: string): void {
    for (const l of s.split('\n')) if (l.trim()) this.all.push(JSON.parse(l) as Record<string, unknown>);
  }
  /** Access-log lines. */
  get connections(): Array<Record<string, unknown>> {
    return this.all.filter((l) => l.msg === 'connection');
  }
}

/** An in-process proxy on 127.0.0.1:0 with the PKI's certificates (keys in this process: a test baseline). */
export async function startTestProxy(pki: ProxyPki, generation: Partial<ProxyGeneration> & Pick<ProxyGeneration, 'upstream'>, opts: { metrics?: boolean } = {}) {
  const lines = new Lines();
  const logger = pino({ level: 'info' }, { write: (s: string) => lines.write(s) });
  const proxy = new KeywardProxy(
    { listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, logger, ...(opts.metrics ? { metricsListen: { host: '127.0.0.1', port: 0 } } : {}) },
    {
      certificates: [
        { cert: pki.localhost.chainPem, key: localKey(pki.localhost.keyPem), holder: 'local' },
        { cert: pki.example.chainPem, key: localKey(pki.example.keyPem), holder: 'local' },
      ],
      ...generation,
    },
  );
  const { address } = await proxy.listen();
  return { proxy, lines, port: (address as AddressInfo).port };
}

/** A node:tls connection through the proxy, resolved once secure. */
export function connectTls(port: number, pki: ProxyPki, servername = 'localhost', extra: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, ca: pki.ca.certPem, ...extra });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('TLS connection through the proxy timed out'));
    }, 10_000);
    s.once('secureConnect', () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** Everything a stream sends until it ends (or `timeoutMs`). */
export function readAll(s: NodeJS.ReadableStream & { destroy(): void }, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('stream did not end in time'));
    }, timeoutMs);
    s.on('data', (d: Buffer) => chunks.push(d));
    s.once('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    s.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** A loopback port where nothing listens (free a moment ago). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Waits until `cond` holds (polling), or fails with `what`. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The JSON log lines a keyward child printed on stdout so far. */
export function logLines(child: KeywardChild): Array<Record<string, unknown>> {
  return child
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
