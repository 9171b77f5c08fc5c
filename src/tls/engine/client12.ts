import { timingSafeEqual, type X509Certificate } from 'node:crypto';
import { UnknownPskIdentityError, type OperationContext } from '../../keys/keyOperations.js';
import { RecordAead } from '../crypto/aead.js';
import { suiteInfo, type CipherSuiteInfo } from '../crypto/cipherSuites.js';
import { groupSpec, isKnownGroup, type KeyExchange, type NamedGroup } from '../crypto/groups.js';
import { tls12ExtendedMasterSecret, tls12KeyBlock, tls12MasterSecret, tls12VerifyData } from '../crypto/prf12.js';
import { isRsaKey, keyKindOf, schemeInfo, schemesForVersion, verifySignature12, type SignatureScheme } from '../crypto/signatureSchemes.js';
import { Transcript } from '../crypto/transcript.js';
import type { ClientSession } from '../resumption/clientSession.js';
import { AlertDescription } from '../wire/alerts.js';
import { encodeCertificateVerify } from '../wire/certificateVerify.js';
import { HandshakeType } from '../wire/constants.js';
import { TlsAlertError, decodeError, illegalParameter, unexpectedMessage } from '../wire/errors.js';
import { sessionTicketExt } from '../wire/extensionCodecs.js';
import { checkSolicited, type Extension } from '../wire/extensions.js';
import { encodeFinished, parseFinished, VERIFY_DATA_LENGTH_12 } from '../wire/finished.js';
import {
  encodeCertificate12,
  encodeClientKeyExchange,
  parseCertificate12,
  parseCertificateRequest12,
  parseNewSessionTicket12,
  parseServerHelloDone,
  parseServerKeyExchange,
  serverKeyExchangeSignedContent,
} from '../wire/messages12.js';
import type { ServerHello } from '../wire/serverHello.js';
import { checkHolderSignature, checkPeerScheme, readCertificate, type CertifiedKey } from './certificates.js';
import type { ClientConfig } from './clientConfig.js';
import type { Handshake, HandshakeHost, HandshakeMessage, Wait } from './handshakeHost.js';

/** What the client sent, which client12 continues from. */
export interface ClientHelloSent {
  readonly raw: Uint8Array;
  readonly random: Uint8Array;
  readonly offeredExtensions: readonly number[];
  /** legacy_session_id as sent. */
  readonly sessionId: Uint8Array;
  /** The TLS 1.2 session offered for resumption ({@link sessionOffer12}), if any. */
  readonly session?: ClientSession;
}

/** What a ClientHello carries to resume a TLS 1.2 session (RFC 5246 7.4.1.2, RFC 5077 3.4). */
export interface SessionOffer12 {
  /** The session offered; none when `config.session` cannot be offered. */
  readonly session?: ClientSession;
  /**
   * legacy_session_id to send: the session's id, or a fresh one beside a ticket-only
   * session, so that the server's echo says it resumed (RFC 5077 3.4); undefined: no id of
   * ours (the caller may send its TLS 1.3 compatibility id).
   */
  readonly sessionId?: Uint8Array;
  /** SessionTicket: the session's ticket, or empty to ask for one (sent whenever TLS 1.2 is offered). */
  readonly ticketExtension: Extension;
}

/**
 * How the ClientHello offers `config.session` when TLS 1.2 is offered: only a TLS 1.2
 * session for the same server name, with a suite still offered, that used the extended
 * master secret (the client always offers it, and RFC 7627 5.3 servers never resume a
 * session without it); its ticket only within its lifetime hint.
 */
export function sessionOffer12(config: ClientConfig, now: number, random: (n: number) => Uint8Array): SessionOffer12 {
  const s = config.session;
  const usable = s !== undefined && s.version === 'TLSv1.2' && s.serverName === config.serverName && s.extendedMasterSecret && config.tls12CipherSuites.includes(s.cipherSuite);
  if (!usable) return { ticketExtension: sessionTicketExt.encode(new Uint8Array(0)) };
  const ticketLive = s.ticket.length > 0 && (s.lifetime === 0 || now - s.receivedAt <= s.lifetime * 1000);
  const ticket = ticketLive ? s.ticket : new Uint8Array(0);
  if (!ticketLive && s.sessionId.length === 0) return { ticketExtension: sessionTicketExt.encode(ticket) };
  const sessionId = s.sessionId.length > 0 ? s.sessionId : random(32);
  return { session: s, sessionId, ticketExtension: sessionTicketExt.encode(ticket) };
}

type Kx = 'ECDHE' | 'PSK' | 'ECDHE_PSK';

/** The server's ephemeral key, once its ServerKeyExchange was read (none for plain PSK). */
interface ServerShare {
  readonly group: NamedGroup;
  readonly publicKey: Uint8Array;
}

/** The client certificate to send, decided when the CertificateRequest arrives; none: an empty Certificate. */
interface ClientAuth {
  readonly cert?: { readonly key: CertifiedKey; readonly scheme: SignatureScheme };
}

interface Keys12 {
  readonly masterSecret: Buffer;
  readonly clientAead: RecordAead;
  readonly serverAead: RecordAead;
}

type State =
  | { readonly name: 'awaitCertificate' }
  | { readonly name: 'verifyingServer'; readonly id: number; readonly leaf: X509Certificate }
  | { readonly name: 'awaitServerKeyExchange'; readonly leaf?: X509Certificate }
  /** Plain PSK: a ServerKeyExchange (with a hint) is optional. */
  | { readonly name: 'awaitServerKeyExchangeOrDone' }
  | { readonly name: 'awaitCertificateRequestOrDone'; readonly share: ServerShare }
  | { readonly name: 'awaitServerHelloDone'; readonly share?: ServerShare; readonly auth?: ClientAuth }
  | { readonly name: 'deriving'; readonly opId: number; readonly otherSecret: Buffer | null }
  | { readonly name: 'signing'; readonly opId: number; readonly keys: Keys12; readonly cert: CertifiedKey; readonly scheme: SignatureScheme; readonly input: Uint8Array }
  /** RFC 5077 3.3: the server said a NewSessionTicket comes before its ChangeCipherSpec. */
  | { readonly name: 'awaitNewSessionTicket'; readonly keys: Keys12 }
  | { readonly name: 'awaitChangeCipherSpec'; readonly keys: Keys12 }
  | { readonly name: 'awaitFinished'; readonly keys: Keys12 }
  | { readonly name: 'done' };

const M = HandshakeType;
const WAITS: { readonly [K in State['name']]?: Wait } = {
  awaitCertificate: { on: 'message', expect: [M.certificate] },
  awaitServerKeyExchange: { on: 'message', expect: [M.server_key_exchange] },
  awaitServerKeyExchangeOrDone: { on: 'message', expect: [M.server_key_exchange, M.server_hello_done] },
  awaitCertificateRequestOrDone: { on: 'message', expect: [M.certificate_request, M.server_hello_done] },
  awaitServerHelloDone: { on: 'message', expect: [M.server_hello_done] },
  awaitNewSessionTicket: { on: 'message', expect: [M.new_session_ticket] },
  awaitChangeCipherSpec: { on: 'changeCipherSpec' },
  awaitFinished: { on: 'message', expect: [M.finished] },
  done: { on: 'message', expect: [] },
};

/**
 * TLS 1.2 client handshake (RFC 5246) with ECDHE (RFC 8422) and PSK (RFC 4279, RFC 5489)
 * key exchanges, AEAD suites only, continuing from client13's ClientHello. In RFC order:
 * ServerHello (7.4.1.3), the server's Certificate (7.4.2, judged by the driver),
 * ServerKeyExchange (7.4.3, its signature checked), CertificateRequest (7.4.4),
 * ServerHelloDone (7.4.5); then the client's Certificate (7.4.6), ClientKeyExchange
 * (7.4.7), CertificateVerify (7.4.8, signed by the key holder), ChangeCipherSpec and
 * Finished (7.4.9); the server's ChangeCipherSpec and Finished. PSK master secrets come
 * from the PSK holder. Extended master secret (RFC 7627) when the server agrees;
 * renegotiation is refused by the connection.
 *
 * Resumption: when the server echoes the session id of the session offered
 * ({@link sessionOffer12}), the abbreviated handshake (7.3): [NewSessionTicket], the
 * server's ChangeCipherSpec and Finished, then ours, under keys from the session's master
 * secret; no certificate, no key-holder call. After a full handshake with the extended
 * master secret that left a session id or a ticket, and after a resumption that brought a
 * new ticket, a `session` event hands the application what to offer next time.
 */
export class Client12Handshake implements Handshake {
  private state: State;
  private readonly suite: CipherSuiteInfo;
  private readonly kx: Kx;
  private readonly transcript: Transcript;
  /** The handshake messages so far, whole: what a TLS 1.2 client CertificateVerify signs. */
  private readonly messages: Uint8Array[] = [];
  private readonly clientRandom: Uint8Array;
  private readonly serverRandom: Uint8Array;
  private readonly extended: boolean;
  /** The session being resumed (the server echoed its id), if any. */
  private readonly resumed: ClientSession | undefined;
  /** The server's session id (full handshake): the key of the session it keeps, empty when none. */
  private sessionId: Uint8Array = new Uint8Array(0);
  /** The ServerHello's SessionTicket: a NewSessionTicket comes before the server's ChangeCipherSpec. */
  private ticketPromised = false;
  /** RFC 5077: the ticket and lifetime hint of the server's NewSessionTicket, once read. */
  private newTicket: { readonly ticket: Uint8Array; readonly lifetime: number } | undefined;
  readonly acceptsCompatCcs = false;

  constructor(
    private readonly host: HandshakeHost,
    private readonly config: ClientConfig,
    hello: ClientHelloSent,
    sh: ServerHello,
    shRaw: Uint8Array,
  ) {
    const suite = config.tls12CipherSuites.find((s) => s === sh.cipherSuite);
    if (suite === undefined) throw illegalParameter('server chose a TLS 1.2 cipher suite that was not offered');
    if (sh.compressionMethod !== 0) throw illegalParameter('ServerHello with a compression method');
    checkSolicited(sh.extensions, hello.offeredExtensions, 'ServerHello');
    // RFC 5746 3.4: on an initial handshake the server's renegotiated_connection is empty.
    if (sh.renegotiationInfo !== undefined && sh.renegotiationInfo.length !== 0) throw new TlsAlertError(AlertDescription.handshake_failure, 'non-empty renegotiation_info on an initial handshake');
    if (sh.alpn !== undefined && !config.alpnProtocols.includes(sh.alpn)) throw illegalParameter(`server chose ALPN protocol "${sh.alpn}", which was not offered`);
    this.suite = suiteInfo(suite)!;
    this.resumed = resumedSession(hello, sh);
    const kx = this.suite.keyExchange;
    this.kx = kx === 'PSK' || kx === 'ECDHE_PSK' ? kx : 'ECDHE';
    this.extended = sh.extendedMasterSecret;
    this.clientRandom = hello.random;
    this.serverRandom = sh.random;
    this.transcript = new Transcript(this.suite.hash);
    this.record(hello.raw);
    this.record(shRaw);
    const info = host.info;
    info.cipherSuite = suite;
    info.cipherName = this.suite.name;
    info.opensslCipherName = this.suite.opensslName;
    info.extendedMasterSecret = this.extended;
    if (sh.alpn !== undefined) info.alpnProtocol = sh.alpn;
    if (this.resumed) {
      this.state = this.resume(this.resumed, sh);
      return;
    }
    this.sessionId = sh.sessionId;
    this.ticketPromised = sh.sessionTicket;
    this.state = this.kx === 'ECDHE' ? { name: 'awaitCertificate' } : this.kx === 'PSK' ? { name: 'awaitServerKeyExchangeOrDone' } : { name: 'awaitServerKeyExchange' };
  }

  /** 7.3: the server resumed; check it resumed what we offered (RFC 7627 5.3 for the extended master secret). */
  private resume(session: ClientSession, sh: ServerHello): State {
    if (sh.cipherSuite !== session.cipherSuite) throw illegalParameter('the server resumed the session with another cipher suite');
    if (!sh.extendedMasterSecret) throw new TlsAlertError(AlertDescription.handshake_failure, 'the server resumed a session that used the extended master secret without it (RFC 7627 5.3)');
    const info = this.host.info;
    info.resumed = true;
    if (session.peerCertificates.length > 0) info.peerCertificates = session.peerCertificates;
    const psk = this.config.psk;
    if (psk && this.kx !== 'ECDHE') info.pskIdentity = typeof psk.identity === 'string' ? psk.identity : Buffer.from(psk.identity).toString('utf8');
    const keys = this.keysFrom(Buffer.from(session.secret));
    return sh.sessionTicket ? { name: 'awaitNewSessionTicket', keys } : { name: 'awaitChangeCipherSpec', keys };
  }

  get wait(): Wait {
    const st = this.state;
    if (st.name === 'verifyingServer') return { on: 'peerVerification', id: st.id };
    if (st.name === 'deriving' || st.name === 'signing') return { on: 'keyOperation', id: st.opId };
    return WAITS[st.name]!;
  }

  /** Adds a message to the transcript (and to the messages a CertificateVerify covers). */
  private record(raw: Uint8Array): void {
    this.transcript.update(raw);
    this.messages.push(raw);
  }

  handleMessage(msg: HandshakeMessage): void {
    const st = this.state;
    switch (st.name) {
      case 'awaitCertificate':
        return this.handleCertificate(msg);
      case 'awaitServerKeyExchange':
        return this.handleServerKeyExchange(msg, st.leaf);
      case 'awaitServerKeyExchangeOrDone':
        if (msg.type === M.server_key_exchange) return this.handleServerKeyExchange(msg, undefined);
        return this.handleServerHelloDone(msg, undefined, undefined);
      case 'awaitCertificateRequestOrDone':
        if (msg.type === M.certificate_request) return this.handleCertificateRequest(msg, st.share);
        return this.handleServerHelloDone(msg, st.share, undefined);
      case 'awaitServerHelloDone':
        return this.handleServerHelloDone(msg, st.share, st.auth);
      case 'awaitNewSessionTicket':
        return this.handleNewSessionTicket(msg, st.keys);
      case 'awaitFinished':
        return this.handleServerFinished(msg, st.keys);
      default:
        throw unexpectedMessage(`handshake message ${msg.type} while ${st.name}`);
    }
  }

  /** 7.4.2: the server's chain, for the driver to judge. */
  private handleCertificate(msg: HandshakeMessage): void {
    const chain = parseCertificate12(msg.body);
    if (chain.length === 0) throw decodeError('server sent no certificate');
    const leaf = readCertificate(chain[0], 'server');
    const kind = keyKindOf(leaf.publicKey);
    const wantRsa = this.suite.keyExchange === 'ECDHE_RSA';
    if (kind === undefined || isRsaKey(leaf.publicKey) !== wantRsa) throw new TlsAlertError(AlertDescription.unsupported_certificate, `a ${kind ?? 'unknown'} certificate does not fit ${this.suite.name}`);
    this.record(msg.raw);
    this.host.info.peerCertificates = chain;
    const id = this.host.requestPeerVerification({ peer: 'server', chain, serverName: this.config.serverName });
    this.state = { name: 'verifyingServer', id, leaf };
  }

  peerVerified(id: number): void {
    const st = this.state;
    if (st.name !== 'verifyingServer' || st.id !== id) throw new TlsAlertError(AlertDescription.internal_error, 'unexpected peer verification');
    this.state = { name: 'awaitServerKeyExchange', leaf: st.leaf };
  }

  /** 7.4.3: the server's ECDHE share, signed (RFC 8422 5.4) or under a PSK hint (RFC 5489 2). */
  private handleServerKeyExchange(msg: HandshakeMessage, leaf: X509Certificate | undefined): void {
    const ske = parseServerKeyExchange(msg.body, this.kx);
    this.record(msg.raw);
    if (ske.kind === 'PSK') {
      this.state = { name: 'awaitServerHelloDone' };
      return;
    }
    if (ske.kind !== 'ECDHE' && ske.kind !== 'ECDHE_PSK') throw new TlsAlertError(AlertDescription.internal_error, 'unexpected key exchange');
    if (!isKnownGroup(ske.group) || !this.config.groups.includes(ske.group) || groupSpec(ske.group).tls12 !== 'ECDHE') {
      throw illegalParameter('server chose a group that was not offered for ECDHE');
    }
    const share: ServerShare = { group: ske.group, publicKey: ske.publicKey };
    this.host.info.group = ske.group;
    if (ske.kind === 'ECDHE_PSK') {
      this.state = { name: 'awaitServerHelloDone', share };
      return;
    }
    const { scheme, signature } = ske.signed;
    if (!this.config.signatureSchemes.includes(scheme) || !schemeInfo(scheme)) throw illegalParameter('server signed with a scheme that was not offered');
    if (leaf) checkPeerScheme(leaf.publicKey, scheme, 'TLSv1.2', 'server');
    const content = serverKeyExchangeSignedContent(this.clientRandom, this.serverRandom, ske.params);
    if (!leaf || !verifySignature12(leaf.publicKey, scheme, content, signature)) {
      throw new TlsAlertError(AlertDescription.decrypt_error, 'ServerKeyExchange signature does not verify against the server certificate');
    }
    this.host.info.signatureScheme = scheme;
    this.state = { name: 'awaitCertificateRequestOrDone', share };
  }

  /** 7.4.4: the server asks for a client certificate. */
  private handleCertificateRequest(msg: HandshakeMessage, share: ServerShare): void {
    const cr = parseCertificateRequest12(msg.body);
    this.record(msg.raw);
    const key = this.config.certificate;
    const scheme = key && schemesForVersion(key.schemes, 'TLSv1.2').find((s) => cr.signatureAlgorithms.includes(s));
    this.state = { name: 'awaitServerHelloDone', share, auth: { cert: key && scheme !== undefined ? { key, scheme } : undefined } };
  }

  /** 7.4.5 - 7.4.8: the client's flight up to the master secret. */
  private handleServerHelloDone(msg: HandshakeMessage, share: ServerShare | undefined, auth: ClientAuth | undefined): void {
    parseServerHelloDone(msg.body);
    this.record(msg.raw);
    const host = this.host;
    if (auth) this.send(encodeCertificate12(auth.cert ? auth.cert.key.chain : []));
    // Our ECDHE share and the shared secret, for the suites with a server share.
    let answer: { publicKey: Uint8Array; shared: Buffer } | null = null;
    if (share) {
      const ecdhe: KeyExchange = host.keyShareFactory(share.group);
      answer = { publicKey: ecdhe.publicKey, shared: ecdhe.computeSharedSecret(share.publicKey) };
    }
    const psk = this.config.psk;
    if (this.kx !== 'PSK' && !answer) throw new TlsAlertError(AlertDescription.internal_error, 'an ECDHE suite without the server\'s share');
    if (this.kx === 'ECDHE' && answer) {
      this.send(encodeClientKeyExchange({ kind: 'ECDHE', publicKey: answer.publicKey }));
      const keys = this.keysFrom(this.masterFromPremaster(answer.shared));
      if (!auth?.cert) return this.sendFinished(keys);
      // 7.4.8: the client signs every handshake message so far; the key holder gets them whole.
      const { key, scheme } = auth.cert;
      const input = Buffer.concat(this.messages);
      const context: OperationContext = { ...host.operationContext(), tlsVersion: 'TLSv1.2', purpose: 'tls12-client-certificate-verify', handshakeMessages: [...this.messages] };
      host.info.clientSignatureScheme = scheme;
      const opId = host.requestKeyOperation({ kind: 'sign', key: key.key, scheme, message: input, context });
      this.state = { name: 'signing', opId, keys, cert: key, scheme, input };
      return;
    }
    if (!psk) throw new TlsAlertError(AlertDescription.internal_error, 'PSK suite without a PSK holder');
    const identity = typeof psk.identity === 'string' ? Buffer.from(psk.identity, 'utf8') : psk.identity;
    this.send(encodeClientKeyExchange(answer ? { kind: 'ECDHE_PSK', identity, publicKey: answer.publicKey } : { kind: 'PSK', identity }));
    host.info.pskIdentity = Buffer.from(identity).toString('utf8');
    const context: OperationContext = { ...host.operationContext(), tlsVersion: 'TLSv1.2' };
    const opId = host.requestKeyOperation({
      kind: 'pskMasterSecret',
      holder: psk.holder,
      request: {
        identity: Uint8Array.from(identity),
        otherSecret: answer?.shared ?? null,
        hash: this.suite.hash,
        extended: this.extended,
        seed: this.extended ? this.transcript.current() : Buffer.concat([this.clientRandom, this.serverRandom]),
      },
      context,
    });
    this.state = { name: 'deriving', opId, otherSecret: answer?.shared ?? null };
  }

  private masterFromPremaster(premaster: Buffer): Buffer {
    const h = this.suite.hash;
    // RFC 7627 4: the session hash runs through the ClientKeyExchange.
    const ms = this.extended ? tls12ExtendedMasterSecret(h, premaster, this.transcript.current()) : tls12MasterSecret(h, premaster, this.clientRandom, this.serverRandom);
    premaster.fill(0);
    return ms;
  }

  /** 6.3: the key block. */
  private keysFrom(masterSecret: Buffer): Keys12 {
    const kb = tls12KeyBlock(this.suite.hash, masterSecret, this.clientRandom, this.serverRandom, this.suite.aead);
    return {
      masterSecret,
      clientAead: new RecordAead(this.suite.aead, kb.clientKey, kb.clientIv, 'tls12'),
      serverAead: new RecordAead(this.suite.aead, kb.serverKey, kb.serverIv, 'tls12'),
    };
  }

  keyOperationResult(opId: number, result: Uint8Array): void {
    const st = this.state;
    if (st.name === 'signing' && st.opId === opId) {
      checkHolderSignature(st.cert, st.scheme, st.input, result, 'TLSv1.2');
      this.send(encodeCertificateVerify(st.scheme, result));
      return this.sendFinished(st.keys);
    }
    if (st.name === 'deriving' && st.opId === opId) {
      st.otherSecret?.fill(0);
      if (result.length !== 48) throw new TlsAlertError(AlertDescription.internal_error, `PSK holder returned a master secret of ${result.length} bytes`);
      return this.sendFinished(this.keysFrom(Buffer.from(result)));
    }
    throw new TlsAlertError(AlertDescription.internal_error, 'unexpected key operation result');
  }

  keyOperationFailed(opId: number, error: Error): void {
    const st = this.state;
    if (st.name === 'deriving' && st.opId === opId) {
      st.otherSecret?.fill(0);
      if (error instanceof UnknownPskIdentityError) throw new TlsAlertError(AlertDescription.internal_error, 'the PSK holder does not know this identity');
    }
    throw new TlsAlertError(AlertDescription.internal_error, `key operation failed: ${error.message}`);
  }

  /** 7.4.9: ChangeCipherSpec and Finished, then wait for the server's. */
  private sendFinished(keys: Keys12): void {
    const host = this.host;
    host.sendChangeCipherSpec();
    host.setWriteKey(keys.clientAead);
    this.send(encodeFinished(tls12VerifyData(this.suite.hash, keys.masterSecret, 'client finished', this.transcript.current())));
    host.flush();
    this.state = this.ticketPromised ? { name: 'awaitNewSessionTicket', keys } : { name: 'awaitChangeCipherSpec', keys };
  }

  /** RFC 5077 3.3: the ticket, part of the transcript; an empty one means none after all. */
  private handleNewSessionTicket(msg: HandshakeMessage, keys: Keys12): void {
    const nst = parseNewSessionTicket12(msg.body);
    this.record(msg.raw);
    if (nst.ticket.length > 0) this.newTicket = { ticket: Uint8Array.from(nst.ticket), lifetime: nst.lifetimeHint };
    this.state = { name: 'awaitChangeCipherSpec', keys };
  }

  handleChangeCipherSpec(): void {
    const st = this.state;
    if (st.name !== 'awaitChangeCipherSpec') throw unexpectedMessage(`ChangeCipherSpec while ${st.name}`);
    this.host.setReadKey(st.keys.serverAead);
    this.state = { name: 'awaitFinished', keys: st.keys };
  }

  /** 7.4.9: the server's Finished; a resumed handshake answers with our ChangeCipherSpec and Finished. */
  private handleServerFinished(msg: HandshakeMessage, keys: Keys12): void {
    const expected = tls12VerifyData(this.suite.hash, keys.masterSecret, 'server finished', this.transcript.current());
    const got = parseFinished(msg.body, VERIFY_DATA_LENGTH_12);
    if (!timingSafeEqual(got, expected)) throw new TlsAlertError(AlertDescription.decrypt_error, 'server Finished does not verify');
    if (this.host.handshakeFragmentPending()) throw unexpectedMessage('handshake data after Finished');
    if (this.resumed) {
      this.record(msg.raw);
      this.sendFinished(keys);
    }
    this.messages.length = 0;
    this.state = { name: 'done' };
    this.host.handshakeComplete({ version: 'TLSv1.2', hash: this.suite.hash, masterSecret: keys.masterSecret, clientRandom: this.clientRandom, serverRandom: this.serverRandom });
    const session = this.sessionToKeep(keys.masterSecret);
    if (session) this.host.emitSession(session);
  }

  /**
   * The session to hand to the application: after a full handshake with the extended master
   * secret that left a session id or a ticket; after a resumption, only with a new ticket.
   */
  private sessionToKeep(masterSecret: Buffer): ClientSession | undefined {
    const t = this.newTicket;
    const receivedAt = this.host.now();
    if (this.resumed) return t && { ...this.resumed, ticket: t.ticket, lifetime: t.lifetime, receivedAt };
    if (!this.extended || (this.sessionId.length === 0 && !t)) return undefined;
    const info = this.host.info;
    return {
      version: 'TLSv1.2',
      cipherSuite: this.suite.suite,
      secret: Buffer.from(masterSecret),
      ticket: t?.ticket ?? new Uint8Array(0),
      sessionId: Uint8Array.from(this.sessionId),
      receivedAt,
      lifetime: t?.lifetime ?? 0,
      ageAdd: 0,
      maxEarlyData: 0,
      serverName: this.config.serverName,
      alpnProtocol: info.alpnProtocol,
      extendedMasterSecret: true,
      peerCertificates: info.peerCertificates ?? [],
    };
  }

  private send(raw: Uint8Array): void {
    this.record(raw);
    this.host.sendHandshake(raw);
  }
}

/**
 * The session the server resumed: the one offered, when the ServerHello echoes the
 * non-empty session id sent with it (RFC 5246 7.4.1.3, RFC 5077 3.4). An echo of an id
 * that offered no session is a server resuming what it was never offered.
 */
function resumedSession(hello: ClientHelloSent, sh: ServerHello): ClientSession | undefined {
  if (hello.sessionId.length === 0 || Buffer.compare(sh.sessionId, hello.sessionId) !== 0) return undefined;
  if (!hello.session) throw illegalParameter('the server resumed a session that was not offered');
  return hello.session;
}
