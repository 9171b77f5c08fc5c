import type { OperationContext } from '../../keys/keyOperations.js';
import type { RecordAead } from '../crypto/aead.js';
import { generateKeyExchange, offerKeyShare } from '../crypto/groups.js';
import { prf12 } from '../crypto/prf12.js';
import { secureRandom } from '../crypto/random.js';
import { tls13ExportKeyingMaterial, tls13NextTrafficSecret, tls13RecordAead, tls13ResumptionPsk } from '../crypto/keySchedule13.js';
import type { ClientSession } from '../resumption/clientSession.js';
import { MAX_TICKET_LIFETIME } from '../resumption/sessionState.js';
import { AlertDescription, AlertLevel, alertName } from '../wire/alerts.js';
import { ContentType, HandshakeType } from '../wire/constants.js';
import { TlsAlertError, decodeError, unexpectedMessage } from '../wire/errors.js';
import { encodeKeyUpdate, parseKeyUpdate } from '../wire/handshake.js';
import { parseNewSessionTicket13 } from '../wire/messages13.js';
import type { ConnectionOptions, KeyShareFactory, RandomSource } from './config.js';
import { KEY_UPDATE_AFTER_RECORDS, MAX_BUFFERED_WHILE_WAITING, MAX_EMPTY_RECORDS, MAX_RENEGOTIATION_ATTEMPTS } from './defaults.js';
import { emptyNegotiatedInfo, type EngineEvent, type NegotiatedInfo, type NewKeyOperation, type PeerVerdict, type PeerVerificationRequest } from './events.js';
import type { Handshake, HandshakeHost, HandshakeMessage, TrafficSecrets12, TrafficSecrets13 } from './handshakeHost.js';
import { HandshakeAssembler, RecordLayer } from './recordLayer.js';

/** A server's key shares (it answers the client's, or in TLS 1.2 sends an ECDHE share first). */
const serverKeyShares: KeyShareFactory = (g) => generateKeyExchange(g);

/**
 * A client's key shares: in TLS 1.3 it offers first, which is the side a KEM
 * (X25519MLKEM768) needs; in TLS 1.2 it answers the server's ECDHE share the same way.
 */
const clientKeyShares: KeyShareFactory = (g) => {
  const offer = offerKeyShare(g);
  return { group: g, publicKey: offer.publicKey, computeSharedSecret: (peer) => offer.complete(peer) };
};

/** Session events one connection emits at most (a server may send tickets at any time). */
const MAX_SESSIONS_PER_CONNECTION = 32;

/** Handshake types by name, for error messages. */
function typeName(t: number): string {
  return HandshakeType[t] ?? `handshake type ${t}`;
}

/**
 * The part of a TLS connection that does not depend on the role or the handshake, sans-IO:
 * bytes in with `receive`, bytes out with `takeOutput`, happenings with `takeEvents`. It
 * owns the record layer, alerts, the expected-message check, application data and the
 * traffic phase (KeyUpdate in both directions, close_notify, exporters, post-handshake
 * messages); a role×version handshake (server13, server12, client13, client12) owns the
 * handshake. `TlsServerConnection` and `TlsClientConnection` start it with their role's
 * first handshake step.
 */
export class TlsConnection implements HandshakeHost {
  readonly record = new RecordLayer();
  readonly info: NegotiatedInfo = emptyNegotiatedInfo();
  readonly random: RandomSource;
  readonly now: () => number;
  readonly keyShareFactory: KeyShareFactory;
  private readonly assembler: HandshakeAssembler;
  /** The handshake in progress; null once it completed (its secrets are not kept) or failed. */
  private handshake: Handshake | null = null;
  private closed = false;
  private output: Uint8Array[] = [];
  private events: EngineEvent[] = [];
  private pendingHandshake: Uint8Array[] = [];
  private nextOpId = 1;
  /** See runDeferredWork. */
  private deferred: (() => void) | null = null;
  private traffic: TrafficSecrets13 | TrafficSecrets12 | null = null;
  private renegotiationAttempts = 0;
  private warningAlerts = 0;
  private writeClosed = false;
  private peerClosed = false;
  private emptyRecords = 0;
  private keyUpdatesInARow = 0;
  private sessionsEmitted = 0;
  private fatalAlertCallbacks: (() => void)[] = [];
  private abandonedCallbacks: (() => void)[] = [];

  /** TLS 1.2 was negotiated (info.version is set as soon as the version is known). */
  private get tls12(): boolean {
    return this.info.version === 'TLSv1.2';
  }

  protected constructor(
    readonly role: 'client' | 'server',
    maxHandshakeMessage: number,
    private readonly opts: ConnectionOptions,
  ) {
    this.random = opts.random ?? secureRandom;
    this.now = opts.now ?? Date.now;
    this.keyShareFactory = opts.keyShareFactory ?? (role === 'client' ? clientKeyShares : serverKeyShares);
    this.assembler = new HandshakeAssembler(maxHandshakeMessage);
  }

  /** Starts the role's first handshake step (which may already produce output: a ClientHello). */
  protected start(first: (host: HandshakeHost) => Handshake): void {
    this.guard(() => {
      this.handshake = first(this);
    });
  }

  // ---- driver API ----

  /** Feeds bytes received from the network. */
  receive(data: Uint8Array): void {
    this.runDeferredWork();
    if (this.closed || this.peerClosed) return;
    this.record.push(data);
    this.guard(() => this.process());
  }

  /**
   * Bytes to send, in order. A protected record may come as several pieces (header,
   * ciphertext, tag) so that the one write that joins them is the only copy.
   */
  takeOutput(): Uint8Array[] {
    this.runDeferredWork();
    const out = this.output;
    this.output = [];
    return out;
  }

  /**
   * Runs the work a handshake put off until its key operation was on its way (TLS 1.3
   * server: the (EC)DHE secret, the handshake keys, and the ServerHello, EncryptedExtensions
   * and Certificate records), so that it overlaps the key holder's work. A driver calls it
   * once it has handed the keyOperation event to the key holder; every other entry point
   * runs it first anyway, so the output is the same whenever it runs. A failure here
   * (a bad key share) ends the connection like one in `receive`.
   */
  runDeferredWork(): void {
    const work = this.deferred;
    if (!work) return;
    this.deferred = null;
    this.guard(work);
  }

  takeEvents(): EngineEvent[] {
    const ev = this.events;
    this.events = [];
    return ev;
  }

  get isHandshaking(): boolean {
    return !this.closed && this.traffic === null;
  }

  get isConnected(): boolean {
    return !this.closed && this.traffic !== null;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** The driver's answer to a keyOperation event. */
  completeKeyOperation(id: number, result: Uint8Array): void {
    this.runDeferredWork();
    const hs = this.waitingFor('keyOperation', id);
    if (!hs) return;
    this.guard(() => {
      hs.keyOperationResult(id, result);
      this.process();
    });
  }

  /**
   * The key operation failed. The handshake decides what that means (TLS 1.2 RSA key
   * exchange goes on with a random premaster); by default it fails with internal_error.
   */
  failKeyOperation(id: number, error: Error): void {
    this.runDeferredWork();
    const hs = this.waitingFor('keyOperation', id);
    if (!hs) return;
    this.guard(() => {
      if (!hs.keyOperationFailed) throw new TlsAlertError(AlertDescription.internal_error, `key operation failed: ${error.message}`);
      hs.keyOperationFailed(id, error);
      this.process();
    });
  }

  /** The driver's answer to a verifyPeer event. */
  completePeerVerification(id: number, verdict: PeerVerdict): void {
    this.runDeferredWork();
    const hs = this.waitingFor('peerVerification', id);
    if (!hs) return;
    this.guard(() => {
      if (!verdict.ok) throw new TlsAlertError(verdict.alert, verdict.reason);
      hs.peerVerified?.(id, verdict);
      this.process();
    });
  }

  private waitingFor(on: 'keyOperation' | 'peerVerification', id: number): Handshake | null {
    const hs = this.handshake;
    if (this.closed || !hs) return null;
    const w = hs.wait;
    return w.on === on && w.id === id ? hs : null;
  }

  /** Encrypts application data. Only valid once the handshake is complete. */
  write(data: Uint8Array): void {
    if (!this.isConnected || this.writeClosed) throw new Error('TLS connection is not open for writing');
    this.record.write(ContentType.application_data, data, this.output);
    // TLS 1.2 cannot rekey; its explicit GCM nonce (the sequence number) never repeats.
    if (!this.tls12 && this.record.writeSequence >= KEY_UPDATE_AFTER_RECORDS) this.sendKeyUpdate(false);
  }

  /** Sends a KeyUpdate (RFC 8446 4.6.3), optionally asking the peer to update too. */
  keyUpdate(requestPeer: boolean): void {
    if (!this.isConnected || this.writeClosed) throw new Error('TLS connection is not open for writing');
    if (this.tls12) throw new Error('KeyUpdate exists only in TLS 1.3');
    this.sendKeyUpdate(requestPeer);
  }

  /** Sends close_notify; the connection can still read until the peer closes. */
  close(): void {
    this.runDeferredWork();
    if (this.closed || this.writeClosed) return;
    this.sendAlert(AlertLevel.warning, AlertDescription.close_notify);
    this.writeClosed = true;
    if (!this.isConnected || this.peerClosed) this.closeNow();
  }

  /** The transport went away: nothing more is sent or received. */
  destroy(): void {
    this.closeNow();
    this.deferred = null;
  }

  private closeNow(): void {
    this.closed = true;
    this.handshake = null;
    const cbs = this.abandonedCallbacks;
    this.abandonedCallbacks = [];
    for (const cb of cbs) cb();
  }

  /**
   * Keying material exporter: RFC 8446 7.5 (where no context equals an empty one), or
   * RFC 5705 for TLS 1.2 (where they differ: `undefined` means no context).
   */
  exportKeyingMaterial(label: string, context: Uint8Array | undefined, length: number): Buffer {
    const t = this.traffic;
    if (!t) throw new Error('handshake not complete');
    if (t.version === 'TLSv1.2') {
      const parts = [t.clientRandom, t.serverRandom];
      if (context !== undefined) {
        if (context.length > 0xffff) throw new RangeError('exporter context longer than 65535 bytes');
        parts.push(Uint8Array.of(context.length >> 8, context.length & 0xff), context);
      }
      return prf12(t.hash, t.masterSecret, label, Buffer.concat(parts), length);
    }
    return tls13ExportKeyingMaterial(t.hash, t.exporterMaster, label, context ?? new Uint8Array(0), length);
  }

  // ---- HandshakeHost ----

  operationContext(): Omit<OperationContext, 'tlsVersion'> {
    return { serverName: this.info.serverName, peerAddress: this.opts.peerAddress, connectionId: this.opts.connectionId };
  }

  sendHandshake(raw: Uint8Array): void {
    this.pendingHandshake.push(raw);
  }

  flush(): void {
    if (this.pendingHandshake.length === 0) return;
    const data = this.pendingHandshake.length === 1 ? this.pendingHandshake[0] : Buffer.concat(this.pendingHandshake);
    this.pendingHandshake = [];
    this.record.write(ContentType.handshake, data, this.output);
  }

  sendChangeCipherSpec(): void {
    this.flush();
    this.record.writePlain(ContentType.change_cipher_spec, Uint8Array.of(1), this.output);
  }

  setWriteKey(aead: RecordAead): void {
    this.flush();
    this.record.setWriteKey(aead);
  }

  setReadKey(aead: RecordAead): void {
    if (this.assembler.hasPartial) throw unexpectedMessage('handshake message spans a key change');
    this.record.setReadKey(aead);
  }

  useTls12(): void {
    this.info.version = 'TLSv1.2';
    this.record.setMode('tls12');
  }

  handshakeFragmentPending(): boolean {
    return this.assembler.hasPartial;
  }

  requestKeyOperation(req: NewKeyOperation): number {
    const id = this.nextOpId++;
    this.events.push({ type: 'keyOperation', request: { ...req, id } });
    return id;
  }

  requestPeerVerification(req: Omit<PeerVerificationRequest, 'id'>): number {
    const id = this.nextOpId++;
    this.events.push({ type: 'verifyPeer', request: { ...req, id } });
    return id;
  }

  defer(work: () => void): void {
    this.deferred = work;
  }

  onFatalAlert(cb: () => void): void {
    this.fatalAlertCallbacks.push(cb);
  }

  onAbandoned(cb: () => void): void {
    this.abandonedCallbacks.push(cb);
  }

  emitSession(session: ClientSession): void {
    this.events.push({ type: 'session', session });
  }

  continueWith(next: Handshake): void {
    this.handshake = next;
  }

  handshakeComplete(secrets: TrafficSecrets13 | TrafficSecrets12): void {
    this.traffic = secrets;
    // The handshake's state (its copies of the secrets among it) is not needed again.
    this.handshake = null;
    this.abandonedCallbacks = [];
    this.events.push({ type: 'handshakeComplete' });
  }

  // ---- internals ----

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.fail(err);
    }
  }

  private fail(err: unknown): void {
    if (this.closed) return;
    const tlsErr = err instanceof TlsAlertError ? err : new TlsAlertError(AlertDescription.internal_error, err instanceof Error ? err.message : String(err));
    this.pendingHandshake = [];
    this.deferred = null;
    if (!this.writeClosed) {
      try {
        this.sendAlert(AlertLevel.fatal, tlsErr.alert);
      } catch {
        // The alert could not be framed; the transport is closed regardless.
      }
    }
    this.closeNow();
    this.runFatalAlertCallbacks();
    this.events.push({ type: 'error', error: tlsErr, alertSent: tlsErr.alert });
  }

  private runFatalAlertCallbacks(): void {
    const cbs = this.fatalAlertCallbacks;
    this.fatalAlertCallbacks = [];
    for (const cb of cbs) cb();
  }

  private sendAlert(level: AlertLevel, desc: AlertDescription): void {
    this.flush();
    this.record.write(ContentType.alert, Uint8Array.of(level, desc), this.output);
  }

  /** Whether input may be read now: not while the handshake waits on the driver. */
  private get reading(): boolean {
    if (this.closed || this.peerClosed) return false;
    const w = this.handshake?.wait;
    return w === undefined || w.on === 'message' || w.on === 'changeCipherSpec';
  }

  private process(): void {
    while (this.reading) {
      // Handshake messages already reassembled go first (several may share a record).
      if (this.drainHandshake()) continue;
      const rec = this.record.nextRecord();
      if (!rec) break;
      this.handleRecord(rec.type, rec.fragment, rec.encrypted);
    }
    if (!this.closed && this.handshake && !this.reading && this.record.bufferedBytes > MAX_BUFFERED_WHILE_WAITING) {
      throw unexpectedMessage('peer sent too much while the handshake waits for the key');
    }
  }

  private handleRecord(type: ContentType, fragment: Uint8Array, encrypted: boolean): void {
    if (type !== ContentType.application_data || fragment.length !== 0) this.emptyRecords = 0;
    // RFC 8446 5.1: handshake messages are not interleaved with other record types (a peer's
    // alert is still read, so its reason reaches the log).
    if (type !== ContentType.handshake && type !== ContentType.alert && this.assembler.hasPartial) {
      throw unexpectedMessage(`${ContentType[type]} record inside a fragmented handshake message`);
    }
    const hs = this.handshake;
    switch (type) {
      case ContentType.alert:
        // A plaintext alert is read during the handshake only (a peer that could not derive
        // the keys); once established, one would let anyone on the path forge a close_notify.
        if (!encrypted && this.isConnected && !this.tls12) {
          throw unexpectedMessage(`plaintext alert${fragment.length === 2 ? ` ${alertName(fragment[1])}` : ''} after the handshake`);
        }
        return this.handleAlert(fragment);
      case ContentType.change_cipher_spec:
        if (hs?.wait.on === 'changeCipherSpec' && hs.handleChangeCipherSpec) {
          // RFC 5246 7.1: exactly one byte of value 1 (anything else is not a ChangeCipherSpec
          // message, so unexpected_message as in RFC 8446 5).
          if (fragment.length !== 1 || fragment[0] !== 1) throw unexpectedMessage('ChangeCipherSpec is not the single byte 1');
          hs.handleChangeCipherSpec();
          return;
        }
        // RFC 8446 5: a plaintext CCS of value 1 is dropped during the handshake only.
        if (hs?.acceptsCompatCcs && !encrypted && fragment.length === 1 && fragment[0] === 1) return;
        throw unexpectedMessage('unexpected change_cipher_spec');
      case ContentType.handshake:
        this.assembler.push(fragment);
        return;
      case ContentType.application_data:
        if (!this.isConnected) throw unexpectedMessage('application data before the handshake completed');
        if (fragment.length === 0 && ++this.emptyRecords > MAX_EMPTY_RECORDS) throw unexpectedMessage('too many empty records');
        this.keyUpdatesInARow = 0;
        this.events.push({ type: 'data', data: fragment });
        return;
    }
  }

  /** Handles whole handshake messages; returns true if one was handled. */
  private drainHandshake(): boolean {
    const msg = this.assembler.next();
    if (!msg) return false;
    const hs = this.handshake;
    if (!hs) {
      this.onPostHandshake(msg);
      return true;
    }
    const w = hs.wait;
    if (w.on !== 'message') throw unexpectedMessage(`${typeName(msg.type)} before ChangeCipherSpec`);
    if (!w.expect.includes(msg.type)) throw unexpectedMessage(`expected ${w.expect.map(typeName).join(' or ')}, got ${typeName(msg.type)}`);
    hs.handleMessage(msg);
    return true;
  }

  private onPostHandshake(msg: HandshakeMessage): void {
    if (this.tls12) return this.onPostHandshake12(msg);
    // RFC 8446 4.6.1: a client may get tickets at any time after the handshake.
    if (this.role === 'client' && msg.type === HandshakeType.new_session_ticket) return this.onNewSessionTicket(msg.body);
    if (msg.type !== HandshakeType.key_update) throw unexpectedMessage(`unexpected post-handshake message ${typeName(msg.type)}`);
    if (++this.keyUpdatesInARow > MAX_EMPTY_RECORDS) throw unexpectedMessage('too many KeyUpdates without data');
    const requested = parseKeyUpdate(msg.body);
    const t = this.traffic as TrafficSecrets13;
    t.readSecret = tls13NextTrafficSecret(t.hash, t.readSecret);
    this.setReadKey(tls13RecordAead(t.hash, t.aead, t.readSecret));
    // 4.6.3: answer update_requested with our own update (not requesting one back).
    if (requested && !this.writeClosed) this.sendKeyUpdate(false);
  }

  /**
   * A NewSessionTicket (RFC 8446 4.6.1) becomes a `session` event: its PSK is
   * HKDF-Expand-Label(resumption_master_secret, "resumption", ticket_nonce). A ticket to
   * discard at once (lifetime 0) or beyond the protocol's seven days is ignored, and so are
   * tickets beyond MAX_SESSIONS_PER_CONNECTION (a server cannot flood the application).
   */
  private onNewSessionTicket(body: Uint8Array): void {
    const nst = parseNewSessionTicket13(body);
    const t = this.traffic as TrafficSecrets13;
    const info = this.info;
    if (!t.resumptionMasterSecret || nst.lifetime === 0 || nst.lifetime > MAX_TICKET_LIFETIME) return;
    if (++this.sessionsEmitted > MAX_SESSIONS_PER_CONNECTION) return;
    this.events.push({
      type: 'session',
      session: {
        version: 'TLSv1.3',
        cipherSuite: info.cipherSuite!,
        secret: tls13ResumptionPsk(t.hash, t.resumptionMasterSecret, nst.nonce),
        ticket: Uint8Array.from(nst.ticket),
        sessionId: new Uint8Array(0),
        receivedAt: this.now(),
        lifetime: nst.lifetime,
        ageAdd: nst.ageAdd,
        maxEarlyData: nst.maxEarlyDataSize ?? 0,
        serverName: info.serverName,
        alpnProtocol: info.alpnProtocol,
        extendedMasterSecret: false,
        peerCertificates: info.peerCertificates ?? [],
      },
    });
  }

  /**
   * TLS 1.2 after the handshake: a ClientHello (to a server) or a HelloRequest (to a client)
   * asks to renegotiate, which keyward refuses with a warning no_renegotiation and keeps the
   * connection (RFC 5246 7.2.2, 7.4.1.1, RFC 5746 4.4).
   */
  private onPostHandshake12(msg: HandshakeMessage): void {
    const renegotiation = this.role === 'server' ? HandshakeType.client_hello : HandshakeType.hello_request;
    if (msg.type !== renegotiation) throw unexpectedMessage(`unexpected post-handshake message ${typeName(msg.type)}`);
    if (++this.renegotiationAttempts > MAX_RENEGOTIATION_ATTEMPTS) throw unexpectedMessage('too many renegotiation attempts');
    if (!this.writeClosed) this.sendAlert(AlertLevel.warning, AlertDescription.no_renegotiation);
  }

  private sendKeyUpdate(requestPeer: boolean): void {
    const t = this.traffic;
    if (!t || t.version !== 'TLSv1.3') throw new Error('KeyUpdate before the handshake completed');
    this.record.write(ContentType.handshake, encodeKeyUpdate(requestPeer), this.output);
    t.writeSecret = tls13NextTrafficSecret(t.hash, t.writeSecret);
    this.record.setWriteKey(tls13RecordAead(t.hash, t.aead, t.writeSecret));
  }

  private handleAlert(fragment: Uint8Array): void {
    // RFC 8446 5.1 / 5.4: an empty alert (padding or not) is unexpected_message; a short or long one is malformed.
    if (fragment.length === 0) throw unexpectedMessage('empty alert record');
    if (fragment.length !== 2) throw decodeError('alert record is not exactly two bytes');
    const [level, desc] = fragment;
    if (desc === AlertDescription.close_notify) {
      this.peerClosed = true;
      this.events.push({ type: 'peerClosed' });
      if (this.writeClosed || !this.isConnected) this.closeNow();
      return;
    }
    if (desc === AlertDescription.user_canceled && level === AlertLevel.warning) return;
    // TLS 1.2 warnings (e.g. no_renegotiation) do not end the connection; a flood of them does.
    if (this.tls12 && level === AlertLevel.warning) {
      if (++this.warningAlerts > MAX_EMPTY_RECORDS) throw unexpectedMessage('too many warning alerts');
      return;
    }
    // Every other alert is fatal in TLS 1.3 whatever its level (RFC 8446 6).
    this.closeNow();
    this.runFatalAlertCallbacks();
    this.events.push({ type: 'error', error: new Error(`peer sent alert ${alertName(desc)}`), alertReceived: desc });
  }
}
