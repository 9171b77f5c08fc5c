import { timingSafeEqual, type X509Certificate } from 'node:crypto';
import { KeyOperationError, UnknownPskIdentityError, type OperationContext, type PremasterDecryption, type PskOperations } from '../../keys/keyOperations.js';
import { RecordAead } from '../crypto/aead.js';
import { suiteInfo, type CipherSuiteInfo } from '../crypto/cipherSuites.js';
import { groupName, groupSpec, type KeyExchange, type NamedGroup } from '../crypto/groups.js';
import { tls12ExtendedMasterSecret, tls12KeyBlock, tls12MasterSecret, tls12VerifyData } from '../crypto/prf12.js';
import { SignatureScheme, isRsaKey, keyKindOf, verifySignature12 } from '../crypto/signatureSchemes.js';
import { Transcript } from '../crypto/transcript.js';
import { encodeSessionState, parseSessionState, sessionAgeProblem, type SessionState } from '../resumption/sessionState.js';
import { AlertDescription } from '../wire/alerts.js';
import type { ClientHello } from '../wire/clientHello.js';
import { DOWNGRADE_TLS12, HandshakeType } from '../wire/constants.js';
import { TlsAlertError, illegalParameter, unexpectedMessage } from '../wire/errors.js';
import { encodeFinished, encodeServerHello, extAlpn, extServerNameAck, parseFinished, type ExtensionOut } from '../wire/handshake.js';
import {
  encodeCertificate12,
  encodeEcdhParams,
  encodeServerHelloDone,
  encodeServerKeyExchangePsk,
  encodeServerKeyExchangeSigned,
  extEcPointFormatsUncompressed,
  extExtendedMasterSecret,
  extRenegotiationInfoEmpty,
  parseClientKeyExchange,
  VERIFY_DATA_LENGTH_12,
} from '../wire/handshake12.js';
import { parseCertificateVerify } from '../wire/certificateVerify.js';
import { sessionTicketExt } from '../wire/extensionCodecs.js';
import { ClientCertificateType, encodeCertificateRequest12, encodeNewSessionTicket12, parseCertificate12 } from '../wire/messages12.js';
import { checkHolderSignature, checkPeerScheme, chooseCertificate, nameMatches, readCertificate, type CertifiedKey } from './certificates.js';
import { TLS12_GROUP_WITHOUT_SUPPORTED_GROUPS, VERIFIED_SIGNATURE_SCHEMES } from './defaults.js';
import type { ServerConfig } from './config.js';
import type { Handshake, HandshakeHost, HandshakeMessage, Wait } from './handshakeHost.js';
import { chooseAlpn } from './negotiation.js';

/** TLS_EMPTY_RENEGOTIATION_INFO_SCSV (RFC 5746 3.3). */
const EMPTY_RENEGOTIATION_INFO_SCSV = 0x00ff;
/** TLS_FALLBACK_SCSV (RFC 7507). */
const FALLBACK_SCSV = 0x5600;
const PREMASTER_LENGTH = 48;
const MASTER_SECRET_LENGTH = 48;
/** Every scheme code point: RSA key exchange signs nothing, so any scheme of the key will do for certificate choice. */
const ANY_SCHEME: readonly number[] = Object.values(SignatureScheme).filter((v): v is number => typeof v === 'number');

type Kx12 = 'ECDHE_ECDSA' | 'ECDHE_RSA' | 'RSA' | 'PSK' | 'ECDHE_PSK';

/** The suite chosen, with what its key exchange needs. */
type Selection = { readonly suite: CipherSuiteInfo; readonly byName: boolean } & (
  | { readonly kx: 'ECDHE_ECDSA' | 'ECDHE_RSA'; readonly cert: CertifiedKey; readonly scheme: SignatureScheme; readonly group: NamedGroup }
  | { readonly kx: 'RSA'; readonly cert: CertifiedKey; readonly decrypter: PremasterDecryption }
  | { readonly kx: 'PSK'; readonly holder: PskOperations }
  | { readonly kx: 'ECDHE_PSK'; readonly group: NamedGroup; readonly holder: PskOperations }
);

/** The key exchange's own state until the ClientKeyExchange arrives. */
type KeyExchangeState =
  | { readonly kx: 'ECDHE'; readonly ecdhe: KeyExchange }
  | { readonly kx: 'ECDHE_PSK'; readonly ecdhe: KeyExchange; readonly holder: PskOperations }
  | { readonly kx: 'RSA'; readonly decrypter: PremasterDecryption }
  | { readonly kx: 'PSK'; readonly holder: PskOperations };

/** A session the client asked to resume (RFC 5246 7.4.1.2 session id, or RFC 5077 ticket) that may be resumed. */
interface Resumption {
  readonly state: SessionState;
  readonly suite: CipherSuiteInfo;
  /** Ticket resumption: the key that sealed it no longer seals, so a fresh ticket is sent. */
  readonly reissueTicket: boolean;
  /** Session-id resumption: the cache key, forgotten if the connection ends with a fatal alert. */
  readonly cachedId?: Uint8Array;
}

/** Record protection for both directions, from the key block. */
interface Keys12 {
  readonly masterSecret: Buffer;
  readonly clientAead: RecordAead;
  readonly serverAead: RecordAead;
}

type State =
  | { readonly name: 'awaitSignature'; readonly opId: number; readonly cert: CertifiedKey; readonly scheme: SignatureScheme; readonly input: Uint8Array; readonly params: Uint8Array; readonly ecdhe: KeyExchange }
  | { readonly name: 'awaitClientCertificate'; readonly exchange: KeyExchangeState }
  | { readonly name: 'verifyingClient'; readonly id: number; readonly exchange: KeyExchangeState; readonly clientLeaf?: X509Certificate }
  | { readonly name: 'awaitClientKeyExchange'; readonly exchange: KeyExchangeState; readonly clientLeaf?: X509Certificate }
  | { readonly name: 'awaitPremaster'; readonly opId: number; readonly clientLeaf?: X509Certificate }
  | { readonly name: 'awaitClientCertificateVerify'; readonly keys: Keys12; readonly clientLeaf: X509Certificate; readonly signed: Buffer }
  /** `otherSecret`: the ECDHE_PSK shared secret, wiped once the holder has answered. */
  | { readonly name: 'awaitPskMasterSecret'; readonly opId: number; readonly otherSecret: Buffer | null; readonly clientLeaf?: undefined }
  | { readonly name: 'awaitChangeCipherSpec'; readonly keys: Keys12 }
  | { readonly name: 'awaitFinished'; readonly keys: Keys12 }
  | { readonly name: 'done' };

const EXPECT_CLIENT_KEY_EXCHANGE: Wait = { on: 'message', expect: [HandshakeType.client_key_exchange] };
const EXPECT_CERTIFICATE: Wait = { on: 'message', expect: [HandshakeType.certificate] };
const EXPECT_CERTIFICATE_VERIFY: Wait = { on: 'message', expect: [HandshakeType.certificate_verify] };
/** Schemes a client may sign its TLS 1.2 CertificateVerify with. */
const CLIENT_SCHEMES12: readonly number[] = VERIFIED_SIGNATURE_SCHEMES;
const EXPECT_FINISHED: Wait = { on: 'message', expect: [HandshakeType.finished] };
const EXPECT_CCS: Wait = { on: 'changeCipherSpec' };
const EXPECT_NOTHING: Wait = { on: 'message', expect: [] };

/**
 * TLS 1.2 server handshake (RFC 5246) with the ECDHE (RFC 8422), RSA and PSK (RFC 4279,
 * RFC 5489) key exchanges, AEAD suites only. In RFC order: process the ClientHello
 * (7.4.1.2), send ServerHello (7.4.1.3), Certificate (7.4.2), ServerKeyExchange (7.4.3,
 * signed by the key holder), ServerHelloDone (7.4.5); read ClientKeyExchange (7.4.7; the
 * RSA premaster is decrypted by the key holder, PSK master secrets come from the PSK
 * holder), ChangeCipherSpec and Finished (7.4.9); answer with our ChangeCipherSpec and
 * Finished. Every private-key and PSK operation is a key-operation event.
 *
 * Resumption: a full handshake with the extended master secret and a certificate (or RSA)
 * key exchange gets a fresh 32-byte session id kept in `sessionCache12` (an empty id
 * without a cache), and an RFC 5077 ticket when the client sent the SessionTicket
 * extension and `ticketKeys` is set (NewSessionTicket before our ChangeCipherSpec). A
 * ClientHello with a ticket the server can open, or else a cached session id, resumes with
 * the abbreviated handshake (7.3: ServerHello, [NewSessionTicket], ChangeCipherSpec,
 * Finished; then the client's): same suite, same SNI, the extended master secret again
 * (RFC 7627 5.3), no key-holder call. Anything else is a full handshake.
 *
 * Policy: extended master secret (RFC 7627) is used whenever the client offers it and can
 * be required; a session without it is never resumed; renegotiation is refused (RFC 5746
 * renegotiation_info is still echoed so clients know it is safe). PSK sessions are not
 * resumed (the session state does not carry the PSK identity). A client without
 * signature_algorithms implies SHA-1 signatures (RFC 5246 7.4.1.4.1): keyward does not
 * sign with SHA-1, so such a client gets no signed suite.
 */
export class Server12Handshake implements Handshake {
  private state: State;
  private readonly suite: CipherSuiteInfo;
  private readonly hash: 'sha256' | 'sha384';
  private readonly transcript: Transcript;
  private readonly clientRandom: Uint8Array;
  private readonly serverRandom: Buffer;
  private readonly extended: boolean;
  /** Mutual TLS: every handshake message so far, which the client's CertificateVerify signs; null otherwise. */
  private readonly messages: Uint8Array[] | null;
  /** The session resumed (abbreviated handshake), if any. */
  private readonly resumption: Resumption | undefined;
  /** Full handshake: the session id sent (stored in the cache at the end), empty when none. */
  private readonly sessionId: Uint8Array;
  /** Full handshake: a NewSessionTicket follows the client's Finished. */
  private readonly issueTicket: boolean;

  constructor(
    private readonly host: HandshakeHost,
    private readonly config: ServerConfig,
    private readonly ch: ClientHello,
    chRaw: Uint8Array,
  ) {
    checkClientHello12(ch);
    // RFC 7507: a client retrying with a lower version while we could do 1.3 is being downgraded.
    if (ch.cipherSuites.includes(FALLBACK_SCSV) && config.maxVersion === 'TLSv1.3') {
      throw new TlsAlertError(AlertDescription.inappropriate_fallback, 'TLS_FALLBACK_SCSV from a client that could have used TLS 1.3');
    }
    this.extended = ch.extendedMasterSecret;
    if (config.requireExtendedMasterSecret && !this.extended) {
      throw new TlsAlertError(AlertDescription.handshake_failure, 'the client does not offer the extended master secret, which this server requires');
    }
    this.clientRandom = ch.random;
    this.serverRandom = Buffer.from(host.random(32));
    // RFC 8446 4.1.3: the downgrade sentinel when we also speak TLS 1.3, so a 1.3-capable
    // client notices an attacker that removed 1.3.
    if (config.maxVersion === 'TLSv1.3') DOWNGRADE_TLS12.copy(this.serverRandom, 24);
    // info.version is set by the connection when it picks TLS 1.2.
    const info = host.info;
    info.serverName = ch.serverName;
    info.extendedMasterSecret = this.extended;

    const resumption = findResumption(config, ch, host.now());
    this.resumption = resumption;
    this.sessionId = new Uint8Array(0);
    this.issueTicket = false;
    if (resumption) {
      this.suite = resumption.suite;
      this.hash = resumption.suite.hash;
      this.transcript = new Transcript(this.hash);
      this.messages = null;
      this.hashMessage(chRaw);
      this.state = this.resume(resumption);
      return;
    }

    const sel = selectSuite(config, ch);
    const alpn = chooseAlpn(ch.alpn, config.alpnProtocols);
    if (alpn !== undefined) info.alpnProtocol = alpn;
    const group = 'group' in sel ? sel.group : undefined;
    if (group !== undefined && ch.ecPointFormats && !ch.ecPointFormats.includes(0)) {
      // RFC 8422 5.1.2: the uncompressed format is mandatory.
      throw illegalParameter('ec_point_formats does not include uncompressed');
    }
    this.suite = sel.suite;
    this.hash = sel.suite.hash;
    this.transcript = new Transcript(this.hash);
    this.messages = config.clientAuth ? [] : null;
    this.hashMessage(chRaw);
    setSuiteInfo(info, sel.suite);
    if (group !== undefined) info.group = group;

    // Sessions worth keeping: the extended master secret (RFC 7627 5.3), and a key exchange
    // whose session state says who the peer was (PSK identities are not kept).
    const resumable = this.extended && (sel.kx === 'ECDHE_ECDSA' || sel.kx === 'ECDHE_RSA' || sel.kx === 'RSA');
    if (resumable && config.sessionCache12) this.sessionId = host.random(32);
    // A ring whose keyd keys all expired seals nothing: no ticket is promised then.
    this.issueTicket = resumable && ch.sessionTicket !== undefined && config.ticketKeys?.canSeal() === true;

    // 7.4.1.3 ServerHello.
    const exts: ExtensionOut[] = [];
    if (ch.renegotiationInfo !== undefined || ch.cipherSuites.includes(EMPTY_RENEGOTIATION_INFO_SCSV)) exts.push(extRenegotiationInfoEmpty());
    if (this.extended) exts.push(extExtendedMasterSecret());
    if (group !== undefined && ch.ecPointFormats) exts.push(extEcPointFormatsUncompressed());
    if (alpn !== undefined) exts.push(extAlpn(alpn));
    if (sel.byName) exts.push(extServerNameAck());
    // RFC 5077 3.2: an empty SessionTicket says a NewSessionTicket will come.
    if (this.issueTicket) exts.push(sessionTicketExt.encode(new Uint8Array(0)));
    const serverHello = encodeServerHello({ random: this.serverRandom, sessionId: this.sessionId, cipherSuite: sel.suite.suite, extensions: exts });
    this.sendMessage(serverHello);

    // 7.4.2 Certificate.
    if ('cert' in sel) this.sendMessage(encodeCertificate12(sel.cert.chain));

    // 7.4.3 ServerKeyExchange, 7.4.5 ServerHelloDone.
    switch (sel.kx) {
      case 'ECDHE_ECDSA':
      case 'ECDHE_RSA': {
        const ecdhe = host.keyShareFactory(sel.group);
        const params = encodeEcdhParams(sel.group, ecdhe.publicKey);
        // RFC 8422 5.4: the signature covers client_random || server_random || ServerECDHParams.
        const input = Buffer.concat([this.clientRandom, this.serverRandom, params]);
        info.signatureScheme = sel.scheme;
        const context: OperationContext = {
          ...host.operationContext(),
          tlsVersion: 'TLSv1.2',
          purpose: 'tls12-server-key-exchange',
          // For a key holder in bound mode.
          handshakeMessages: [chRaw, serverHello],
        };
        const opId = host.requestKeyOperation({ kind: 'sign', key: sel.cert.key, scheme: sel.scheme, message: input, context });
        this.state = { name: 'awaitSignature', opId, scheme: sel.scheme, input, params, ecdhe, cert: sel.cert };
        return;
      }
      case 'ECDHE_PSK': {
        const ecdhe = host.keyShareFactory(sel.group);
        this.sendMessage(encodeServerKeyExchangePsk(this.identityHint(), encodeEcdhParams(sel.group, ecdhe.publicKey)));
        this.state = this.sendServerHelloDone({ kx: 'ECDHE_PSK', ecdhe, holder: sel.holder });
        return;
      }
      case 'RSA':
        this.state = this.sendServerHelloDone({ kx: 'RSA', decrypter: sel.decrypter });
        return;
      case 'PSK':
        if (config.psk?.identityHint !== undefined) this.sendMessage(encodeServerKeyExchangePsk(this.identityHint()));
        this.state = this.sendServerHelloDone({ kx: 'PSK', holder: sel.holder });
        return;
    }
  }

  /**
   * 7.3 abbreviated handshake: ServerHello echoing the client's session id, a fresh ticket
   * when the one presented needs reissuing, then our ChangeCipherSpec and Finished under
   * keys from the session's master secret and the new randoms. No key-holder call.
   */
  private resume(r: Resumption): State {
    const { ch, host, config } = this;
    const info = host.info;
    setSuiteInfo(info, r.suite);
    info.resumed = true;
    if (r.state.peerCertificates.length > 0) info.peerCertificates = r.state.peerCertificates;
    const alpn = chooseAlpn(ch.alpn, config.alpnProtocols);
    if (alpn !== undefined) info.alpnProtocol = alpn;
    // RFC 5246 7.2.2: a session whose connection ends in a fatal alert is not resumed again.
    const cachedId = r.cachedId;
    if (cachedId) host.onFatalAlert(() => config.sessionCache12?.delete(cachedId));

    const exts: ExtensionOut[] = [];
    if (ch.renegotiationInfo !== undefined || ch.cipherSuites.includes(EMPTY_RENEGOTIATION_INFO_SCSV)) exts.push(extRenegotiationInfoEmpty());
    exts.push(extExtendedMasterSecret());
    if (alpn !== undefined) exts.push(extAlpn(alpn));
    // No server_name: RFC 6066 3 forbids it when resuming.
    const reissue = r.reissueTicket && config.ticketKeys?.canSeal() === true;
    if (reissue) exts.push(sessionTicketExt.encode(new Uint8Array(0)));
    // RFC 5246 7.4.1.3 / RFC 5077 3.4: the client's session id comes back, saying "resumed".
    this.sendMessage(encodeServerHello({ random: this.serverRandom, sessionId: ch.sessionId, cipherSuite: r.suite.suite, extensions: exts }));
    if (reissue) this.sendTicket({ ...r.state, issuedAt: host.now() });
    const keys = this.keysFor(Buffer.from(r.state.secret));
    this.sendChangeCipherSpecAndFinished(keys);
    return { name: 'awaitChangeCipherSpec', keys };
  }

  get wait(): Wait {
    const st = this.state;
    switch (st.name) {
      case 'awaitSignature':
      case 'awaitPremaster':
      case 'awaitPskMasterSecret':
        return { on: 'keyOperation', id: st.opId };
      case 'awaitClientKeyExchange':
        return EXPECT_CLIENT_KEY_EXCHANGE;
      case 'awaitClientCertificate':
        return EXPECT_CERTIFICATE;
      case 'verifyingClient':
        return { on: 'peerVerification', id: st.id };
      case 'awaitClientCertificateVerify':
        return EXPECT_CERTIFICATE_VERIFY;
      case 'awaitChangeCipherSpec':
        return EXPECT_CCS;
      case 'awaitFinished':
        return EXPECT_FINISHED;
      case 'done':
        return EXPECT_NOTHING;
    }
  }

  /** TLS 1.2 has no compatibility CCS: its CCS goes to handleChangeCipherSpec. */
  readonly acceptsCompatCcs = false;

  private identityHint(): Uint8Array {
    return Buffer.from(this.config.psk?.identityHint ?? '', 'utf8');
  }

  /** 7.4.4 (mutual TLS, certificate suites), 7.4.5. */
  private sendServerHelloDone(exchange: KeyExchangeState): State {
    const clientAuth = this.config.clientAuth;
    const askClient = clientAuth !== undefined && exchange.kx !== 'PSK' && exchange.kx !== 'ECDHE_PSK';
    if (askClient) {
      this.sendMessage(
        encodeCertificateRequest12({
          certificateTypes: Uint8Array.of(ClientCertificateType.rsa_sign, ClientCertificateType.ecdsa_sign),
          signatureAlgorithms: CLIENT_SCHEMES12,
          certificateAuthorities: clientAuth.certificateAuthorities,
        }),
      );
    }
    this.sendMessage(encodeServerHelloDone());
    this.host.flush();
    return askClient ? { name: 'awaitClientCertificate', exchange } : { name: 'awaitClientKeyExchange', exchange };
  }

  /** 7.4.6: the client's chain (maybe empty), judged by the driver. */
  private handleClientCertificate(msg: HandshakeMessage, exchange: KeyExchangeState): void {
    const chain = parseCertificate12(msg.body);
    const clientLeaf = chain.length > 0 ? readCertificate(chain[0], 'client') : undefined;
    this.hashMessage(msg.raw);
    this.host.info.peerCertificates = chain;
    const id = this.host.requestPeerVerification({ peer: 'client', chain });
    this.state = { name: 'verifyingClient', id, exchange, clientLeaf };
  }

  peerVerified(id: number): void {
    const st = this.state;
    if (st.name !== 'verifyingClient' || st.id !== id) throw new TlsAlertError(AlertDescription.internal_error, 'unexpected peer verification');
    this.state = { name: 'awaitClientKeyExchange', exchange: st.exchange, clientLeaf: st.clientLeaf };
  }

  /** 7.4.8: the client's signature over every handshake message through ClientKeyExchange. */
  private handleClientCertificateVerify(msg: HandshakeMessage, st: Extract<State, { name: 'awaitClientCertificateVerify' }>): void {
    const cv = parseCertificateVerify(msg.body);
    if (!CLIENT_SCHEMES12.includes(cv.scheme)) throw illegalParameter('client signed with a scheme that was not offered');
    checkPeerScheme(st.clientLeaf.publicKey, cv.scheme, 'TLSv1.2', 'client');
    if (!verifySignature12(st.clientLeaf.publicKey, cv.scheme, st.signed, cv.signature)) {
      throw new TlsAlertError(AlertDescription.decrypt_error, 'client CertificateVerify does not verify against its certificate');
    }
    this.host.info.clientSignatureScheme = cv.scheme;
    this.hashMessage(msg.raw);
    this.state = { name: 'awaitChangeCipherSpec', keys: st.keys };
  }

  handleMessage(msg: HandshakeMessage): void {
    const st = this.state;
    if (st.name === 'awaitClientCertificate') return this.handleClientCertificate(msg, st.exchange);
    if (st.name === 'awaitClientKeyExchange') return this.handleClientKeyExchange(msg, st.exchange, st.clientLeaf);
    if (st.name === 'awaitClientCertificateVerify') return this.handleClientCertificateVerify(msg, st);
    if (st.name === 'awaitFinished') return this.handleClientFinished(msg, st.keys);
  }

  /** 7.4.7: the client's key exchange; the secret comes from ECDHE here or from a key holder. */
  private handleClientKeyExchange(msg: HandshakeMessage, exchange: KeyExchangeState, clientLeaf: X509Certificate | undefined): void {
    const cke = parseClientKeyExchange(msg.body, exchange.kx);
    let shared: Buffer | null = null;
    if ((cke.kind === 'ECDHE' || cke.kind === 'ECDHE_PSK') && (exchange.kx === 'ECDHE' || exchange.kx === 'ECDHE_PSK')) {
      shared = exchange.ecdhe.computeSharedSecret(cke.publicKey);
    }
    // RFC 7627 4: the session hash runs through the ClientKeyExchange.
    this.hashMessage(msg.raw);
    const host = this.host;
    switch (cke.kind) {
      case 'ECDHE':
        if (!shared) break;
        this.state = this.useMasterSecret(this.masterFromPremaster(shared), clientLeaf);
        return;
      case 'RSA': {
        if (exchange.kx !== 'RSA') break;
        const context: OperationContext = { ...host.operationContext(), tlsVersion: 'TLSv1.2' };
        const opId = host.requestKeyOperation({
          kind: 'decryptPremaster',
          key: exchange.decrypter,
          ciphertext: Uint8Array.from(cke.encryptedPremaster),
          clientVersion: this.ch.legacyVersion,
          context,
        });
        this.state = { name: 'awaitPremaster', opId, clientLeaf };
        return;
      }
      case 'PSK':
      case 'ECDHE_PSK': {
        if (exchange.kx !== 'PSK' && exchange.kx !== 'ECDHE_PSK') break;
        host.info.pskIdentity = Buffer.from(cke.identity).toString('utf8');
        const context: OperationContext = { ...host.operationContext(), tlsVersion: 'TLSv1.2' };
        const opId = host.requestKeyOperation({
          kind: 'pskMasterSecret',
          holder: exchange.holder,
          request: {
            identity: Uint8Array.from(cke.identity),
            otherSecret: shared,
            hash: this.hash,
            extended: this.extended,
            seed: this.extended ? this.transcript.current() : Buffer.concat([this.clientRandom, this.serverRandom]),
          },
          context,
        });
        this.state = { name: 'awaitPskMasterSecret', opId, otherSecret: shared };
        return;
      }
    }
    throw new TlsAlertError(AlertDescription.internal_error, 'ClientKeyExchange does not fit the key exchange');
  }

  private masterFromPremaster(premaster: Uint8Array): Buffer {
    const ms = this.extended
      ? tls12ExtendedMasterSecret(this.hash, premaster, this.transcript.current())
      : tls12MasterSecret(this.hash, premaster, this.clientRandom, this.serverRandom);
    premaster.fill(0);
    return ms;
  }

  /** 6.3: the key block of `masterSecret` and this handshake's randoms. */
  private keysFor(masterSecret: Buffer): Keys12 {
    const kb = tls12KeyBlock(this.hash, masterSecret, this.clientRandom, this.serverRandom, this.suite.aead);
    const clientAead = new RecordAead(this.suite.aead, kb.clientKey, kb.clientIv, 'tls12');
    const serverAead = new RecordAead(this.suite.aead, kb.serverKey, kb.serverIv, 'tls12');
    return { masterSecret, clientAead, serverAead };
  }

  /** The keys, then wait for the client's CertificateVerify (when it sent a certificate) or ChangeCipherSpec. */
  private useMasterSecret(masterSecret: Buffer, clientLeaf?: X509Certificate): State {
    const keys = this.keysFor(masterSecret);
    if (clientLeaf) return { name: 'awaitClientCertificateVerify', keys, clientLeaf, signed: Buffer.concat(this.messages ?? []) };
    return { name: 'awaitChangeCipherSpec', keys };
  }

  keyOperationResult(opId: number, result: Uint8Array): void {
    const st = this.state;
    switch (st.name) {
      case 'awaitSignature': {
        if (st.opId !== opId) break;
        checkHolderSignature(st.cert, st.scheme, st.input, result, 'TLSv1.2');
        this.sendMessage(encodeServerKeyExchangeSigned(st.params, st.scheme, result));
        this.state = this.sendServerHelloDone({ kx: 'ECDHE', ecdhe: st.ecdhe });
        return;
      }
      case 'awaitPremaster':
        if (st.opId !== opId) break;
        // Whatever 48 bytes come back are the premaster: a bad ciphertext fails at Finished.
        if (result.length !== PREMASTER_LENGTH) throw new TlsAlertError(AlertDescription.internal_error, `key holder returned a premaster of ${result.length} bytes`);
        this.state = this.useMasterSecret(this.masterFromPremaster(Uint8Array.from(result)), st.clientLeaf);
        return;
      case 'awaitPskMasterSecret':
        if (st.opId !== opId) break;
        st.otherSecret?.fill(0);
        if (result.length !== MASTER_SECRET_LENGTH) throw new TlsAlertError(AlertDescription.internal_error, `PSK holder returned a master secret of ${result.length} bytes`);
        this.state = this.useMasterSecret(Buffer.from(result));
        return;
      default:
        break;
    }
    throw new TlsAlertError(AlertDescription.internal_error, 'unexpected key operation result');
  }

  /**
   * A key operation was rejected. RSA key exchange: any rejection but "key holder
   * unavailable" continues with a random premaster, so the handshake fails at Finished
   * with decrypt_error exactly as for a bad ciphertext (a holder that errors on bad
   * padding must not become a Bleichenbacher oracle). An unavailable holder is an
   * internal_error: that is about the holder, not about the ciphertext. PSK: an unknown
   * identity the holder reports is unknown_psk_identity (RFC 4279 2).
   */
  keyOperationFailed(opId: number, error: Error): void {
    const st = this.state;
    if (st.name === 'awaitPremaster' && st.opId === opId) {
      if (error instanceof KeyOperationError && error.code === 'unavailable') {
        throw new TlsAlertError(AlertDescription.internal_error, `key holder unavailable: ${error.message}`);
      }
      return this.keyOperationResult(opId, this.host.random(PREMASTER_LENGTH));
    }
    if (st.name === 'awaitPskMasterSecret' && st.opId === opId) {
      st.otherSecret?.fill(0);
      if (error instanceof UnknownPskIdentityError) throw new TlsAlertError(AlertDescription.unknown_psk_identity, 'unknown PSK identity');
    }
    throw new TlsAlertError(AlertDescription.internal_error, `key operation failed: ${error.message}`);
  }

  /** 7.1: the client's ChangeCipherSpec switches its direction to the new keys. */
  handleChangeCipherSpec(): void {
    const st = this.state;
    if (st.name !== 'awaitChangeCipherSpec') throw unexpectedMessage(`ChangeCipherSpec while ${st.name}`);
    if (this.host.handshakeFragmentPending()) throw unexpectedMessage('ChangeCipherSpec inside a handshake message');
    this.host.setReadKey(st.keys.clientAead);
    this.state = { name: 'awaitFinished', keys: st.keys };
  }

  /**
   * 7.4.9: check the client's Finished. A full handshake then sends the ticket (RFC 5077
   * 3.3), our ChangeCipherSpec and Finished, and keeps the session; a resumed one is done.
   */
  private handleClientFinished(msg: HandshakeMessage, keys: Keys12): void {
    const ms = keys.masterSecret;
    const expected = tls12VerifyData(this.hash, ms, 'client finished', this.transcript.current());
    const got = parseFinished(msg.body, VERIFY_DATA_LENGTH_12);
    if (!timingSafeEqual(got, expected)) throw new TlsAlertError(AlertDescription.decrypt_error, 'client Finished does not verify');
    this.hashMessage(msg.raw);
    if (this.host.handshakeFragmentPending()) throw unexpectedMessage('handshake data after Finished');
    if (!this.resumption) {
      const session = this.issueTicket || this.sessionId.length > 0 ? this.sessionState(ms) : undefined;
      if (session && this.issueTicket) this.sendTicket(session);
      this.sendChangeCipherSpecAndFinished(keys);
      if (session && this.sessionId.length > 0) this.cacheSession(session);
    }
    this.state = { name: 'done' };
    this.host.handshakeComplete({ version: 'TLSv1.2', hash: this.hash, masterSecret: ms, clientRandom: this.clientRandom, serverRandom: this.serverRandom });
  }

  /** 7.1, 7.4.9: our ChangeCipherSpec, then Finished over everything so far under the new keys. */
  private sendChangeCipherSpecAndFinished(keys: Keys12): void {
    const host = this.host;
    host.sendChangeCipherSpec();
    host.setWriteKey(keys.serverAead);
    this.sendMessage(encodeFinished(tls12VerifyData(this.hash, keys.masterSecret, 'server finished', this.transcript.current())));
    host.flush();
  }

  /** What a full handshake leaves to resume: its master secret, suite, SNI, ALPN and the client's chain. */
  private sessionState(masterSecret: Buffer): SessionState {
    const now = this.host.now();
    const info = this.host.info;
    return {
      version: 'TLSv1.2',
      cipherSuite: this.suite.suite,
      secret: masterSecret,
      issuedAt: now,
      authenticatedAt: now,
      // Each store stamps its own: the ring's ticket lifetime, the cache's.
      lifetime: 0,
      ageAdd: 0,
      serverName: this.ch.serverName,
      alpnProtocol: info.alpnProtocol,
      extendedMasterSecret: true,
      peerCertificates: info.peerCertificates ?? [],
    };
  }

  /**
   * RFC 5077 3.3: NewSessionTicket, lifetime hint = the key ring's ticket lifetime. Should the
   * ring's last key expire after the ServerHello promised a ticket, the ticket is empty, as
   * 3.3 allows a server that changed its mind; the handshake goes on.
   */
  private sendTicket(session: SessionState): void {
    const ring = this.config.ticketKeys!;
    const plain = encodeSessionState({ ...session, lifetime: ring.ticketLifetime });
    let ticket: Uint8Array;
    try {
      ticket = ring.seal(plain);
    } catch {
      ticket = new Uint8Array(0);
    } finally {
      plain.fill(0);
    }
    // A ticket past the u16 the message allows (a huge client chain inside) is sent empty (RFC 5077 3.3).
    if (ticket.length > 0xffff) ticket = new Uint8Array(0);
    this.sendMessage(encodeNewSessionTicket12({ lifetimeHint: ticket.length > 0 ? ring.ticketLifetime : 0, ticket }));
  }

  /** Keeps the session under the id we sent; a fatal alert later drops it (RFC 5246 7.2.2). */
  private cacheSession(session: SessionState): void {
    const cache = this.config.sessionCache12!;
    const id = this.sessionId;
    cache.set(id, { ...session, lifetime: cache.lifetime });
    this.host.onFatalAlert(() => cache.delete(id));
  }

  private sendMessage(raw: Uint8Array): void {
    this.hashMessage(raw);
    this.host.sendHandshake(raw);
  }

  /** Adds a message to the transcript, and to what a client's CertificateVerify covers when one is asked for. */
  private hashMessage(raw: Uint8Array): void {
    this.transcript.update(raw);
    this.messages?.push(raw);
  }
}

/** The negotiated suite's names, for getCipher() and logs. */
function setSuiteInfo(info: HandshakeHost['info'], suite: CipherSuiteInfo): void {
  info.cipherSuite = suite.suite;
  info.cipherName = suite.name;
  info.opensslCipherName = suite.opensslName;
}

/**
 * The session the ClientHello asks to resume, when it may be: a ticket (RFC 5077 3.4) when
 * the client sent one and tickets are on, else the session id from the cache (7.4.1.2).
 * As OpenSSL, a ticket decides alone: one that cannot be opened, is expired or is not a
 * TLS 1.2 session means a full handshake, the session id beside it is not looked up. The
 * session must have used the extended master secret, be for the same SNI, and its suite
 * must be offered by the client and still configured here. A session that used the
 * extended master secret offered without it aborts (RFC 7627 5.3).
 */
function findResumption(config: ServerConfig, ch: ClientHello, now: number): Resumption | undefined {
  let found: Omit<Resumption, 'suite'> | undefined;
  const ticket = ch.sessionTicket;
  if (ticket !== undefined && ticket.length > 0 && config.ticketKeys) {
    const opened = config.ticketKeys.open(ticket);
    if (!opened) return undefined;
    const state = parseSessionState(opened.plaintext);
    opened.plaintext.fill(0);
    if (!state || state.version !== 'TLSv1.2' || sessionAgeProblem(state, now) !== undefined) return undefined;
    found = { state, reissueTicket: !opened.currentKey };
  } else if (ch.sessionId.length > 0 && config.sessionCache12) {
    const state = config.sessionCache12.get(ch.sessionId);
    if (!state) return undefined;
    found = { state, reissueTicket: false, cachedId: ch.sessionId };
  } else {
    return undefined;
  }
  const { state } = found;
  const suite = suiteInfo(state.cipherSuite);
  if (!suite || suite.version !== 'TLSv1.2' || !ch.cipherSuites.includes(suite.suite) || !config.tls12CipherSuites.includes(suite.suite)) return undefined;
  if (suite.keyExchange === 'RSA' && !config.rsaKeyExchange) return undefined;
  if (state.serverName !== ch.serverName) return undefined;
  // A server asking for client certificates resumes only sessions that authenticated the client.
  if (config.clientAuth && state.peerCertificates.length === 0) return undefined;
  if (!state.extendedMasterSecret) return undefined;
  if (!ch.extendedMasterSecret) {
    throw new TlsAlertError(AlertDescription.handshake_failure, 'the session used the extended master secret and the ClientHello resuming it does not offer it (RFC 7627 5.3)');
  }
  return { ...found, suite };
}

/** RFC 5246 7.4.1.2 and RFC 5746 3.6 checks on a ClientHello that negotiates TLS 1.2. */
function checkClientHello12(ch: ClientHello): void {
  if (!ch.compressionMethods.includes(0)) throw illegalParameter('ClientHello does not offer the null compression method');
  // RFC 5746 3.6: on an initial handshake the renegotiated_connection must be empty.
  if (ch.renegotiationInfo !== undefined && ch.renegotiationInfo.length !== 0) {
    throw new TlsAlertError(AlertDescription.handshake_failure, 'non-empty renegotiation_info on an initial handshake');
  }
}

/**
 * The ECDHE group: the server's first the client lists (RFC 8422 5.1: never a curve it did
 * not list). Without supported_groups: P-256 for a hello without any extension (RFC 4492
 * let such clients, which could not send one, leave it out); none for a hello that has
 * extensions but not this one, which is a client without a curve to offer (OpenSSL 3.0 in
 * TLS 1.2 with only FFDHE groups) and would refuse any curve, as OpenSSL and Go servers see it.
 */
function chooseGroup12(ch: ClientHello, serverGroups: readonly NamedGroup[]): NamedGroup | undefined {
  // Only curves are ECDHE groups (the hybrid is TLS 1.3 only; FFDHE is DHE, not offered).
  const ecdhe = serverGroups.filter((g) => groupSpec(g).tls12 === 'ECDHE');
  if (!ch.supportedGroups) {
    const legacy = ch.extensions.length === 0 && ecdhe.includes(TLS12_GROUP_WITHOUT_SUPPORTED_GROUPS);
    return legacy ? TLS12_GROUP_WITHOUT_SUPPORTED_GROUPS : undefined;
  }
  return ecdhe.find((g) => ch.supportedGroups!.includes(g));
}

/** NamedGroup of the curve of an ECDSA key. */
const ECDSA_CURVE_GROUP: Partial<Record<string, number>> = { 'ec-p256': 23, 'ec-p384': 24, 'ec-p521': 25 };

/**
 * RFC 8422 5.1: in TLS 1.2 supported_groups also names the curves the client can verify
 * an ECDSA certificate on (EdDSA keys are governed by signature_algorithms alone).
 */
function curveAllowed(c: CertifiedKey, ch: ClientHello): boolean {
  const group = ECDSA_CURVE_GROUP[keyKindOf(c.publicKey) ?? ''];
  return group === undefined || !ch.supportedGroups || ch.supportedGroups.includes(group);
}

/**
 * Chooses the suite in server preference order: the first one the client offers that
 * this configuration can complete (a group in common for ECDHE, a certificate of the
 * right key type for the client's SNI with a signature scheme it accepts, RSA decryption
 * or a PSK holder when enabled).
 */
function selectSuite(config: ServerConfig, ch: ClientHello): Selection {
  const sni = ch.serverName;
  const sigAlgs = ch.signatureAlgorithms ?? [];
  const group = chooseGroup12(ch, config.groups);
  // When SNI names one of our certificates, only certificates for that name may serve it.
  const anyNamed = sni !== undefined && config.certificates.some((c) => c.names.some((n) => nameMatches(n, sni) !== null));
  const unknownName = anyNamed ? 'reject' : config.unknownServerName;
  let refusedName = false;
  for (const code of config.tls12CipherSuites) {
    if (!ch.cipherSuites.includes(code)) continue;
    const suite = suiteInfo(code);
    if (!suite || suite.version !== 'TLSv1.2') continue;
    const kx = suite.keyExchange as Kx12;
    if (kx === 'ECDHE_ECDSA' || kx === 'ECDHE_RSA' || kx === 'RSA') {
      if (kx === 'RSA' && !config.rsaKeyExchange) continue;
      if (kx !== 'RSA' && group === undefined) continue;
      const certs = config.certificates.filter((c) =>
        // ECDHE_RSA takes an RSASSA-PSS key too (RFC 8446 4.2.3: rsa_pss_pss_* in TLS 1.2); RSA key exchange never (certifiedKey gives it no decrypter).
        kx === 'ECDHE_ECDSA' ? !isRsaKey(c.publicKey) && curveAllowed(c, ch) : isRsaKey(c.publicKey) && (kx !== 'RSA' || c.decrypter !== undefined),
      );
      const choice = chooseCertificate(certs, sni, kx === 'RSA' ? ANY_SCHEME : sigAlgs, 'TLSv1.2', unknownName);
      if (!choice.ok) {
        if (choice.reason === 'unrecognized_name' && !anyNamed) refusedName = true;
        continue;
      }
      if (kx === 'RSA') return { suite, kx, cert: choice.cert, decrypter: choice.cert.decrypter!, byName: choice.byName };
      return { suite, kx, cert: choice.cert, scheme: choice.scheme, byName: choice.byName, group: group! };
    }
    if (!config.psk) continue;
    if (kx === 'PSK') return { suite, kx, byName: false, holder: config.psk.holder };
    if (kx === 'ECDHE_PSK' && group !== undefined) return { suite, kx, byName: false, group, holder: config.psk.holder };
  }
  if (refusedName) throw new TlsAlertError(AlertDescription.unrecognized_name, `no certificate for ${sni}`);
  throw new TlsAlertError(AlertDescription.handshake_failure, noSuiteReason(config, ch, group));
}

/**
 * Why no TLS 1.2 suite fits, in the terms a peer's operator can act on: suites keyward
 * does not implement at all (CBC, DHE: docs/security.md), or ECDHE suites without a curve
 * in common (RFC 8422 5.1: no curve the client did not list; FFDHE-only lists get no DHE).
 */
function noSuiteReason(config: ServerConfig, ch: ClientHello, group: NamedGroup | undefined): string {
  const implemented = ch.cipherSuites.some((c) => suiteInfo(c)?.version === 'TLSv1.2');
  if (!implemented) return 'the client offers no TLS 1.2 cipher suite keyward implements (AEAD suites only: no CBC, no DHE)';
  const offersEcdhe = config.tls12CipherSuites.some((c) => ch.cipherSuites.includes(c) && suiteInfo(c)!.keyExchange.startsWith('ECDHE'));
  if (offersEcdhe && group === undefined) {
    const listed = ch.supportedGroups ? `lists ${ch.supportedGroups.map(groupName).join(', ')}` : 'is absent from a hello with other extensions';
    return `no ECDHE curve in common: the client's supported_groups ${listed}, and keyward has no DHE suites for FFDHE groups`;
  }
  return 'no TLS 1.2 cipher suite in common (key exchange, group, certificate and signature scheme)';
}
