import { timingSafeEqual, type X509Certificate } from 'node:crypto';
import type { OperationContext } from '../../keys/keyOperations.js';
import type { RecordAead } from '../crypto/aead.js';
import { suiteInfo, type CipherSuiteInfo } from '../crypto/cipherSuites.js';
import { acceptKeyShare, groupSpec, type AcceptedKeyShare, type KeyExchange, type NamedGroup } from '../crypto/groups.js';
import {
  tls13ApplicationSecrets,
  tls13EarlySecret,
  tls13FinishedVerifyData,
  tls13HandshakeSecrets,
  tls13RecordAead,
} from '../crypto/keySchedule13.js';
import { schemeInfo, verifySignature, type SignatureScheme } from '../crypto/signatureSchemes.js';
import { Transcript } from '../crypto/transcript.js';
import { AlertDescription } from '../wire/alerts.js';
import { parseClientHello, type ClientHello } from '../wire/clientHello.js';
import { ExtensionType, HandshakeType, HRR_RANDOM, TLS13 } from '../wire/constants.js';
import { TlsAlertError, decodeError, illegalParameter } from '../wire/errors.js';
import { encodeCertificateRequest13, parseCertificate13 } from '../wire/certificate13.js';
import { parseCertificateVerify } from '../wire/certificateVerify.js';
import { certificateAuthoritiesExt, signatureAlgorithmsExt } from '../wire/extensionCodecs.js';
import {
  encodeCertificate13,
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
import { checkHolderSignature, chooseCertificate, readCertificate, type CertifiedKey } from './certificates.js';
import type { ServerConfig } from './config.js';
import { VERIFIED_SIGNATURE_SCHEMES } from './defaults.js';
import type { Handshake, HandshakeHost, HandshakeMessage, Wait } from './handshakeHost.js';
import { chooseAlpn, chooseGroup, chooseSuite } from './negotiation.js';

/** Our own record_size_limit: the largest TLS 1.3 inner plaintext, 2^14 + 1 (RFC 8449 4). */
export const OWN_RECORD_SIZE_LIMIT = (1 << 14) + 1;

/** Extensions that may legitimately change between the two ClientHellos (RFC 8446 4.1.2). */
const MAY_CHANGE_AFTER_HRR = new Set<number>([ExtensionType.key_share, ExtensionType.cookie, ExtensionType.early_data, ExtensionType.pre_shared_key, ExtensionType.padding]);

/** The server's handshake traffic secrets and the Handshake Secret they come from. */
interface HandshakeSecrets {
  readonly handshakeSecret: Buffer;
  readonly client: Buffer;
  readonly server: Buffer;
}

/** The signature the key holder is making: what it signs, with which key and scheme. */
interface PendingSignature {
  readonly opId: number;
  readonly cert: CertifiedKey;
  readonly scheme: SignatureScheme;
  readonly input: Uint8Array;
}

type State =
  | { readonly name: 'awaitClientHello2'; readonly group: NamedGroup; readonly cookie?: Uint8Array }
  /** The key holder signs while the (EC)DHE secret and handshake keys are computed (deferred work). */
  | { readonly name: 'signingBeforeKeys'; readonly sig: PendingSignature }
  | { readonly name: 'awaitSignature'; readonly sig: PendingSignature; readonly secrets: HandshakeSecrets }
  | { readonly name: 'awaitClientCertificate'; readonly secrets: AfterServerFinished }
  | { readonly name: 'verifyingClient'; readonly id: number; readonly secrets: AfterServerFinished; readonly leaf?: X509Certificate }
  | { readonly name: 'awaitClientCertificateVerify'; readonly secrets: AfterServerFinished; readonly leaf: X509Certificate }
  | { readonly name: 'awaitFinished'; readonly secrets: AfterServerFinished }
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
 * TLS 1.3 server handshake (RFC 8446), full handshake with certificate authentication.
 * The steps read in the RFC's order: process the ClientHello (4.1.2), maybe ask for a
 * retry (4.1.4), send ServerHello (4.1.3), EncryptedExtensions (4.3.1), Certificate
 * (4.4.2), CertificateVerify (4.4.3, signed by the key holder), Finished (4.4.4), then
 * read the client's Finished.
 */
export class Server13Handshake implements Handshake {
  private state: State;
  private readonly suite: CipherSuiteInfo;
  private readonly transcript: Transcript;
  /** The messages hashed so far, for a key holder that checks what it signs (bound mode). */
  private readonly hashedMessages: Uint8Array[] = [];
  private readonly firstHello: ClientHello;
  private compatCcsSent = false;

  constructor(
    private readonly host: HandshakeHost,
    private readonly config: ServerConfig,
    ch: ClientHello,
    chRaw: Uint8Array,
  ) {
    this.firstHello = ch;
    checkClientHello13(ch, false);
    const suite = chooseSuite(ch.cipherSuites, config.tls13CipherSuites);
    if (suite === undefined) throw new TlsAlertError(AlertDescription.handshake_failure, 'no TLS 1.3 cipher suite in common');
    this.suite = suiteInfo(suite)!;
    this.transcript = new Transcript(this.suite.hash);
    this.transcript.update(chRaw);
    // No copy needed: the handshake assembler hands out views of buffers of its own.
    this.hashedMessages.push(chRaw);
    host.info.version = 'TLSv1.3';
    host.info.cipherSuite = suite;
    host.info.cipherName = this.suite.name;
    host.info.opensslCipherName = this.suite.opensslName;
    host.info.serverName = ch.serverName;
    // Skip 0-RTT records the client may send under a PSK we will not accept (RFC 8446 4.2.10).
    if (ch.earlyData) host.record.skipUndecryptableBytes(config.maxEarlyDataSkip);

    const choice = chooseGroup(ch, config.groups);
    if (!choice) throw new TlsAlertError(AlertDescription.handshake_failure, 'no key exchange group in common');
    this.state = 'retryWith' in choice ? this.sendHelloRetryRequest(choice.retryWith) : this.sendServerFlight(ch, choice.share.group, choice.share.keyExchange);
  }

  get wait(): Wait {
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
      case 'done':
        return EXPECT_NOTHING;
    }
  }

  get acceptsCompatCcs(): boolean {
    return this.state.name !== 'done';
  }

  /** 4.1.4: ask for a share of `group`; the transcript restarts from message_hash(ClientHello1). */
  private sendHelloRetryRequest(group: NamedGroup): State {
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
    host.record.skipUndecryptableBytes(0);
    return { name: 'awaitClientHello2', group, cookie };
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
    if (ch2.earlyData) throw illegalParameter('early_data in the second ClientHello');
    if (st.cookie) {
      if (!ch2.cookie || ch2.cookie.length !== st.cookie.length || !timingSafeEqual(ch2.cookie, st.cookie)) throw illegalParameter('cookie not echoed');
    } else if (ch2.cookie) {
      throw illegalParameter('cookie that the server did not send');
    }
    const shares = ch2.keyShares ?? [];
    if (shares.length !== 1 || shares[0].group !== st.group) throw illegalParameter('second ClientHello does not carry exactly the requested key share');
    this.transcript.update(msg.raw);
    this.hashedMessages.push(msg.raw);
    this.state = this.sendServerFlight(ch2, st.group, shares[0].keyExchange);
  }

  /** 4.1.3 - 4.4.3: ServerHello, handshake keys, EncryptedExtensions, Certificate, then ask for the signature. */
  private sendServerFlight(ch: ClientHello, group: NamedGroup, peerShare: Uint8Array): State {
    const host = this.host;
    const config = this.config;
    const h = this.suite.hash;

    // Choose the certificate and everything else before any output, so a refusal is a clean alert.
    const sigAlgs = ch.signatureAlgorithms ?? [];
    const choice = chooseCertificate(config.certificates, ch.serverName, sigAlgs, 'TLSv1.3', config.unknownServerName);
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

    const random = host.random(32);
    const sh = encodeServerHello({
      random,
      sessionId: this.firstHello.sessionId,
      cipherSuite: this.suite.suite,
      extensions: [extKeyShareServer(group, kx.publicKey), extSupportedVersionsServer(TLS13)],
    });
    this.transcript.update(sh);
    const helloHash = this.transcript.current();

    const ee: ExtensionOut[] = [];
    if (config.advertisedGroups) ee.push(extSupportedGroups(config.advertisedGroups));
    if (ch.recordSizeLimit !== undefined) ee.push(extRecordSizeLimit(OWN_RECORD_SIZE_LIMIT));
    // RFC 6066 3: acknowledge SNI only when the name chose the certificate.
    if (choice.byName) ee.push(extServerNameAck());
    if (alpn !== undefined) {
      ee.push(extAlpn(alpn));
      host.info.alpnProtocol = alpn;
    }
    const encryptedExtensions = encodeEncryptedExtensions(ee);
    // 4.3.2: ask for a client certificate (mutual TLS), naming the schemes and CAs we accept.
    const certificateRequest = config.clientAuth ? this.certificateRequest(config.clientAuth.certificateAuthorities) : undefined;
    const certificate = encodeCertificate13(new Uint8Array(0), cert.chain);
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
    host.info.signatureScheme = choice.scheme;
    const context: OperationContext = {
      ...host.operationContext(),
      tlsVersion: 'TLSv1.3',
      purpose: 'tls13-server-certificate-verify',
      // A copy: the list is emptied once the signature is in, and a holder may keep the request.
      handshakeMessages: [...this.hashedMessages],
    };
    const opId = host.requestKeyOperation({ kind: 'sign', key: cert.key, scheme: choice.scheme, message: input, context });
    const sig: PendingSignature = { opId, cert, scheme: choice.scheme, input };

    host.defer(() => {
      // A bad key share fails here, before anything was sent: the peer sees only the alert.
      const shared = 'sharedSecret' in kx ? kx.sharedSecret : kx.computeSharedSecret(peerShare);
      host.sendHandshake(sh);
      host.flush();
      this.sendCompatCcs();
      // 7.1: handshake secrets from the (EC)DHE secret and Hash(ClientHello..ServerHello).
      const hs = tls13HandshakeSecrets(h, tls13EarlySecret(h), shared, helloHash);
      host.setWriteKey(this.aead(hs.serverHandshakeTraffic));
      host.setReadKey(this.aead(hs.clientHandshakeTraffic));
      // 8449 4: the peer's limit counts the content type byte in TLS 1.3.
      if (ch.recordSizeLimit !== undefined) host.record.maxSendFragment = Math.min(1 << 14, ch.recordSizeLimit - 1);
      host.sendHandshake(encryptedExtensions);
      if (certificateRequest) host.sendHandshake(certificateRequest);
      host.sendHandshake(certificate);
      this.state = {
        name: 'awaitSignature',
        sig,
        secrets: { handshakeSecret: hs.handshakeSecret, client: hs.clientHandshakeTraffic, server: hs.serverHandshakeTraffic },
      };
    });
    return { name: 'signingBeforeKeys', sig };
  }

  /** 4.4.3 - 4.4.4: the key holder answered: check the signature, send CertificateVerify and Finished. */
  keyOperationResult(opId: number, signature: Uint8Array): void {
    const st = this.state;
    // The connection runs the deferred work (which moves to awaitSignature) before any result.
    if (st.name !== 'awaitSignature' || st.sig.opId !== opId) throw new TlsAlertError(AlertDescription.internal_error, 'unexpected key operation result');
    const { cert, scheme, input } = st.sig;
    checkHolderSignature(cert, scheme, input, signature, 'TLSv1.3');
    const host = this.host;
    const h = this.suite.hash;
    // Kept only for the key holder's request (bound mode); the connection may live long.
    this.hashedMessages.length = 0;
    this.sendMessage(encodeCertificateVerify(scheme, signature));
    const verifyData = tls13FinishedVerifyData(h, st.secrets.server, this.transcript.current());
    this.sendMessage(encodeFinished(verifyData));
    host.flush();

    const app = tls13ApplicationSecrets(h, st.secrets.handshakeSecret, this.transcript.current());
    host.setWriteKey(this.aead(app.serverApplicationTraffic));
    const secrets: AfterServerFinished = {
      clientHandshakeSecret: st.secrets.client,
      clientAppSecret: app.clientApplicationTraffic,
      serverAppSecret: app.serverApplicationTraffic,
      exporterMaster: app.exporterMaster,
    };
    this.state = this.config.clientAuth ? { name: 'awaitClientCertificate', secrets } : { name: 'awaitFinished', secrets };
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
    const content = certificateVerifyContent(this.transcript.current(), 'client');
    if (!verifySignature(st.leaf.publicKey, cv.scheme, content, cv.signature)) {
      throw new TlsAlertError(AlertDescription.decrypt_error, 'client CertificateVerify does not verify against its certificate');
    }
    this.host.info.clientSignatureScheme = cv.scheme;
    this.transcript.update(msg.raw);
    this.state = { name: 'awaitFinished', secrets: st.secrets };
  }

  /** 4.4.4: the client's Finished proves it saw the same transcript. */
  private handleClientFinished(msg: HandshakeMessage, st: AfterServerFinished): void {
    const h = this.suite.hash;
    const expected = tls13FinishedVerifyData(h, st.clientHandshakeSecret, this.transcript.current());
    const got = parseFinished(msg.body, expected.length);
    if (!timingSafeEqual(got, expected)) throw new TlsAlertError(AlertDescription.decrypt_error, 'client Finished does not verify');
    this.transcript.update(msg.raw);
    if (this.host.handshakeFragmentPending()) throw new TlsAlertError(AlertDescription.unexpected_message, 'handshake data after Finished spans a key change');
    this.host.setReadKey(this.aead(st.clientAppSecret));
    this.state = { name: 'done' };
    this.host.handshakeComplete({
      version: 'TLSv1.3',
      hash: h,
      aead: this.suite.aead,
      readSecret: st.clientAppSecret,
      writeSecret: st.serverAppSecret,
      exporterMaster: st.exporterMaster,
    });
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
  if (!ch.signatureAlgorithms) throw new TlsAlertError(AlertDescription.missing_extension, 'no signature_algorithms');
  if (!ch.supportedGroups || !ch.keyShares) {
    // Without a PSK both are required; with one of them missing the hello is malformed.
    throw new TlsAlertError(AlertDescription.missing_extension, 'supported_groups and key_share are both required');
  }
  if (ch.hasPreSharedKey && !ch.pskKeyExchangeModes) throw new TlsAlertError(AlertDescription.missing_extension, 'pre_shared_key without psk_key_exchange_modes');
  for (const s of ch.keyShares) {
    if (!ch.supportedGroups.includes(s.group)) throw illegalParameter('key share for a group not in supported_groups');
  }
  if (second && ch.keyShares.length === 0) throw decodeError('second ClientHello without a key share');
}
