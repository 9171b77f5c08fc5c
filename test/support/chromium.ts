/**
 * Headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core) for the browser
 * tests: the flags every test launches it with, trust in the test CA without ignoring
 * certificate errors, and its net log, which records every TLS handshake message it sent
 * and received (type and bytes) and what each connection negotiated.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { chromium, type BrowserContext } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';

/** Headless, no sandbox (tests run as root), no QUIC, nothing in the background. */
export const CHROMIUM_FLAGS: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** base64(SHA-256(SubjectPublicKeyInfo)) of a certificate, as --ignore-certificate-errors-spki-list takes it. */
export function spkiSha256(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

/** Options for {@link launchChromium}. */
export interface ChromiumOptions {
  /** An empty directory for the profile (the caller removes it). */
  profileDir: string;
  /**
   * CA certificates (PEM) to accept: chains that do not verify are accepted only when one of
   * their keys is one of these (Chromium's --ignore-certificate-errors-spki-list), so the
   * test CA is trusted and nothing else is.
   */
  trust?: readonly string[];
  /** Write the net log here, with every byte (--net-log-capture-mode=Everything); complete once the browser is closed. */
  netLogPath?: string;
  /** Start-up limit, default 20 s. */
  timeoutMs?: number;
}

/** Starts headless Chromium; close the returned context to stop it. */
export function launchChromium(opts: ChromiumOptions): Promise<BrowserContext> {
  const args = [...CHROMIUM_FLAGS];
  if (opts.trust?.length) args.push(`--ignore-certificate-errors-spki-list=${opts.trust.map(spkiSha256).join(',')}`);
  if (opts.netLogPath) args.push(`--log-net-log=${opts.netLogPath}`, '--net-log-capture-mode=Everything');
  return chromium.launchPersistentContext(opts.profileDir, { executablePath: CHROMIUM_PATH, headless: true, args, timeout: opts.timeoutMs ?? 20_000 });
}

/** One handshake message as the net log shows it. */
export interface NetLogHandshakeMessage {
  type: number;
  /** The whole message, header included. */
  bytes: Buffer;
}

/** One TLS connection Chromium made, from its net log. */
export interface ChromiumTlsConnection {
  /** "127.0.0.1:PORT". */
  remoteAddress: string;
  /** Handshake messages Chromium sent (its ClientHello, Finished, ...), in order. */
  sent: NetLogHandshakeMessage[];
  /** Handshake messages it received, in order (after decryption). */
  received: NetLogHandshakeMessage[];
  /** What SSL_CONNECT reported at its end; absent if the handshake did not finish. */
  result?: {
    version: string;
    cipherSuite: number;
    keyExchangeGroup: number;
    peerSignatureAlgorithm: number;
    isResumed: boolean;
    nextProto?: string;
  };
  /** Chromium's net error code when the handshake failed (e.g. -202 for an untrusted CA). */
  netError?: number;
}

interface NetLogEvent {
  type: number;
  phase: number;
  source: { id: number };
  params?: Record<string, unknown>;
}

interface NetLog {
  constants: { logEventTypes: Record<string, number>; logEventPhase: Record<string, number> };
  events: NetLogEvent[];
}

/**
 * Reads a net log file. One cut short (the browser killed) lacks its closing brackets: they
 * are put back so the events written so far can be read.
 */
export async function readNetLog(path: string): Promise<NetLog> {
  const text = await readFile(path, 'utf8');
  try {
    return JSON.parse(text) as NetLog;
  } catch {
    return JSON.parse(`${text.replace(/[,\s]*$/, '')}]}`) as NetLog;
  }
}

/** The TLS connections in a net log, per socket, in the order they started. */
export function tlsConnections(log: NetLog): ChromiumTlsConnection[] {
  const type = log.constants.logEventTypes;
  const END = log.constants.logEventPhase.PHASE_END;
  const bySocket = new Map<number, ChromiumTlsConnection & { tls: boolean }>();
  const of = (e: NetLogEvent) => {
    let c = bySocket.get(e.source.id);
    if (!c) {
      c = { remoteAddress: '', sent: [], received: [], tls: false };
      bySocket.set(e.source.id, c);
    }
    return c;
  };
  const message = (p: Record<string, unknown> | undefined): NetLogHandshakeMessage => {
    const bytes = Buffer.from(String(p?.bytes ?? ''), 'base64');
    return { type: typeof p?.type === 'number' ? p.type : bytes[0], bytes };
  };
  for (const e of log.events) {
    const p = e.params;
    if (e.type === type.TCP_CONNECT && e.phase === END && typeof p?.remote_address === 'string') of(e).remoteAddress = p.remote_address;
    else if (e.type === type.SSL_HANDSHAKE_MESSAGE_SENT) of(e).sent.push(message(p));
    else if (e.type === type.SSL_HANDSHAKE_MESSAGE_RECEIVED) of(e).received.push(message(p));
    else if (e.type === type.SSL_CONNECT) {
      const c = of(e);
      c.tls = true;
      if (e.phase !== END) continue;
      if (typeof p?.net_error === 'number') c.netError = p.net_error;
      else if (p) {
        c.result = {
          version: String(p.version),
          cipherSuite: Number(p.cipher_suite),
          keyExchangeGroup: Number(p.key_exchange_group),
          peerSignatureAlgorithm: Number(p.peer_signature_algorithm),
          isResumed: p.is_resumed === true,
          nextProto: typeof p.next_proto === 'string' ? p.next_proto : undefined,
        };
      }
    }
  }
  return [...bySocket.values()].filter((c) => c.tls).map(({ tls: _tls, ...c }) => c);
}
