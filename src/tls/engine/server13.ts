import { timingSafeEqual, type X509Certificate } from 'node:crypto';
import type { OperationContext } from '../../keys/keyOperations.js';
import type { RecordAead } from '../crypto/aead.js';
import { suiteInfo, type CipherSuiteInfo } from '../crypto/cipherSuites.js';
import { acceptKeyShare, groupSpec, type AcceptedKeyShare, type KeyExchange, type NamedGroup } from '../crypto/groups.js';
import { tls13FinishedVerifyData, tls13RecordAead, tls13ResumptionPsk } from '../crypto/keySchedule13.js';
import { schemeInfo, verifySignature, type SignatureScheme } from '../crypto/signatureSchemes.js';
import { Transcript } from '../crypto/transcript.js';
import { encodeSessionState, MAX_TICKET_LIFETIME, parseSessionState, sessionAgeProblem, type SessionState } from '../resumption/sessionState.js';
import { AlertDescription } from '../wire/alerts.js';
import { parseClientHello, type ClientHello, type KeyShareEntry } from '../wire/clientHello.js';
import { ExtensionType, HandshakeType, HRR_RANDOM, TLS13 } from '../wire/constants.js';
import { TlsAlertError, illegalParameter } from '../wire/errors.js';
import { encodeCertificateRequest13, parseCertificate13 } from '../wire/certificate13.js';
import { parseCertificateVerify } from '../wire/certificateVerify.js';
import { certificateAuthoritiesExt, signatureAlgorithmsExt } from '../wire/extensionCodecs.js';
import {
  certificateVerifyContent,
  encodeCertificateVerify,
  encodeEncryptedExtensions,
  encodeFinished,
  encodeServerHello,
  extAlpn,
  extCookie,
  extKeyShareHrr,
  extKeyShareServer,
  extRecordSizeLimit,
  extServerNameAck,
  extSupportedGroups,
  extSupportedVersionsServer,
  parseFinished,
  type ExtensionOut,
} from '../wire/handshake.js';
import { encodeNewSessionTicket13 } from '../wire/messages13.js';
import { PskKeyExchangeMode, preSharedKeySelectedExt } from '../wire/preSharedKey.js';
import { checkHolderSignature, checkPeerScheme, chooseCertificate, readCertificate, type CertifiedKey } from './certificates.js';
import type { ServerConfig, Tls13PskServerConfig } from './config.js';
import { VERIFIED_SIGNATURE_SCHEMES } from './defaults.js';
import type { Handshake, HandshakeHost, HandshakeMessage, Wait } from './handshakeHost.js';
import { holderKeyStages, localKeyStages, StageRunner, type KeyStages13, type TrafficPair } from './keyStages13.js';
import { chooseAlpn, chooseGroup, chooseSuite } from './negotiation.js';
import { serverCertificate13 } from './serverCertificate13.js';

/** Our own record_size_limit: the largest TLS 1.3 inner plaintext, 2^14 + 1 (RFC 8449 4). */
export const OWN_RECORD_SIZE_LIMIT = (1 << 14) + 1;

/** Extensions that may legitimately change between the two ClientHellos (RFC 8446 4.1.2). */
const MAY_CHANGE_AFTER_HRR = new Set<number>([ExtensionType.key_share, ExtensionType.cookie, ExtensionType.early_data, ExtensionType.pre_shared_key, ExtensionType.padding]);

/** The signature the key holder is making: what it signs, with which key and scheme. */
interface PendingSignature {
  readonly opId: number;
  readonly cert: CertifiedKey;
  readonly scheme: SignatureScheme;
  readonly input: Uint8Array;
}

/** A ticket from the ClientHello's pre_shared_key that opened and passed every check (RFC 8446 4.2.11, 4.6.1). */
interface OfferedTicket {
  /** Its place among the offered identities (the ServerHello's selected_identity). */
  readonly index: number;
  readonly state: SessionState;
}

/** The tickets of a ClientHello: the first usable one, and the places of every identity that opened as this server's ticket. */
interface OfferedTickets {
  readonly usable?: OfferedTicket;
  readonly opened: ReadonlySet<number>;
}

/** An offered identity that is an external PSK for the holder (not one of this server's tickets). */
interface OfferedExternalPsk {
  readonly index: number;
  readonly identity: Uint8Array;
}

/** The PSK a handshake goes on with once its binder verifies: its place, its key schedule, and what accepting it records. */
interface ChosenPsk {
  readonly index: number;
  readonly stages: KeyStages13;
  readonly accept: () => void;
}

/** The listed identities of a tls13Psk configuration (hex of their bytes), computed once per configuration. */
const LISTED_IDENTITIES = new WeakMap<Tls13PskServerConfig, ReadonlySet<string> | null>();

function listedIdentities(p: Tls13PskServerConfig): ReadonlySet<string> | null {
  let set = LISTED_IDENTITIES.get(p);
  if (set === undefined) {
    set = p.identities ? new Set(p.identities.map((id) => Buffer.from(typeof id === 'string' ? Buffer.from(id, 'utf8') : id).toString('hex'))) : null;
    LISTED_IDENTITIES.set(p, set);
  }
  return set;
}

/** Whether `p` takes the external PSK `identity`: listed, or no list (also: a ticket from a withdrawn PSK does not resume). */
function takesPsk(p: Tls13PskServerConfig | undefined, identity: Uint8Array): boolean {
  if (!p) return false;
  const listed = listedIdentities(p);
  return listed === null || listed.has(Buffer.from(identity).toString('hex'));
}

type State =
  | { readonly name: 'awaitClientHello2'; readonly group: NamedGroup; readonly cookie?: Uint8Array }
  /** The key holder signs while the (EC)DHE secret and handshake keys are computed (deferred work). */
  | { readonly name: 'signingBeforeKeys'; readonly sig: PendingSignature }
  | { readonly name: 'awaitSignature'; readonly sig: PendingSignature; readonly secrets: TrafficPair }
  | { readonly name: 'awaitClientCertificate'; readonly secrets: AfterServerFinished }
  | { readonly name: 'verifyingClient'; readonly id: number; readonly secrets: AfterServerFinished; readonly leaf?: X509Certificate }
  | { readonly name: 'awaitClientCertificateVerify'; readonly secrets: AfterServerFinished; readonly leaf: X509Certificate }
  | { readonly name: 'awaitFinished'; readonly secrets: AfterServerFinished }
  /** A key-schedule stage runs (it waits on a key operation when a key holder keeps the PSK). */
  | { readonly name: 'keySchedule' }
  | { readonly name: 'done' };

/** The secrets the rest of the handshake needs once the server's Finished is sent. */
interface AfterServerFinished {
  readonly clientHandshakeSecret: Buffer;
  readonly clientAppSecret: Buffer;
  readonly serverAppSecret: Buffer;
  readonly exporterMaster: Buffer;
}

const EXPECT_CLIENT_HELLO: Wait = { on: 'message', expect: [HandshakeType.client_hello] };
const EXPECT_FINISHED: Wait = { on: 'message', expect: [HandshakeType.finished] };
const EXPECT_CERTIFICATE: Wait = { on: 'message', expect: [HandshakeType.certificate] };
const EXPECT_CERTIFICATE_VERIFY: Wait = { on: 'message', expect: [HandshakeType.certificate_verify] };
/** Schemes a client may sign its CertificateVerify with: every TLS 1.3 scheme keyward verifies. */
const CLIENT_SCHEMES13: readonly number[] = VERIFIED_SIGNATURE_SCHEMES.filter((s) => schemeInfo(s)!.tls13);
const EXPECT_NOTHING: Wait = { on: 'message', expect: [] };

/**
 * TLS 1.3 server handshake (RFC 8446). The steps read in the RFC's order: process the
 * ClientHello (4.1.2) and its PSKs (4.2.11: a resumption ticket, or an external PSK whose
 * holder runs the key schedule), maybe ask for a retry (4.1.4), send ServerHello (4.1.3),
 * EncryptedExtensions (4.3.1), then either Certificate (4.4.2) and CertificateVerify
 * (4.4.3, signed by the key holder) or, with a PSK, nothing of the kind, and Finished
 * (4.4.4); read the client's Finished and send NewSessionTickets (4.6.1).
 */
export class Server13Handshake implements Handshake {
  private state: State = { name: 'keySchedule' };
  private readonly suite: CipherSuiteInfo;
  private readonly transcript: Transcript;
  /** The messages hashed so far, for a key holder that checks what it signs (bound mode). */
  private readonly hashedMessages: Uint8Array[] = [];
  private readonly firstHello: ClientHello;
  private readonly runner: StageRunner;
  private stages: KeyStages13;
  /** The (EC)DHE shared secret, which every stage after the handshake secrets names (null for psk_ke). */
  private dhe: Uint8Array | null = null;
  /** The session this handshake resumes, if it does. */
  private resumedFrom: SessionState | undefined;
  /** Whether a PSK (a ticket or an external one) authenticates this handshake: no certificates then. */
  private pskAuthenticated = false;
  /** The external PSK identity this handshake took, which its tickets carry. */
  private externalIdentity: Uint8Array | undefined;
  private compatCcsSent = false;

  constructor(
    private readonly host: HandshakeHost,
    private readonly config: ServerConfig,
    ch: ClientHello,
    chRaw: Uint8Array,
  ) {
    this.firstHello = ch;
    this.runner = new StageRunner(host);
    checkClientHello13(ch, false);
    const preferred = chooseSuite(ch.cipherSuites, config.tls13CipherSuites);
    if (preferred === undefined) throw new TlsAlertError(AlertDescription.handshake_failure, 'no TLS 1.3 cipher suite in common');
    const tickets = this.offeredTickets(ch, suiteInfo(preferred)!.hash);
    // An external PSK is used with its own hash (4.2.11): the suite follows it, unless a ticket is taken.
    const pskHash = config.tls13Psk?.hash ?? 'sha256';
    const external = !tickets.usable && this.externalPsk(ch, tickets.opened, pskHash);
    const suite = (external && chooseSuite(ch.cipherSuites, config.tls13CipherSuites.filter((c) => suiteInfo(c)!.hash === pskHash))) || preferred;
    this.suite = suiteInfo(suite)!;
    this.transcript = new Transcript(this.suite.hash);
    this.stages = localKeyStages(this.suite.hash);
    // A failed or abandoned handshake leaves no key-schedule secret behind it.
    host.onAbandoned(() => this.wipeSecrets());
    host.info.version = 'TLSv1.3';
    host.info.cipherSuite = suite;
    host.info.cipherName = this.suite.name;
    host.info.opensslCipherName = this.suite.opensslName;
    host.info.serverName = ch.serverName;
    // keyward never accepts 0-RTT: the client's early records are skipped up to the limit
    // (RFC 8446 4.2.10), under the handshake key or, after a HelloRetryRequest, before it.
    if (ch.earlyData) host.record.skipUndecryptableBytes(config.maxEarlyDataSkip);
    this.respond(ch, chRaw, undefined, this.suite.hash === suiteInfo(preferred)!.hash ? tickets : undefined);
  }

  get wait(): Wait {
    const stage = this.runner.wait;
    if (stage) return stage;
    const st = this.state;
    switch (st.name) {
      case 'awaitClientHello2':
        return EXPECT_CLIENT_HELLO;
      case 'signingBeforeKeys':
      case 'awaitSignature':
        return { on: 'keyOperation', id: st.sig.opId };
      case 'awaitFinished':
        return EXPECT_FINISHED;
      case 'awaitClientCertificate':
        return EXPECT_CERTIFICATE;
      case 'verifyingClient':
        return { on: 'peerVerification', id: st.id };
      case 'awaitClientCertificateVerify':
        return EXPECT_CERTIFICATE_VERIFY;
      case 'keySchedule':
      case 'done':
        return EXPECT_NOTHING;
    }
  }

  get acceptsCompatCcs(): boolean {
    return this.state.name !== 'done';
  }

  /**
   * Answers a ClientHello (the first, or the second after a retry for `share`'s group):
   * with a PSK when one is usable and the key exchange modes allow it (psk_dhe_ke first: it
   * keeps forward secrecy), else a retry or a certificate handshake. A ticket of this
   * server's goes before an external PSK: it costs no call to the holder, and it comes from
   * a handshake this server authenticated (RFC 8446 4.2.11 leaves the choice to the server).
   */
  private respond(ch: ClientHello, raw: Uint8Array, share: KeyShareEntry | undefined, tickets = this.offeredTickets(ch, this.suite.hash)): void {
    const ticket = tickets.usable;
    const external = ticket ? undefined : this.externalPsk(ch, tickets.opened, this.suite.hash);
    const index = ticket?.index ?? external?.index;
    // 4.2.11.2: the binder covers the transcript so far and this hello up to the binders.
    const binderHash = index !== undefined ? this.transcript.currentWith(raw.subarray(0, ch.pskOffer!.bindersOffset)) : undefined;
    this.transcript.update(raw);
    // No copy needed: the handshake assembler hands out views of buffers of its own.
    this.hashedMessages.push(raw);

    const modes = ch.pskKeyExchangeModes ?? new Uint8Array(0);
    const dheMode = modes.includes(PskKeyExchangeMode.psk_dhe_ke);
    const pskOnlyAllowed = ticket ? this.config.allowPskOnlyKeyExchange : this.config.tls13Psk?.allowPskOnly === true;
    const pskOnlyMode = modes.includes(PskKeyExchangeMode.psk_ke) && pskOnlyAllowed;
    const choice = share ? { share } : chooseGroup(ch, this.config.groups);
    const offered = choice && 'share' in choice ? choice.share : undefined;
    const retryWith = choice && 'retryWith' in choice ? choice.retryWith : undefined;
    if (binderHash) {
      const psk = () => (ticket ? this.ticketPsk(ticket) : this.holderPsk(external!));
      if (dheMode && offered) return this.sendPskFlight(ch, psk(), binderHash, offered);
      // psk_ke only when (EC)DHE cannot be had: the client does not allow it or shares no group.
      if (pskOnlyMode && !(dheMode && retryWith !== undefined)) return this.sendPskFlight(ch, psk(), binderHash, undefined);
    }
    if (ticket) ticket.state.secret.fill(0);
    if (retryWith !== undefined) return this.sendHelloRetryRequest(retryWith);
    if (!offered) throw new TlsAlertError(AlertDescription.handshake_failure, 'no key exchange group in common');
    this.sendServerFlight(ch, offered.group, offered.keyExchange);
  }

  /**
   * The offered tickets: the first that opens and may be resumed here (RFC 8446 4.2.11,
   * 4.6.1): TLS 1.3, a suite of `hash`, within its lifetime and seven days of the full
   * handshake, a client age close to ours, the same SNI, and a client certificate when this
   * server asks for one. Anything else is ignored: the handshake goes on without it.
   */
  private offeredTickets(ch: ClientHello, hash: CipherSuiteInfo['hash']): OfferedTickets {
    const ring = this.config.ticketKeys;
    const offer = ch.pskOffer;
    const opened = new Set<number>();
    if (!ring || !offer) return { opened };
    const now = this.host.now();
    for (let index = 0; index < offer.identities.length; index++) {
      const id = offer.identities[index];
      const sealed = ring.open(id.identity);
      if (!sealed) continue;
      opened.add(index);
      const state = parseSessionState(sealed.plaintext);
      sealed.plaintext.fill(0);
      if (!state) continue;
      const usable =
        state.version === 'TLSv1.3' &&
        suiteInfo(state.cipherSuite)?.hash === hash &&
        state.serverName === ch.serverName &&
        // A server asking for client certificates resumes only sessions that authenticated the client (a certificate or an external PSK).
        !(this.config.clientAuth && state.peerCertificates.length === 0 && !state.pskIdentity) &&
        // A session from an external PSK lives only as long as this server still takes that PSK.
        (state.pskIdentity === undefined || takesPsk(this.config.tls13Psk, state.pskIdentity)) &&
        sessionAgeProblem(state, now, id.obfuscatedTicketAge) === undefined;
      if (usable) return { usable: { index, state }, opened };
      state.secret.fill(0);
    }
    return { opened };
  }

  /**
   * The first offered identity that is an external PSK for the holder: not one of this
   * server's tickets (those never leave the front), listed when the configuration lists
   * identities, offered with a mode this server takes, and the suite of the PSK's hash.
   */
  private externalPsk(ch: ClientHello, tickets: ReadonlySet<number>, hash: CipherSuiteInfo['hash']): OfferedExternalPsk | undefined {
    const p = this.config.tls13Psk;
    const offer = ch.pskOffer;
    if (!p || !offer || hash !== (p.hash ?? 'sha256')) return undefined;
    const modes = ch.pskKeyExchangeModes ?? new Uint8Array(0);
    if (!modes.includes(PskKeyExchangeMode.psk_dhe_ke) && !(p.allowPskOnly && modes.includes(PskKeyExchangeMode.psk_ke))) return undefined;
    for (let index = 0; index < offer.identities.length; index++) {
      const identity = offer.identities[index].identity;
      if (!tickets.has(index) && takesPsk(p, identity)) return { index, identity };
    }
    return undefined;
  }

  /** A ticket's PSK: the session's resumption PSK, in the front (it is worth this session only). */
  private ticketPsk(ticket: OfferedTicket): ChosenPsk {
    const stages = localKeyStages(this.suite.hash, ticket.state.secret);
    ticket.state.secret.fill(0);
    return {
      index: ticket.index,
      stages,
      accept: () => {
        this.resumedFrom = ticket.state;
        this.host.info.resumed = true;
        this.host.info.peerCertificates = ticket.state.peerCertificates;
        if (ticket.state.pskIdentity) this.host.info.pskIdentity = Buffer.from(ticket.state.pskIdentity).toString('utf8');
      },
    };
  }

  /** An external PSK: its key schedule runs in the holder, which alone has the PSK. */
  private holderPsk(offer: OfferedExternalPsk): ChosenPsk {
    const p = this.config.tls13Psk!;
    const stages = holderKeyStages({
      holder: p.holder,
      identity: Uint8Array.from(offer.identity),
      hash: p.hash ?? 'sha256',
      context: () => ({ ...this.host.operationContext(), tlsVersion: 'TLSv1.3' }),
      resumption: true,
    });
    return {
      index: offer.index,
      stages,
      accept: () => {
        this.externalIdentity = offer.identity;
        this.host.info.pskIdentity = Buffer.from(offer.identity).toString('utf8');
      },
    };
  }

  /** 4.1.4: ask for a share of `group`; the transcript restarts from message_hash(ClientHello1). */
  private sendHelloRetryRequest(group: NamedGroup): void {
    const host = this.host;
    const ch1Hash = this.transcript.current();
    this.transcript.replaceWithMessageHash();
    const cookie = this.config.helloRetryCookie?.(ch1Hash);
    const exts: ExtensionOut[] = [extKeyShareHrr(group)];
    if (cookie) exts.push(extCookie(cookie));
    exts.push(extSupportedVersionsServer(TLS13));
    const hrr = encodeServerHello({ random: HRR_RANDOM, sessionId: this.firstHello.sessionId, cipherSuite: this.suite.suite, extensions: exts });
    this.transcript.update(hrr);
    this.hashedMessages.push(hrr);
    host.sendHandshake(hrr);
    host.flush();
    this.sendCompatCcs();
    host.info.helloRetry = true;
    // Early data offered in ClientHello1 keeps being skipped until ClientHello2 (4.2.10);
    // without that offer the skip budget is 0 and any record but the hello is unexpected.
    this.state = { name: 'awaitClientHello2', group, cookie };
  }

  private sendCompatCcs(): void {
    // Middlebox compatibility mode (RFC 8446 D.4): a client that sent a session id expects a CCS.
    if (this.compatCcsSent || this.firstHello.sessionId.length === 0) return;
    this.compatCcsSent = true;
    this.host.sendChangeCipherSpec();
  }

  handleMessage(msg: HandshakeMessage): void {
    const st = this.state;
    if (st.name === 'awaitClientHello2') return this.handleClientHello2(msg, st);
    if (st.name === 'awaitClientCertificate') return this.handleClientCertificate(msg, st.secrets);
    if (st.name === 'awaitClientCertificateVerify') return this.handleClientCertificateVerify(msg, st);
    if (st.name === 'awaitFinished') return this.handleClientFinished(msg, st.secrets);
  }

  /** 4.1.2: the second ClientHello must be the first with only the allowed changes. */
  private handleClientHello2(msg: HandshakeMessage, st: Extract<State, { name: 'awaitClientHello2' }>): void {
    const ch2 = parseClientHello(msg.body);
    const ch1 = this.firstHello;
    checkClientHello13(ch2, true);
    const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;
    if (
      ch2.legacyVersion !== ch1.legacyVersion ||
      !same(ch2.random, ch1.random) ||
      !same(ch2.sessionId, ch1.sessionId) ||
      ch2.cipherSuites.length !== ch1.cipherSuites.length ||
      ch2.cipherSuites.some((s, i) => s !== ch1.cipherSuites[i]) ||
      !same(ch2.compressionMethods, ch1.compressionMethods)
    ) {
      throw illegalParameter('second ClientHello changed its fixed fields');
    }
    const kept = (c: ClientHello) => c.extensions.filter((e) => !MAY_CHANGE_AFTER_HRR.has(e.type));
    const k1 = kept(ch1);
    const k2 = kept(ch2);
    if (k1.length !== k2.length || k1.some((e, i) => e.type !== k2[i].type || !same(e.data, k2[i].data))) {
      throw illegalParameter('second ClientHello changed its extensions');
    }
    // 4.1.2, 4.2.10: a client never offers early data after a HelloRetryRequest.
    if (ch2.earlyData) throw illegalParameter('early_data in the second ClientHello');
    if (st.cookie) {
      if (!ch2.cookie || ch2.cookie.length !== st.cookie.length || !timingSafeEqual(ch2.cookie, st.cookie)) throw illegalParameter('cookie not echoed');
    } else if (ch2.cookie) {
      throw illegalParameter('cookie that the server did not send');
    }
    const shares = ch2.keyShares ?? [];
    if (shares.length !== 1 || shares[0].group !== st.group) throw illegalParameter('second ClientHello does not carry exactly the requested key share');
    // The first flight's early data ends here: from now on an undecryptable record is fatal.
    this.host.record.skipUndecryptableBytes(0);
    this.respond(ch2, msg.raw, shares[0]);
  }

  /** 4.1.3 - 4.4.3: ServerHello, handshake keys, EncryptedExtensions, Certificate, then ask for the signature. */
  private sendServerFlight(ch: ClientHello, group: NamedGroup, peerShare: Uint8Array): void {
    const host = this.host;
    const config = this.config;

    // Choose the certificate and everything else before any output, so a refusal is a clean alert.
    if (config.certificates.length === 0) throw new TlsAlertError(AlertDescription.handshake_failure, 'no PSK this server takes was offered, and it has no certificate');
    if (!ch.signatureAlgorithms) throw new TlsAlertError(AlertDescription.missing_extension, 'no signature_algorithms');
    const choice = chooseCertificate(config.certificates, ch.serverName, ch.signatureAlgorithms, 'TLSv1.3', config.unknownServerName);
    if (!choice.ok) {
      if (choice.reason === 'unrecognized_name') throw new TlsAlertError(AlertDescription.unrecognized_name, `no certificate for ${ch.serverName}`);
      throw new TlsAlertError(AlertDescription.handshake_failure, 'no certificate with a signature scheme the client accepts');
    }
    const cert = choice.cert;
    const alpn = chooseAlpn(ch.alpn, config.alpnProtocols);

    // A KEM (X25519MLKEM768) answers the client's share with a ciphertext made from it, so
    // its secret comes now; a DH group's waits for the deferred work.
    const kx: KeyExchange | AcceptedKeyShare = groupSpec(group).kind === 'hybrid' ? acceptKeyShare(group, peerShare) : host.keyShareFactory(group);
    host.info.group = group;

    const sh = this.serverHello([extKeyShareServer(group, kx.publicKey), extSupportedVersionsServer(TLS13)]);
    this.transcript.update(sh);
    const helloHash = this.transcript.current();

    // RFC 6066 3: acknowledge SNI only when the name chose the certificate.
    const encryptedExtensions = this.encryptedExtensions(ch, alpn, choice.byName);
    // 4.3.2: ask for a client certificate (mutual TLS), naming the schemes and CAs we accept.
    const certificateRequest = config.clientAuth ? this.certificateRequest(config.clientAuth.certificateAuthorities) : undefined;
    // RFC 9345: a client that takes the current delegated credential gets it, signed for below with its key.
    const served = serverCertificate13(cert, ch, config.certificateCompression, host.now());
    const certificate = served.message;
    const dc = served.delegatedCredential;
    if (served.compression !== undefined) host.info.certificateCompression = served.compression;
    this.transcript.update(encryptedExtensions);
    if (certificateRequest) this.transcript.update(certificateRequest);
    this.transcript.update(certificate);
    this.hashedMessages.push(sh, encryptedExtensions);
    if (certificateRequest) this.hashedMessages.push(certificateRequest);
    this.hashedMessages.push(certificate);

    // 4.4.3: the signature covers the transcript through Certificate, which needs neither
    // the (EC)DHE secret nor any encryption: ask for it first, so the key holder works
    // while the rest of the flight is computed (see TlsConnection.runDeferredWork).
    const input = certificateVerifyContent(this.transcript.current());
    host.info.signatureScheme = dc ? dc.scheme : choice.scheme;
    let sig: PendingSignature | undefined;
    let dcSignature: Uint8Array | undefined;
    if (dc) {
      // Tens of microseconds with the credential's EC or EdDSA key: no key holder, no wait.
      dcSignature = dc.sign(input);
      host.info.delegatedCredential = true;
      this.hashedMessages.length = 0;
    } else {
      const context: OperationContext = {
        ...host.operationContext(),
        tlsVersion: 'TLSv1.3',
        purpose: 'tls13-server-certificate-verify',
        // A copy: the list is emptied once the signature is in, and a holder may keep the request.
        handshakeMessages: [...this.hashedMessages],
      };
      const opId = host.requestKeyOperation({ kind: 'sign', key: cert.key, scheme: choice.scheme, message: input, context });
      sig = { opId, cert, scheme: choice.scheme, input };
    }

    host.defer(() => {
      // A bad key share fails here, before anything was sent: the peer sees only the alert.
      this.dhe = 'sharedSecret' in kx ? kx.sharedSecret : kx.computeSharedSecret(peerShare);
      host.sendHandshake(sh);
      host.flush();
      this.sendCompatCcs();
      // 7.1: handshake secrets from the (EC)DHE secret and Hash(ClientHello..ServerHello).
      this.runner.run(this.stages.handshakeSecrets(this.dhe, helloHash), (hs) => {
        this.useHandshakeKeys(ch, hs);
        host.sendHandshake(encryptedExtensions);
        if (certificateRequest) host.sendHandshake(certificateRequest);
        host.sendHandshake(certificate);
        if (sig) {
          this.state = { name: 'awaitSignature', sig, secrets: hs };
          return;
        }
        this.sendMessage(encodeCertificateVerify(dc!.scheme, dcSignature!));
        this.sendServerFinished(hs);
      });
    });
    this.state = sig ? { name: 'signingBeforeKeys', sig } : { name: 'keySchedule' };
  }

  /**
   * 4.2.11, 4.6.1: a PSK handshake (resumption, or an external PSK). The binder proves the
   * client holds the PSK (a wrong one, or an identity the holder does not know, is
   * decrypt_error: 4.2.11 says abort); then ServerHello (with selected_identity, and a key
   * share unless psk_ke), EncryptedExtensions and Finished: no certificate, no signature.
   * No early data either: keyward declines 0-RTT (docs/tls13-psk.md).
   */
  private sendPskFlight(ch: ClientHello, psk: ChosenPsk, binderHash: Uint8Array, share: KeyShareEntry | undefined): void {
    const host = this.host;
    const alpn = chooseAlpn(ch.alpn, this.config.alpnProtocols);
    this.stages = psk.stages;
    this.state = { name: 'keySchedule' };
    this.runner.run(this.stages.verifyBinder(binderHash, ch.pskOffer!.binders[psk.index]), (ok) => {
      if (!ok) throw new TlsAlertError(AlertDescription.decrypt_error, 'PSK binder does not verify');
      const exts: ExtensionOut[] = [];
      if (share) {
        const kx = groupSpec(share.group).kind === 'hybrid' ? acceptKeyShare(share.group, share.keyExchange) : host.keyShareFactory(share.group);
        this.dhe = 'sharedSecret' in kx ? kx.sharedSecret : kx.computeSharedSecret(share.keyExchange);
        exts.push(extKeyShareServer(share.group, kx.publicKey));
        host.info.group = share.group;
      }
      exts.push(extSupportedVersionsServer(TLS13), preSharedKeySelectedExt.encode(psk.index));
      psk.accept();
      this.pskAuthenticated = true;
      const sh = this.serverHello(exts);
      this.transcript.update(sh);
      host.sendHandshake(sh);
      host.flush();
      this.sendCompatCcs();
      this.runner.run(this.stages.handshakeSecrets(this.dhe, this.transcript.current()), (hs) => {
        this.useHandshakeKeys(ch, hs);
        // RFC 6066 3 and OpenSSL: no server_name acknowledgement when resuming (nor with an external PSK: SNI chose nothing).
        this.sendMessage(this.encryptedExtensions(ch, alpn, false));
        this.sendServerFinished(hs);
      });
    });
  }

  private serverHello(extensions: ExtensionOut[]): Uint8Array {
    return encodeServerHello({ random: this.host.random(32), sessionId: this.firstHello.sessionId, cipherSuite: this.suite.suite, extensions });
  }

  /** 4.3.1. No early_data: keyward never accepts 0-RTT (4.2.10). */
  private encryptedExtensions(ch: ClientHello, alpn: string | undefined, ackServerName: boolean): Uint8Array {
    const ee: ExtensionOut[] = [];
    if (this.config.advertisedGroups) ee.push(extSupportedGroups(this.config.advertisedGroups));
    if (ch.recordSizeLimit !== undefined) ee.push(extRecordSizeLimit(OWN_RECORD_SIZE_LIMIT));
    if (ackServerName) ee.push(extServerNameAck());
    if (alpn !== undefined) {
      ee.push(extAlpn(alpn));
      this.host.info.alpnProtocol = alpn;
    }
    return encodeEncryptedExtensions(ee);
  }

  private useHandshakeKeys(ch: ClientHello, hs: TrafficPair): void {
    this.host.setWriteKey(this.aead(hs.server));
    this.host.setReadKey(this.aead(hs.client));
    // 8449 4: the peer's limit counts the content type byte in TLS 1.3.
    if (ch.recordSizeLimit !== undefined) this.host.record.maxSendFragment = Math.min(1 << 14, ch.recordSizeLimit - 1);
  }

  /** 4.4.3 - 4.4.4: the key holder answered: check the signature, send CertificateVerify and Finished. */
  keyOperationResult(opId: number, result: Uint8Array): void {
    if (this.runner.result(opId, result)) return;
    const st = this.state;
    // The connection runs the deferred work (which moves to awaitSignature) before any result.
    if (st.name !== 'awaitSignature' || st.sig.opId !== opId) throw new TlsAlertError(AlertDescription.internal_error, 'unexpected key operation result');
    const { cert, scheme, input } = st.sig;
    checkHolderSignature(cert, scheme, input, result, 'TLSv1.3');
    // Kept only for the key holder's request (bound mode); the connection may live long.
    this.hashedMessages.length = 0;
    this.sendMessage(encodeCertificateVerify(scheme, result));
    this.sendServerFinished(st.secrets);
  }

  /** 4.4.4: our Finished, then the application keys; the client's flight comes next. */
  private sendServerFinished(hs: TrafficPair): void {
    const host = this.host;
    this.sendMessage(encodeFinished(tls13FinishedVerifyData(this.suite.hash, hs.server, this.transcript.current())));
    host.flush();
    this.state = { name: 'keySchedule' };
    this.runner.run(this.stages.applicationSecrets(this.dhe, this.transcript.current()), (app) => {
      host.setWriteKey(this.aead(app.server));
      const secrets: AfterServerFinished = { clientHandshakeSecret: hs.client, clientAppSecret: app.client, serverAppSecret: app.server, exporterMaster: app.exporter };
      // 4.3.2: a server authenticating with a PSK does not ask for a certificate.
      this.state = this.config.clientAuth && !this.pskAuthenticated ? { name: 'awaitClientCertificate', secrets } : { name: 'awaitFinished', secrets };
    });
  }

  private certificateRequest(authorities: readonly Uint8Array[]): Uint8Array {
    const exts = [signatureAlgorithmsExt.encode(CLIENT_SCHEMES13)];
    if (authorities.length > 0) exts.push(certificateAuthoritiesExt.encode(authorities));
    return encodeCertificateRequest13({ context: new Uint8Array(0), extensions: exts });
  }

  /** 4.4.2: the client's chain (maybe empty), judged by the driver. */
  private handleClientCertificate(msg: HandshakeMessage, secrets: AfterServerFinished): void {
    const cert = parseCertificate13(msg.body);
    if (cert.context.length !== 0) throw illegalParameter('client Certificate with a request context we did not send');
    const chain = cert.entries.map((e) => e.data);
    const leaf = chain.length > 0 ? readCertificate(chain[0], 'client') : undefined;
    this.transcript.update(msg.raw);
    this.host.info.peerCertificates = chain;
    const id = this.host.requestPeerVerification({ peer: 'client', chain });
    this.state = { name: 'verifyingClient', id, secrets, leaf };
  }

  peerVerified(id: number): void {
    const st = this.state;
    if (st.name !== 'verifyingClient' || st.id !== id) throw new TlsAlertError(AlertDescription.internal_error, 'unexpected peer verification');
    // 4.4.3: a client that sent no certificate sends no CertificateVerify.
    this.state = st.leaf ? { name: 'awaitClientCertificateVerify', secrets: st.secrets, leaf: st.leaf } : { name: 'awaitFinished', secrets: st.secrets };
  }

  /** 4.4.3: the client's signature over the transcript through its Certificate. */
  private handleClientCertificateVerify(msg: HandshakeMessage, st: Extract<State, { name: 'awaitClientCertificateVerify' }>): void {
    const cv = parseCertificateVerify(msg.body);
    if (!schemeInfo(cv.scheme)?.tls13 || !CLIENT_SCHEMES13.includes(cv.scheme)) throw illegalParameter('client signed with a scheme that was not offered');
    checkPeerScheme(st.leaf.publicKey, cv.scheme, 'TLSv1.3', 'client');
    const content = certificateVerifyContent(this.transcript.current(), 'client');
    if (!verifySignature(st.leaf.publicKey, cv.scheme, content, cv.signature)) {
      throw new TlsAlertError(AlertDescription.decrypt_error, 'client CertificateVerify does not verify against its certificate');
    }
    this.host.info.clientSignatureScheme = cv.scheme;
    this.transcript.update(msg.raw);
    this.state = { name: 'awaitFinished', secrets: st.secrets };
  }

  /** Forgets the key schedule's secrets and the (EC)DHE shared secret (the stages may have been replaced since the start). */
  private wipeSecrets(): void {
    this.stages.wipe();
    this.dhe?.fill(0);
    this.dhe = null;
  }

  /** 4.4.4: the client's Finished proves it saw the same transcript; then the tickets (4.6.1). */
  private handleClientFinished(msg: HandshakeMessage, st: AfterServerFinished): void {
    const h = this.suite.hash;
    const expected = tls13FinishedVerifyData(h, st.clientHandshakeSecret, this.transcript.current());
    const got = parseFinished(msg.body, expected.length);
    if (!timingSafeEqual(got, expected)) throw new TlsAlertError(AlertDescription.decrypt_error, 'client Finished does not verify');
    this.transcript.update(msg.raw);
    if (this.host.handshakeFragmentPending()) throw new TlsAlertError(AlertDescription.unexpected_message, 'handshake data after Finished spans a key change');
    this.host.setReadKey(this.aead(st.clientAppSecret));
    this.hashedMessages.length = 0;
    const complete = () => {
      this.wipeSecrets();
      this.state = { name: 'done' };
      this.host.handshakeComplete({ version: 'TLSv1.3', hash: h, aead: this.suite.aead, readSecret: st.clientAppSecret, writeSecret: st.serverAppSecret, exporterMaster: st.exporterMaster });
    };
    // A PSK holder that gives no resumption master secret: no tickets after its handshakes.
    const rmsStage = this.stages.resumptionMasterSecret;
    if (!this.config.ticketKeys || this.config.ticketCount === 0 || !rmsStage) return complete();
    // The resumption master secret covers the client's Finished (and its certificate with mTLS).
    this.state = { name: 'keySchedule' };
    this.runner.run(rmsStage.call(this.stages, this.dhe, this.transcript.current()), (rms) => {
      this.sendTickets(rms);
      rms.fill(0);
      complete();
    });
  }

  /**
   * 4.6.1: `ticketCount` NewSessionTickets (one after a resumption), each a distinct nonce and ticket_age_add, the
   * ticket the sealed session state: its PSK, suite, SNI, ALPN, the client's certificates or
   * external PSK identity, and when the full handshake authenticated (kept through
   * resumptions, so a session never outlives seven days). No early_data extension: keyward
   * does not take 0-RTT.
   */
  private sendTickets(rms: Uint8Array): void {
    const host = this.host;
    const ring = this.config.ticketKeys!;
    const now = host.now();
    const authenticatedAt = this.resumedFrom?.authenticatedAt ?? now;
    const pskIdentity = this.externalIdentity ?? this.resumedFrom?.pskIdentity;
    const lifetime = Math.min(ring.ticketLifetime, Math.floor((authenticatedAt + MAX_TICKET_LIFETIME * 1000 - now) / 1000));
    if (lifetime <= 0) return;
    // After a resumption one ticket replaces the one the client spent (RFC 8446 C.4: a ticket
    // is used once); the client still holds the rest of its earlier tickets.
    const count = this.resumedFrom ? Math.min(1, this.config.ticketCount) : this.config.ticketCount;
    for (let i = 0; i < count; i++) {
      const nonce = Uint8Array.of(i >> 8, i & 0xff);
      const ageAdd = Buffer.from(host.random(4)).readUInt32BE(0);
      const state: SessionState = {
        version: 'TLSv1.3',
        cipherSuite: this.suite.suite,
        secret: tls13ResumptionPsk(this.suite.hash, rms, nonce),
        issuedAt: now,
        authenticatedAt,
        lifetime,
        ageAdd,
        serverName: this.firstHello.serverName,
        alpnProtocol: host.info.alpnProtocol,
        extendedMasterSecret: false,
        peerCertificates: host.info.peerCertificates ?? [],
        ...(pskIdentity ? { pskIdentity } : {}),
      };
      const plain = encodeSessionState(state);
      state.secret.fill(0);
      let ticket: Uint8Array;
      try {
        ticket = ring.seal(plain);
      } catch {
        // A ring with keys from keyd that all expired seals nothing: no tickets, the connection goes on.
        return;
      } finally {
        plain.fill(0);
      }
      // A ticket past the u16 the message allows (a huge client chain inside) is not sent.
      if (ticket.length > 0xffff) return;
      host.sendHandshake(encodeNewSessionTicket13({ lifetime, ageAdd, nonce, ticket, extensions: [] }));
    }
    host.flush();
  }

  private sendMessage(raw: Uint8Array): void {
    this.transcript.update(raw);
    this.host.sendHandshake(raw);
  }

  private aead(secret: Uint8Array): RecordAead {
    return tls13RecordAead(this.suite.hash, this.suite.aead, secret);
  }
}

/** RFC 8446 9.2 and 4.1.2 checks on a ClientHello that negotiates TLS 1.3. */
function checkClientHello13(ch: ClientHello, second: boolean): void {
  if (ch.compressionMethods.length !== 1 || ch.compressionMethods[0] !== 0) {
    throw illegalParameter('TLS 1.3 ClientHello with compression methods other than null');
  }
  if (ch.hasPreSharedKey && !ch.pskKeyExchangeModes) throw new TlsAlertError(AlertDescription.missing_extension, 'pre_shared_key without psk_key_exchange_modes');
  if ((ch.supportedGroups === undefined) !== (ch.keyShares === undefined)) {
    throw new TlsAlertError(AlertDescription.missing_extension, 'supported_groups and key_share go together');
  }
  // Without a PSK a hello needs both, and signature_algorithms (checked when a certificate is chosen).
  if (!ch.hasPreSharedKey) {
    if (!ch.signatureAlgorithms) throw new TlsAlertError(AlertDescription.missing_extension, 'no signature_algorithms');
    if (!ch.supportedGroups) throw new TlsAlertError(AlertDescription.missing_extension, 'supported_groups and key_share are both required');
  }
  for (const s of ch.keyShares ?? []) {
    if (!ch.supportedGroups!.includes(s.group)) throw illegalParameter('key share for a group not in supported_groups');
  }
  // 4.2.8: the retried hello must carry the requested share; an empty list is legal syntax, so not decode_error.
  if (second && (ch.keyShares ?? []).length === 0) throw illegalParameter('second ClientHello without a key share');
}
