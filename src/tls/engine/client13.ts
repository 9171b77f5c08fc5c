import { timingSafeEqual, type X509Certificate } from 'node:crypto';
import type { OperationContext } from '../../keys/keyOperations.js';
import type { RecordAead } from '../crypto/aead.js';
import { suiteInfo, type CipherSuiteInfo } from '../crypto/cipherSuites.js';
import type { KeyExchange, NamedGroup } from '../crypto/groups.js';
import { digest, hashLength } from '../crypto/hash.js';
import { tls13FinishedVerifyData, tls13RecordAead } from '../crypto/keySchedule13.js';
import { schemeInfo, verifySignature, type SignatureScheme } from '../crypto/signatureSchemes.js';
import { Transcript } from '../crypto/transcript.js';
import type { ClientSession } from '../resumption/clientSession.js';
import { AlertDescription } from '../wire/alerts.js';
import { encodeCertificate13, parseCertificate13, parseCertificateRequest13, parseCompressedCertificate, type CertificateRequest13 } from '../wire/certificate13.js';
import { certificateVerifyContent, encodeCertificateVerify, parseCertificateVerify } from '../wire/certificateVerify.js';
import { encodeClientHello } from '../wire/clientHello.js';
import { DOWNGRADE_TLS12, ExtensionType, HandshakeType, TLS12, TLS13 } from '../wire/constants.js';
import { TlsAlertError, decodeError, illegalParameter, unexpectedMessage } from '../wire/errors.js';
import {
  alpnExt,
  compressCertificateExt,
  cookieExt,
  delegatedCredentialSchemesExt,
  ecPointFormatsExt,
  extendedMasterSecretExt,
  keyShareClientExt,
  pskKeyExchangeModesExt,
  recordSizeLimitExt,
  renegotiationInfoExt,
  serverNameExt,
  signatureAlgorithmsExt,
  supportedGroupsExt,
  supportedVersionsClientExt,
} from '../wire/extensionCodecs.js';
import { checkSolicited, type Extension } from '../wire/extensions.js';
import { encodeFinished, parseFinished } from '../wire/finished.js';
import { parseEncryptedExtensions } from '../wire/messages13.js';
import { PskKeyExchangeMode, preSharedKeyOfferExt, pskBindersOffset, writePskBinders } from '../wire/preSharedKey.js';
import { parseServerHello, type ServerHello } from '../wire/serverHello.js';
import { receivedCertificateBody } from './certificateCompression.js';
import { checkHolderSignature, checkPeerScheme, readCertificate, type CertifiedKey } from './certificates.js';
import type { ClientConfig } from './clientConfig.js';
import { verifyPeerDelegatedCredential, type VerifiedDelegatedCredential } from './delegatedCredentialCheck.js';
import { Client12Handshake, sessionOffer12, type ClientHelloSent, type SessionOffer12 } from './client12.js';
import type { Handshake, HandshakeHost, HandshakeMessage, Wait } from './handshakeHost.js';
import { holderKeyStages, localKeyStages, StageRunner, type KeyStages13, type TrafficPair } from './keyStages13.js';
import { OWN_RECORD_SIZE_LIMIT } from './server13.js';

const NO_MODES = new Uint8Array(0);

/** TLS_EMPTY_RENEGOTIATION_INFO_SCSV is not sent: the renegotiation_info extension says the same (RFC 5746 3.4). */
const UNCOMPRESSED = Uint8Array.of(0);
/** legacy_record_version of the first ClientHello record. */
const TLS10 = 0x0301;
/** HelloRetryRequest extensions a client may get without having sent them (RFC 8446 4.1.4). */
const HRR_UNSOLICITED = [ExtensionType.cookie];

/** What is fixed once the server named the suite (ServerHello or HelloRetryRequest). */
interface Negotiated {
  readonly suite: CipherSuiteInfo;
  readonly transcript: Transcript;
}

/** The handshake traffic secrets, from the ServerHello on. */
interface Session extends Negotiated, TrafficPair {}

/**
 * The PSK offered (RFC 8446 4.2.11) and its key schedule: a session from an earlier
 * connection (a ticket, its PSK in the front), or an external PSK whose holder computes
 * the binder and every secret.
 */
interface PskOffer {
  readonly stages: KeyStages13;
  readonly identity: Uint8Array;
  /** obfuscated_ticket_age at the moment a hello is sent (0 for an external PSK). */
  readonly age: () => number;
  /** psk_key_exchange_modes to send. */
  readonly modes: Uint8Array;
  /** The session resumed; absent for an external PSK. */
  readonly session?: ClientSession;
}

/** The server's certificate chain, once received. */
interface ServerChain {
  readonly chain: readonly Uint8Array[];
  readonly leaf: X509Certificate;
  /** A delegated credential on the leaf that passed RFC 9345 4.1.3: its key, not the leaf's, signs CertificateVerify. */
  readonly dc?: VerifiedDelegatedCredential;
}

/** The client's answer to a CertificateRequest, decided when the request arrives. */
interface ClientAuth {
  readonly context: Uint8Array;
  /** The certificate to send and the scheme to sign with; none: an empty Certificate. */
  readonly cert?: { readonly key: CertifiedKey; readonly scheme: SignatureScheme };
}

interface AppSecrets {
  readonly client: Buffer;
  readonly server: Buffer;
  readonly exporter: Buffer;
}

type State =
  /** ClientHello1 is kept whole: the transcript hash depends on the suite the server picks. */
  | { readonly name: 'awaitServerHello'; readonly kx: KeyExchange; readonly hello1: Uint8Array }
  | { readonly name: 'awaitServerHelloAfterRetry'; readonly kx: KeyExchange; readonly n: Negotiated }
  | { readonly name: 'awaitEncryptedExtensions'; readonly s: Session }
  | { readonly name: 'awaitCertificateOrRequest'; readonly s: Session }
  | { readonly name: 'awaitCertificate'; readonly s: Session; readonly auth: ClientAuth }
  | { readonly name: 'verifyingServer'; readonly s: Session; readonly auth?: ClientAuth; readonly server: ServerChain; readonly id: number }
  | { readonly name: 'awaitCertificateVerify'; readonly s: Session; readonly auth?: ClientAuth; readonly server: ServerChain }
  | { readonly name: 'awaitFinished'; readonly s: Session; readonly auth?: ClientAuth }
  | { readonly name: 'signing'; readonly opId: number; readonly s: Session; readonly app: AppSecrets; readonly cert: CertifiedKey; readonly scheme: SignatureScheme; readonly input: Uint8Array }
  /** A key-schedule stage runs (it waits on a key operation when a key holder keeps the PSK). */
  | { readonly name: 'keySchedule' }
  | { readonly name: 'done' };

const WAITS: { readonly [K in State['name']]?: Wait } = {
  awaitServerHello: { on: 'message', expect: [HandshakeType.server_hello] },
  awaitServerHelloAfterRetry: { on: 'message', expect: [HandshakeType.server_hello] },
  awaitEncryptedExtensions: { on: 'message', expect: [HandshakeType.encrypted_extensions] },
  awaitCertificateOrRequest: { on: 'message', expect: [HandshakeType.certificate_request, HandshakeType.certificate, HandshakeType.compressed_certificate] },
  awaitCertificate: { on: 'message', expect: [HandshakeType.certificate, HandshakeType.compressed_certificate] },
  awaitCertificateVerify: { on: 'message', expect: [HandshakeType.certificate_verify] },
  awaitFinished: { on: 'message', expect: [HandshakeType.finished] },
  keySchedule: { on: 'message', expect: [] },
  done: { on: 'message', expect: [] },
};

/**
 * TLS 1.3 client handshake (RFC 8446), the client's first step whatever the version: it
 * sends the ClientHello offering 1.3 (and 1.2 when allowed), and hands a TLS 1.2
 * ServerHello over to client12. In the RFC's order: ClientHello (4.1.2), ServerHello or
 * HelloRetryRequest (4.1.3, 4.1.4; a second ClientHello), EncryptedExtensions (4.3.1), an
 * optional CertificateRequest (4.3.2), the server's Certificate (4.4.2, judged by the
 * driver), CertificateVerify (4.4.3) and Finished (4.4.4); then the client's own
 * Certificate and CertificateVerify when asked (signed by the key holder) and Finished.
 * With `config.session` it offers that session (4.2.11); when the server takes it, no
 * certificate comes and the session's chain stands for the server's. With
 * `config.tls13Psk` it offers that external PSK instead, whose holder computes the binder
 * and every secret; a server that takes it authenticates with it, not with a certificate.
 */
export class Client13Handshake implements Handshake {
  private state: State;
  private readonly random: Uint8Array;
  private readonly sessionId: Uint8Array;
  private offeredExtensions: readonly number[] = [];
  /** The messages hashed so far, for a key holder that checks what it signs (bound mode). */
  private readonly hashedMessages: Uint8Array[] = [];
  private compatCcsSent = false;
  /** TLS 1.2 resumption: the session offered and the SessionTicket extension (client12). */
  private readonly offer12: SessionOffer12 | undefined;
  private readonly runner: StageRunner;
  private offer: PskOffer | undefined;
  /** Whether the server took the PSK (a ticket or an external one): it authenticates with it, not with a certificate. */
  private pskAccepted = false;
  /** The key schedule once the ServerHello chose between the offered session and a full handshake. */
  private stages: KeyStages13 | undefined;
  /** The (EC)DHE shared secret, which every stage after the handshake secrets names. */
  private dhe: Uint8Array | null = null;

  constructor(
    private readonly host: HandshakeHost,
    private readonly config: ClientConfig,
  ) {
    this.runner = new StageRunner(host);
    this.random = host.random(32);
    // A TLS 1.2 session to resume brings its own session id (client12: sessionOffer12).
    this.offer12 = this.offers12 ? sessionOffer12(config, host.now(), host.random) : undefined;
    this.sessionId = this.offer12?.sessionId ?? (config.compatibilityMode && config.maxVersion === 'TLSv1.3' ? host.random(32) : new Uint8Array(0));
    host.info.serverName = config.serverName;
    this.offer = this.externalPskOffer() ?? this.resumptionOffer(config.session);
    // A failed or abandoned handshake leaves no key-schedule secret behind it.
    host.onAbandoned(() => {
      this.offer?.stages.wipe();
      this.wipeSecrets();
    });
    const kx = host.keyShareFactory(config.groups[0]);
    this.state = { name: 'awaitServerHello', kx, hello1: this.sendClientHello(kx) };
  }

  get wait(): Wait {
    const stage = this.runner.wait;
    if (stage) return stage;
    const st = this.state;
    if (st.name === 'verifyingServer') return { on: 'peerVerification', id: st.id };
    if (st.name === 'signing') return { on: 'keyOperation', id: st.opId };
    return WAITS[st.name]!;
  }

  /** A server in middlebox compatibility mode sends a ChangeCipherSpec; dropped until the handshake is done. */
  get acceptsCompatCcs(): boolean {
    return this.state.name !== 'done';
  }

  private get offers13(): boolean {
    return this.config.maxVersion === 'TLSv1.3';
  }

  private get offers12(): boolean {
    return this.config.minVersion === 'TLSv1.2';
  }

  /**
   * The session to offer, if it fits this connection (4.2.11, 4.6.1): a TLS 1.3 session
   * for the same server name, still within its lifetime, whose suite's hash one of our
   * suites shares.
   */
  private resumptionOffer(session: ClientSession | undefined): PskOffer | undefined {
    if (!session || !this.offers13 || session.version !== 'TLSv1.3') return undefined;
    const info = suiteInfo(session.cipherSuite);
    if (info?.version !== 'TLSv1.3' || !this.config.tls13CipherSuites.some((c) => suiteInfo(c)!.hash === info.hash)) return undefined;
    if (session.serverName !== this.config.serverName) return undefined;
    const age = this.host.now() - session.receivedAt;
    if (age < 0 || age >= session.lifetime * 1000 || session.secret.length !== hashLength(info.hash)) return undefined;
    return {
      session,
      stages: localKeyStages(info.hash, session.secret),
      identity: session.ticket,
      age: () => (Math.max(0, Math.floor(this.host.now() - session.receivedAt)) + session.ageAdd) >>> 0,
      // psk_dhe_ke only: a resumed connection still runs (EC)DHE (forward secrecy).
      modes: Uint8Array.of(PskKeyExchangeMode.psk_dhe_ke),
    };
  }

  /**
   * The external PSK of `config.tls13Psk`: the holder computes its binder (and, if the
   * server takes it, every secret). psk_dhe_ke unless psk_ke is asked for. No early data:
   * keyward never sends 0-RTT (docs/tls13-psk.md).
   */
  private externalPskOffer(): PskOffer | undefined {
    const p = this.config.tls13Psk;
    if (!p || !this.offers13) return undefined;
    const identity = typeof p.identity === 'string' ? Buffer.from(p.identity, 'utf8') : Uint8Array.from(p.identity);
    const stages = holderKeyStages({
      holder: p.holder,
      identity,
      hash: p.hash ?? 'sha256',
      context: () => ({ ...this.host.operationContext(), tlsVersion: 'TLSv1.3' }),
      // A session after an external PSK handshake would rest on the PSK, not on a chain this client could check again: none is kept.
      resumption: false,
    });
    const mode = p.keyExchange === 'psk_ke' ? PskKeyExchangeMode.psk_ke : PskKeyExchangeMode.psk_dhe_ke;
    return { stages, identity, age: () => 0, modes: Uint8Array.of(mode) };
  }

  // ---- 4.1.2 ClientHello ----

  /**
   * Sends a ClientHello with a share for `kx`'s group (and the cookie of a HelloRetryRequest;
   * `n` is the transcript so far, which the second hello joins); returns it whole. With a
   * session to offer, pre_shared_key comes last and its binder covers the transcript and
   * this hello up to the binders (4.2.11.2).
   */
  private sendClientHello(kx: KeyExchange, cookie?: Uint8Array, n?: Negotiated): Uint8Array {
    const config = this.config;
    const exts: Extension[] = [];
    if (config.serverName !== undefined) exts.push(serverNameExt.encode(config.serverName));
    if (this.offers12) exts.push(extendedMasterSecretExt.encode(), renegotiationInfoExt.encode(new Uint8Array(0)));
    exts.push(supportedGroupsExt.encode(config.groups));
    if (this.offers12) exts.push(ecPointFormatsExt.encode(UNCOMPRESSED));
    if (this.offer12) exts.push(this.offer12.ticketExtension);
    if (config.alpnProtocols.length > 0) exts.push(alpnExt.encode(config.alpnProtocols));
    if (this.offers13) {
      exts.push(keyShareClientExt.encode([{ group: kx.group, keyExchange: kx.publicKey }]));
      exts.push(supportedVersionsClientExt.encode(this.offers12 ? [TLS13, TLS12] : [TLS13]));
    }
    exts.push(signatureAlgorithmsExt.encode(config.signatureSchemes));
    if (cookie) exts.push(cookieExt.encode(cookie));
    if (this.offers13) exts.push(recordSizeLimitExt.encode(OWN_RECORD_SIZE_LIMIT));
    if (this.offers13 && config.certificateCompression.length > 0) exts.push(compressCertificateExt.encode(config.certificateCompression));
    if (this.offers13 && config.delegatedCredentials.length > 0) exts.push(delegatedCredentialSchemesExt.encode(config.delegatedCredentials));
    const offer = this.offer;
    if (offer) {
      exts.push(pskKeyExchangeModesExt.encode(offer.modes));
      const identity = { identity: offer.identity, obfuscatedTicketAge: offer.age() };
      exts.push(preSharedKeyOfferExt.encode({ identities: [identity], binders: [Buffer.alloc(hashLength(offer.stages.hash))] }));
    }
    const extensions = config.helloExtensions ? config.helloExtensions(exts) : exts;
    const suites = [...(this.offers13 ? config.tls13CipherSuites : []), ...(this.offers12 ? config.tls12CipherSuites : [])];
    const hello = encodeClientHello({ random: this.random, sessionId: this.sessionId, cipherSuites: suites, extensions });
    this.offeredExtensions = extensions.map((e) => e.type);
    const send = () => {
      // RFC 8446 5.1: the first ClientHello's record may say 0x0301, for old middleboxes (as browsers do).
      if (!n) this.host.record.outerVersion = TLS10;
      this.host.sendHandshake(hello);
      this.host.flush();
      this.host.record.outerVersion = TLS12;
      if (n) this.hash(n, hello);
    };
    if (!offer || this.offeredExtensions.at(-1) !== ExtensionType.pre_shared_key) {
      send();
      return hello;
    }
    const prefix = hello.subarray(0, pskBindersOffset(hello, [hashLength(offer.stages.hash)]));
    const binderHash = n ? n.transcript.currentWith(prefix) : digest(offer.stages.hash, prefix);
    this.runner.run(offer.stages.binder(binderHash), (binder) => {
      writePskBinders(hello, [binder]);
      send();
    });
    return hello;
  }

  handleMessage(msg: HandshakeMessage): void {
    const st = this.state;
    switch (st.name) {
      case 'awaitServerHello':
      case 'awaitServerHelloAfterRetry':
        return this.handleServerHello(msg, st);
      case 'awaitEncryptedExtensions':
        return this.handleEncryptedExtensions(msg, st.s);
      case 'awaitCertificateOrRequest':
        if (msg.type === HandshakeType.certificate_request) return this.handleCertificateRequest(msg, st.s);
        return this.handleCertificate(msg, st.s, undefined);
      case 'awaitCertificate':
        return this.handleCertificate(msg, st.s, st.auth);
      case 'awaitCertificateVerify':
        return this.handleCertificateVerify(msg, st);
      case 'awaitFinished':
        return this.handleServerFinished(msg, st);
      default:
        throw unexpectedMessage(`handshake message ${msg.type} while ${st.name}`);
    }
  }

  // ---- 4.1.3 ServerHello, 4.1.4 HelloRetryRequest ----

  private handleServerHello(msg: HandshakeMessage, st: Extract<State, { name: 'awaitServerHello' | 'awaitServerHelloAfterRetry' }>): void {
    const sh = parseServerHello(msg.body);
    if (sh.selectedVersion === undefined) {
      if (st.name !== 'awaitServerHello') throw illegalParameter('TLS 1.2 ServerHello after a HelloRetryRequest');
      return this.continueAsTls12(msg, sh, st.hello1);
    }
    if (sh.selectedVersion !== TLS13 || !this.offers13) throw illegalParameter(`server chose version 0x${sh.selectedVersion.toString(16)}, which was not offered`);
    if (sh.legacyVersion !== TLS12) throw illegalParameter('TLS 1.3 ServerHello with legacy_version other than 1.2');
    if (Buffer.compare(sh.sessionId, this.sessionId) !== 0) throw illegalParameter('ServerHello does not echo the session id');
    if (sh.compressionMethod !== 0) throw illegalParameter('ServerHello with a compression method');
    const suite = this.config.tls13CipherSuites.find((c) => c === sh.cipherSuite);
    if (suite === undefined) throw illegalParameter('server chose a cipher suite that was not offered');
    let n: Negotiated;
    if (st.name === 'awaitServerHello') {
      const info = suiteInfo(suite)!;
      n = { suite: info, transcript: new Transcript(info.hash) };
      this.hash(n, st.hello1);
    } else {
      if (st.n.suite.suite !== suite) throw illegalParameter('ServerHello changed the cipher suite of the HelloRetryRequest');
      n = st.n;
    }
    const info = this.host.info;
    info.version = 'TLSv1.3';
    info.cipherSuite = suite;
    info.cipherName = n.suite.name;
    info.opensslCipherName = n.suite.opensslName;
    if (sh.isHelloRetryRequest) {
      if (st.name !== 'awaitServerHello') throw unexpectedMessage('a second HelloRetryRequest');
      return this.handleHelloRetryRequest(msg, sh, st.kx, n);
    }
    checkSolicited(sh.extensions, this.offeredExtensions, 'ServerHello');
    // The modes of the hello just answered (keyStagesFor forgets the offer).
    const modes = this.offer?.modes ?? NO_MODES;
    const stages = this.keyStagesFor(sh, n);
    const share = sh.keyShare;
    if (share) {
      // 4.2.9: with a PSK the mode is the server's pick among ours; a key share means psk_dhe_ke.
      if (this.pskAccepted && !modes.includes(PskKeyExchangeMode.psk_dhe_ke)) throw illegalParameter('server sent a key share, but psk_dhe_ke was not offered');
      if (share.group !== st.kx.group) throw illegalParameter('server key share is not for the group of our share');
      info.group = share.group;
      this.dhe = st.kx.computeSharedSecret(share.keyExchange);
    } else if (!this.pskAccepted) {
      throw new TlsAlertError(AlertDescription.missing_extension, 'ServerHello without a key share or a PSK');
    } else if (!modes.includes(PskKeyExchangeMode.psk_ke)) {
      throw new TlsAlertError(AlertDescription.missing_extension, 'ServerHello without a key share, but psk_ke was not offered');
    }
    this.hash(n, msg.raw);
    if (this.host.handshakeFragmentPending()) throw unexpectedMessage('ServerHello and encrypted data share a record');
    this.state = { name: 'keySchedule' };
    this.runner.run(stages.handshakeSecrets(this.dhe, n.transcript.current()), (hs) => {
      const s: Session = { ...n, ...hs };
      this.host.setReadKey(aead(s, s.server));
      // As rustls: alerts from here on go under the client handshake key, which the server now reads with.
      this.host.setWriteKey(aead(s, s.client));
      this.state = { name: 'awaitEncryptedExtensions', s };
    });
  }

  /** Forgets the key schedule's secrets and the (EC)DHE shared secret. */
  private wipeSecrets(): void {
    this.stages?.wipe();
    this.dhe?.fill(0);
    this.dhe = null;
  }

  /**
   * 4.2.11: the server took the offered PSK (selected_identity 0, the only one offered,
   * with a suite of the PSK's hash) or not (a certificate handshake, the offer forgotten).
   */
  private keyStagesFor(sh: ServerHello, n: Negotiated): KeyStages13 {
    const offer = this.offer;
    this.offer = undefined;
    if (sh.selectedIdentity === undefined) {
      offer?.stages.wipe();
      return (this.stages = localKeyStages(n.suite.hash));
    }
    if (!offer) throw illegalParameter('server selected a PSK that was not offered');
    if (sh.selectedIdentity !== 0) throw illegalParameter(`server selected PSK identity ${sh.selectedIdentity}, but only one was offered`);
    if (offer.stages.hash !== n.suite.hash) throw illegalParameter("server chose a cipher suite whose hash is not the PSK's");
    const info = this.host.info;
    this.pskAccepted = true;
    if (offer.session) {
      info.resumed = true;
      info.peerCertificates = offer.session.peerCertificates;
    } else {
      info.pskIdentity = Buffer.from(offer.identity).toString('utf8');
    }
    return (this.stages = offer.stages);
  }

  /** 4.1.4: one retry, for a group we support but did not send a share for; the transcript restarts from message_hash(ClientHello1). */
  private handleHelloRetryRequest(msg: HandshakeMessage, sh: ServerHello, kx: KeyExchange, n: Negotiated): void {
    checkSolicited(sh.extensions, this.offeredExtensions, 'HelloRetryRequest', HRR_UNSOLICITED);
    const group = sh.selectedGroup;
    if (group === undefined && !sh.cookie) throw illegalParameter('HelloRetryRequest that would not change the ClientHello');
    if (group === kx.group) throw illegalParameter('HelloRetryRequest for the group we already sent a share for');
    if (group !== undefined && !this.config.groups.includes(group as NamedGroup)) throw illegalParameter('HelloRetryRequest for a group that was not offered');
    n.transcript.replaceWithMessageHash();
    this.hash(n, msg.raw);
    this.host.info.helloRetry = true;
    this.sendCompatCcs();
    const next = group === undefined ? kx : this.host.keyShareFactory(group as NamedGroup);
    // 4.1.2: the offer stays (new age and binder) only if the retry's suite fits its hash.
    if (this.offer && this.offer.stages.hash !== n.suite.hash) {
      this.offer.stages.wipe();
      this.offer = undefined;
    }
    this.state = { name: 'awaitServerHelloAfterRetry', kx: next, n };
    this.sendClientHello(next, sh.cookie, n);
  }

  /** A TLS 1.2 ServerHello: check the downgrade sentinel (4.1.3) and hand over to client12. */
  private continueAsTls12(msg: HandshakeMessage, sh: ServerHello, hello1: Uint8Array): void {
    if (!this.offers12 || sh.legacyVersion !== TLS12) throw new TlsAlertError(AlertDescription.protocol_version, `server chose version 0x${sh.legacyVersion.toString(16)}, which was not offered`);
    if (this.offers13 && Buffer.compare(sh.random.subarray(24), DOWNGRADE_TLS12) === 0) {
      throw illegalParameter('TLS 1.2 ServerHello carries the TLS 1.3 downgrade sentinel');
    }
    const hello: ClientHelloSent = { raw: hello1, random: this.random, offeredExtensions: this.offeredExtensions, sessionId: this.sessionId, session: this.offer12?.session };
    this.host.useTls12();
    this.host.continueWith(new Client12Handshake(this.host, this.config, hello, sh, msg.raw));
  }

  private sendCompatCcs(): void {
    if (this.compatCcsSent || this.sessionId.length === 0) return;
    this.compatCcsSent = true;
    this.host.sendChangeCipherSpec();
  }

  // ---- 4.3.1 EncryptedExtensions ----

  private handleEncryptedExtensions(msg: HandshakeMessage, s: Session): void {
    const ee = parseEncryptedExtensions(msg.body);
    checkSolicited(ee.extensions, this.offeredExtensions, 'EncryptedExtensions', [ExtensionType.supported_groups]);
    if (ee.alpn !== undefined) {
      if (!this.config.alpnProtocols.includes(ee.alpn)) throw illegalParameter(`server chose ALPN protocol "${ee.alpn}", which was not offered`);
      this.host.info.alpnProtocol = ee.alpn;
    }
    // RFC 8449 4: the peer's limit counts the content type byte in TLS 1.3.
    if (ee.recordSizeLimit !== undefined) {
      if (ee.recordSizeLimit < 64) throw illegalParameter('record_size_limit below 64');
      this.host.record.maxSendFragment = Math.min(1 << 14, ee.recordSizeLimit - 1);
    }
    // keyward sends no early data, so a server cannot have accepted any (4.2.10).
    if (ee.earlyData) throw illegalParameter('server accepted early data, which was not sent');
    this.hash(s, msg.raw);
    // 4.2.11: a server that took the PSK authenticates with it, not with a certificate.
    this.state = this.pskAccepted ? { name: 'awaitFinished', s } : { name: 'awaitCertificateOrRequest', s };
  }

  // ---- 4.3.2 CertificateRequest ----

  private handleCertificateRequest(msg: HandshakeMessage, s: Session): void {
    const cr: CertificateRequest13 = parseCertificateRequest13(msg.body);
    if (cr.context.length !== 0) throw illegalParameter('certificate_request_context must be empty during the handshake');
    this.hash(s, msg.raw);
    const key = this.config.certificate;
    const scheme = key?.schemes.find((c) => cr.signatureAlgorithms.includes(c) && schemeInfo(c)!.tls13);
    this.state = { name: 'awaitCertificate', s, auth: { context: cr.context, cert: key && scheme !== undefined ? { key, scheme } : undefined } };
  }

  // ---- 4.4.2 Certificate, judged by the driver ----

  private handleCertificate(msg: HandshakeMessage, s: Session, auth: ClientAuth | undefined): void {
    const config = this.config;
    const cert = parseCertificate13(receivedCertificateBody(msg, config.certificateCompression, config.maxHandshakeMessage));
    if (msg.type === HandshakeType.compressed_certificate) this.host.info.certificateCompression = parseCompressedCertificate(msg.body).algorithm;
    if (cert.context.length !== 0) throw illegalParameter('server Certificate with a request context');
    // 4.4.2.4: a server's Certificate may not be empty.
    if (cert.entries.length === 0) throw decodeError('server sent no certificate');
    const chain = cert.entries.map((e) => e.data);
    const leaf = readCertificate(chain[0], 'server');
    // RFC 9345 4.1.1: a credential counts on the end-entity entry only (others are ignored),
    // and only when asked for; 4.1.3: one that fails a check is illegal_parameter.
    const dcExtension = cert.entries[0].extensions.find((e) => e.type === ExtensionType.delegated_credential);
    if (dcExtension && config.delegatedCredentials.length === 0) throw unexpectedMessage('server sent a delegated credential, which was not offered');
    const offer = { credentialSchemes: config.delegatedCredentials, signatureAlgorithms: config.signatureSchemes };
    const dc = dcExtension && verifyPeerDelegatedCredential(dcExtension.data, chain[0], leaf.publicKey, offer, this.host.now());
    this.hash(s, msg.raw);
    this.host.info.peerCertificates = chain;
    const id = this.host.requestPeerVerification({ peer: 'server', chain, serverName: config.serverName });
    this.state = { name: 'verifyingServer', s, auth, server: { chain, leaf, ...(dc ? { dc } : {}) }, id };
  }

  peerVerified(id: number): void {
    const st = this.state;
    if (st.name !== 'verifyingServer' || st.id !== id) throw new TlsAlertError(AlertDescription.internal_error, 'unexpected peer verification');
    this.state = { name: 'awaitCertificateVerify', s: st.s, auth: st.auth, server: st.server };
  }

  // ---- 4.4.3 CertificateVerify ----

  private handleCertificateVerify(msg: HandshakeMessage, st: Extract<State, { name: 'awaitCertificateVerify' }>): void {
    const cv = parseCertificateVerify(msg.body);
    const info = schemeInfo(cv.scheme);
    const dc = st.server.dc;
    // RFC 9345 4.1.3: with a credential, CertificateVerify is its key's, in its dc_cert_verify_algorithm.
    if (dc && cv.scheme !== dc.scheme) throw illegalParameter("server signed with a scheme other than its delegated credential's");
    if (!dc && (!info || !info.tls13 || !this.config.signatureSchemes.includes(cv.scheme))) throw illegalParameter('server signed with a scheme that was not offered');
    // 4.2.3: rsa_pss_rsae_* under an RSASSA-PSS certificate (or rsa_pss_pss_* under an rsaEncryption one) is not a bad signature but a wrong scheme.
    if (!dc) checkPeerScheme(st.server.leaf.publicKey, cv.scheme, 'TLSv1.3', 'server');
    const content = certificateVerifyContent(st.s.transcript.current(), 'server');
    if (!verifySignature(dc ? dc.publicKey : st.server.leaf.publicKey, cv.scheme, content, cv.signature)) {
      throw new TlsAlertError(AlertDescription.decrypt_error, `server CertificateVerify does not verify against its ${dc ? 'delegated credential' : 'certificate'}`);
    }
    this.host.info.signatureScheme = cv.scheme;
    if (dc) this.host.info.delegatedCredential = true;
    this.hash(st.s, msg.raw);
    this.state = { name: 'awaitFinished', s: st.s, auth: st.auth };
  }

  // ---- 4.4.4 Finished, then the client's flight ----

  private handleServerFinished(msg: HandshakeMessage, st: Extract<State, { name: 'awaitFinished' }>): void {
    const { s, auth } = st;
    const h = s.suite.hash;
    const expected = tls13FinishedVerifyData(h, s.server, s.transcript.current());
    const got = parseFinished(msg.body, expected.length);
    if (!timingSafeEqual(got, expected)) throw new TlsAlertError(AlertDescription.decrypt_error, 'server Finished does not verify');
    this.hash(s, msg.raw);
    if (this.host.handshakeFragmentPending()) throw unexpectedMessage('handshake data after Finished spans a key change');
    this.state = { name: 'keySchedule' };
    this.runner.run(this.stages!.applicationSecrets(this.dhe, s.transcript.current()), (app) => this.sendClientFlight(s, app, auth));
  }

  /** The client's flight after the server's Finished: its Certificate and CertificateVerify when asked, and Finished. */
  private sendClientFlight(s: Session, app: AppSecrets, auth: ClientAuth | undefined): void {
    this.host.setReadKey(aead(s, app.server));
    this.sendCompatCcs();
    if (!auth) return this.sendClientFinished(s, app);
    this.sendMessage(s, encodeCertificate13(auth.context, auth.cert ? auth.cert.key.chain : []));
    if (!auth.cert) return this.sendClientFinished(s, app);
    // 4.4.3: the client's CertificateVerify, signed by its key holder.
    const { key, scheme } = auth.cert;
    const input = certificateVerifyContent(s.transcript.current(), 'client');
    const context: OperationContext = {
      ...this.host.operationContext(),
      tlsVersion: 'TLSv1.3',
      purpose: 'tls13-client-certificate-verify',
      handshakeMessages: [...this.hashedMessages],
    };
    this.host.info.clientSignatureScheme = scheme;
    const opId = this.host.requestKeyOperation({ kind: 'sign', key: key.key, scheme, message: input, context });
    this.state = { name: 'signing', opId, s, app, cert: key, scheme, input };
  }

  keyOperationResult(opId: number, signature: Uint8Array): void {
    if (this.runner.result(opId, signature)) return;
    const st = this.state;
    if (st.name !== 'signing' || st.opId !== opId) throw new TlsAlertError(AlertDescription.internal_error, 'unexpected key operation result');
    checkHolderSignature(st.cert, st.scheme, st.input, signature, 'TLSv1.3');
    this.sendMessage(st.s, encodeCertificateVerify(st.scheme, signature));
    this.sendClientFinished(st.s, st.app);
  }

  private sendClientFinished(s: Session, app: AppSecrets): void {
    // Kept only for the key holder's request; the connection may live long.
    this.hashedMessages.length = 0;
    const h = s.suite.hash;
    this.sendMessage(s, encodeFinished(tls13FinishedVerifyData(h, s.client, s.transcript.current())));
    this.host.flush();
    this.host.setWriteKey(aead(s, app.client));
    this.state = { name: 'keySchedule' };
    const stages = this.stages!;
    const complete = (rms: Buffer | undefined) => {
      this.wipeSecrets();
      this.state = { name: 'done' };
      this.host.handshakeComplete({
        version: 'TLSv1.3',
        hash: h,
        aead: s.suite.aead,
        readSecret: app.server,
        writeSecret: app.client,
        exporterMaster: app.exporter,
        ...(rms ? { resumptionMasterSecret: rms } : {}),
      });
    };
    // 4.6.1: the tickets the server sends next stand for PSKs derived from this secret (none without it: they are ignored).
    const rmsStage = stages.resumptionMasterSecret;
    if (!rmsStage) return complete(undefined);
    this.runner.run(rmsStage.call(stages, this.dhe, s.transcript.current()), complete);
  }

  /** Hashes a message into the transcript, and keeps it for a key holder that checks what it signs (bound mode). */
  private hash(n: Negotiated, raw: Uint8Array): void {
    n.transcript.update(raw);
    this.hashedMessages.push(raw);
  }

  private sendMessage(s: Session, raw: Uint8Array): void {
    this.hash(s, raw);
    this.host.sendHandshake(raw);
  }
}

function aead(n: Negotiated, secret: Uint8Array): RecordAead {
  return tls13RecordAead(n.suite.hash, n.suite.aead, secret);
}

