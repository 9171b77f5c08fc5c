import type { OperationContext } from '../../keys/keyOperations.js';
import type { RecordAead } from '../crypto/aead.js';
import { generateKeyExchange } from '../crypto/groups.js';
import { prf12 } from '../crypto/prf12.js';
import { secureRandom } from '../crypto/random.js';
import { tls13ExportKeyingMaterial, tls13NextTrafficSecret, tls13RecordAead } from '../crypto/keySchedule13.js';
import { AlertDescription, AlertLevel, alertName } from '../wire/alerts.js';
import { parseClientHello } from '../wire/clientHello.js';
import { ContentType, HandshakeType } from '../wire/constants.js';
import { TlsAlertError, decodeError, unexpectedMessage } from '../wire/errors.js';
import { encodeKeyUpdate, parseKeyUpdate } from '../wire/handshake.js';
import type { ConnectionOptions, KeyShareFactory, RandomSource, ServerConfig } from './config.js';
import { KEY_UPDATE_AFTER_RECORDS, MAX_BUFFERED_WHILE_WAITING, MAX_EMPTY_RECORDS, MAX_RENEGOTIATION_ATTEMPTS } from './defaults.js';
import type { EngineEvent, NegotiatedInfo, NewKeyOperation } from './events.js';
import type { HandshakeHost, HandshakeMessage, ServerHandshake, Tls12Secrets, TrafficSecrets13 } from './handshakeHost.js';
import { chooseVersion } from './negotiation.js';
import { HandshakeAssembler, RecordLayer } from './recordLayer.js';
import { Server12Handshake } from './server12.js';
import { Server13Handshake } from './server13.js';

type Phase = 'clientHello' | 'handshake' | 'connected' | 'closed';

const defaultRandom: RandomSource = secureRandom;
const defaultKeyShares: KeyShareFactory = (g) => generateKeyExchange(g);

/**
 * One server-side TLS connection, sans-IO: bytes in with `receive`, bytes out with
 * `takeOutput`, happenings with `takeEvents`. It owns the record layer, alerts,
 * application data and post-handshake messages; the version's handshake state
 * machine (server13 or server12) owns the handshake.
 */
export class TlsServerConnection implements HandshakeHost {
  readonly record = new RecordLayer();
  readonly info: NegotiatedInfo = {};
  readonly random: RandomSource;
  readonly keyShareFactory: KeyShareFactory;
  private readonly assembler: HandshakeAssembler;
  private handshake: ServerHandshake | null = null;
  private phase: Phase = 'clientHello';
  private output: Uint8Array[] = [];
  private events: EngineEvent[] = [];
  private pendingHandshake: Uint8Array[] = [];
  private nextOpId = 1;
  private pendingOp: number | null = null;
  /** See runDeferredWork. */
  private deferred: (() => void) | null = null;
  private secrets: TrafficSecrets13 | null = null;
  private secrets12: Tls12Secrets | null = null;
  /** TLS 1.2 was negotiated: 1.2 records, CCS, no KeyUpdate, renegotiation refused. */
  private renegotiationAttempts = 0;
  private warningAlerts = 0;
  private writeClosed = false;
  private peerClosed = false;
  private emptyRecords = 0;
  private keyUpdatesInARow = 0;

  /** TLS 1.2 was negotiated (info.version is set as soon as the version is chosen). */
  private get tls12(): boolean {
    return this.info.version === 'TLSv1.2';
  }

  constructor(readonly config: ServerConfig, private readonly opts: ConnectionOptions = {}) {
    this.random = opts.random ?? defaultRandom;
    this.keyShareFactory = opts.keyShareFactory ?? defaultKeyShares;
    this.assembler = new HandshakeAssembler(config.maxHandshakeMessage);
  }

  // ---- driver API ----

  /** Feeds bytes received from the network. */
  receive(data: Uint8Array): void {
    this.runDeferredWork();
    if (this.phase === 'closed' || this.peerClosed) return;
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
   * Runs the work a handshake put off until its key operation was on its way (TLS 1.3:
   * the (EC)DHE secret, the handshake keys, and the ServerHello, EncryptedExtensions and
   * Certificate records), so that it overlaps the key holder's work. A driver calls it
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
    return this.phase === 'clientHello' || this.phase === 'handshake';
  }

  get isConnected(): boolean {
    return this.phase === 'connected';
  }

  get isClosed(): boolean {
    return this.phase === 'closed';
  }

  /** The driver's answer to a keyOperation event. */
  completeKeyOperation(id: number, result: Uint8Array): void {
    this.runDeferredWork();
    if (this.phase === 'closed' || this.pendingOp !== id || !this.handshake) return;
    this.pendingOp = null;
    this.guard(() => {
      this.handshake!.keyOperationResult(id, result);
      this.process();
    });
  }

  /**
   * The key operation failed. The handshake decides what that means (TLS 1.2 RSA key
   * exchange goes on with a random premaster); by default it fails with internal_error.
   */
  failKeyOperation(id: number, error: Error): void {
    this.runDeferredWork();
    if (this.phase === 'closed' || this.pendingOp !== id) return;
    this.pendingOp = null;
    const hs = this.handshake;
    if (hs?.keyOperationFailed) {
      this.guard(() => {
        hs.keyOperationFailed!(id, error);
        this.process();
      });
      return;
    }
    this.fail(new TlsAlertError(AlertDescription.internal_error, `key operation failed: ${error.message}`));
  }

  /** Encrypts application data. Only valid once the handshake is complete. */
  write(data: Uint8Array): void {
    if (this.phase !== 'connected' || this.writeClosed) throw new Error('TLS connection is not open for writing');
    this.record.write(ContentType.application_data, data, this.output);
    // TLS 1.2 cannot rekey; its explicit GCM nonce (the sequence number) never repeats.
    if (!this.tls12 && this.record.writeSequence >= KEY_UPDATE_AFTER_RECORDS) this.sendKeyUpdate(false);
  }

  /** Sends a KeyUpdate (RFC 8446 4.6.3), optionally asking the peer to update too. */
  keyUpdate(requestPeer: boolean): void {
    if (this.phase !== 'connected' || this.writeClosed) throw new Error('TLS connection is not open for writing');
    if (this.tls12) throw new Error('KeyUpdate exists only in TLS 1.3');
    this.sendKeyUpdate(requestPeer);
  }

  /** Sends close_notify; the connection can still read until the peer closes. */
  close(): void {
    this.runDeferredWork();
    if (this.phase === 'closed' || this.writeClosed) return;
    this.sendAlert(AlertLevel.warning, AlertDescription.close_notify);
    this.writeClosed = true;
    if (this.phase !== 'connected' || this.peerClosed) this.phase = 'closed';
  }

  /** The transport went away: nothing more is sent or received. */
  destroy(): void {
    this.phase = 'closed';
    this.pendingOp = null;
    this.deferred = null;
  }

  /**
   * Keying material exporter: RFC 8446 7.5 (where no context equals an empty one), or
   * RFC 5705 for TLS 1.2 (where they differ: `undefined` means no context).
   */
  exportKeyingMaterial(label: string, context: Uint8Array | undefined, length: number): Buffer {
    const s12 = this.secrets12;
    if (s12) {
      const parts = [s12.clientRandom, s12.serverRandom];
      if (context !== undefined) {
        if (context.length > 0xffff) throw new RangeError('exporter context longer than 65535 bytes');
        parts.push(Uint8Array.of(context.length >> 8, context.length & 0xff), context);
      }
      return prf12(s12.hash, s12.masterSecret, label, Buffer.concat(parts), length);
    }
    if (!this.secrets) throw new Error('handshake not complete');
    return tls13ExportKeyingMaterial(this.secrets.hash, this.secrets.exporterMaster, label, context ?? new Uint8Array(0), length);
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

  handshakeFragmentPending(): boolean {
    return this.assembler.hasPartial;
  }

  requestKeyOperation(req: NewKeyOperation): number {
    const id = this.nextOpId++;
    this.pendingOp = id;
    switch (req.kind) {
      case 'sign':
        this.events.push({ type: 'keyOperation', request: { ...req, id } });
        break;
      case 'decryptPremaster':
        this.events.push({ type: 'decryptPremaster', request: { ...req, id } });
        break;
      case 'pskMasterSecret':
        this.events.push({ type: 'pskMasterSecret', request: { ...req, id } });
        break;
    }
    return id;
  }

  defer(work: () => void): void {
    this.deferred = work;
  }

  handshakeComplete(secrets: TrafficSecrets13 | Tls12Secrets): void {
    if ('masterSecret' in secrets) this.secrets12 = secrets;
    else this.secrets = secrets;
    // The handshake's state (its copies of the traffic secrets among it) is not needed again.
    this.handshake = null;
    this.phase = 'connected';
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
    if (this.phase === 'closed') return;
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
    this.phase = 'closed';
    this.pendingOp = null;
    this.events.push({ type: 'error', error: tlsErr, alertSent: tlsErr.alert });
  }

  private sendAlert(level: AlertLevel, desc: AlertDescription): void {
    this.flush();
    this.record.write(ContentType.alert, Uint8Array.of(level, desc), this.output);
  }

  private process(): void {
    while (this.phase !== 'closed' && !this.peerClosed && this.pendingOp === null) {
      // Handshake messages already reassembled go first (several may share a record).
      if (this.drainHandshake()) continue;
      const rec = this.record.nextRecord();
      if (!rec) break;
      this.handleRecord(rec.type, rec.fragment, rec.encrypted);
    }
    if (this.pendingOp !== null && this.record.bufferedBytes > MAX_BUFFERED_WHILE_WAITING) {
      throw unexpectedMessage('peer sent too much while the handshake waits for the key');
    }
  }

  private handleRecord(type: ContentType, fragment: Uint8Array, encrypted: boolean): void {
    if (type !== ContentType.application_data || fragment.length !== 0) this.emptyRecords = 0;
    switch (type) {
      case ContentType.alert:
        return this.handleAlert(fragment);
      case ContentType.change_cipher_spec:
        if (this.phase === 'handshake' && this.handshake?.handleChangeCipherSpec) {
          // RFC 5246 7.1: exactly one byte of value 1, never inside a handshake message.
          if (fragment.length !== 1 || fragment[0] !== 1) throw decodeError('ChangeCipherSpec is not the single byte 1');
          if (this.assembler.hasPartial) throw unexpectedMessage('ChangeCipherSpec inside a handshake message');
          this.handshake.handleChangeCipherSpec();
          return;
        }
        // RFC 8446 5: a plaintext CCS of value 1 is dropped during the handshake only.
        if (this.phase === 'handshake' && !encrypted && this.handshake?.expectsCompatCcs && fragment.length === 1 && fragment[0] === 1) return;
        throw unexpectedMessage('unexpected change_cipher_spec');
      case ContentType.handshake:
        this.assembler.push(fragment);
        return;
      case ContentType.application_data:
        if (this.phase !== 'connected') throw unexpectedMessage('application data before the handshake completed');
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
    switch (this.phase) {
      case 'clientHello':
        this.onClientHello(msg);
        break;
      case 'handshake':
        this.handshake!.handleMessage(msg);
        break;
      case 'connected':
        this.onPostHandshake(msg);
        break;
    }
    return true;
  }

  private onClientHello(msg: HandshakeMessage): void {
    if (msg.type !== HandshakeType.client_hello) throw unexpectedMessage(`expected ClientHello, got handshake type ${msg.type}`);
    const ch = parseClientHello(msg.body);
    const version = chooseVersion(ch, this.config);
    // RFC 8446 5.1: the ClientHello must end at a record boundary before keys change.
    if (this.assembler.hasPartial) throw unexpectedMessage('data after ClientHello in the same flight');
    this.phase = 'handshake';
    if (version === 'TLSv1.2') {
      this.info.version = version;
      this.record.setMode('tls12');
      this.handshake = new Server12Handshake(this, ch, msg.raw);
      return;
    }
    this.handshake = new Server13Handshake(this, ch, msg.raw);
  }

  private onPostHandshake(msg: HandshakeMessage): void {
    if (this.tls12) return this.onPostHandshake12(msg);
    if (msg.type !== HandshakeType.key_update) throw unexpectedMessage(`unexpected post-handshake message ${msg.type}`);
    if (++this.keyUpdatesInARow > MAX_EMPTY_RECORDS) throw unexpectedMessage('too many KeyUpdates without data');
    const requested = parseKeyUpdate(msg.body);
    const s = this.secrets!;
    s.clientAppSecret = tls13NextTrafficSecret(s.hash, s.clientAppSecret);
    this.setReadKey(this.aead13(s.clientAppSecret));
    // 4.6.3: answer update_requested with our own update (not requesting one back).
    if (requested && !this.writeClosed) this.sendKeyUpdate(false);
  }

  /**
   * TLS 1.2 after the handshake: a ClientHello asks to renegotiate, which keyward refuses
   * with a warning no_renegotiation and keeps the connection (RFC 5246 7.2.2, RFC 5746 4.4).
   */
  private onPostHandshake12(msg: HandshakeMessage): void {
    if (msg.type !== HandshakeType.client_hello) throw unexpectedMessage(`unexpected post-handshake message ${msg.type}`);
    if (++this.renegotiationAttempts > MAX_RENEGOTIATION_ATTEMPTS) throw unexpectedMessage('too many renegotiation attempts');
    if (!this.writeClosed) this.sendAlert(AlertLevel.warning, AlertDescription.no_renegotiation);
  }

  private sendKeyUpdate(requestPeer: boolean): void {
    const s = this.secrets;
    if (!s) throw new Error('KeyUpdate before the handshake completed');
    this.record.write(ContentType.handshake, encodeKeyUpdate(requestPeer), this.output);
    s.serverAppSecret = tls13NextTrafficSecret(s.hash, s.serverAppSecret);
    this.record.setWriteKey(this.aead13(s.serverAppSecret));
  }

  private aead13(secret: Uint8Array): RecordAead {
    return tls13RecordAead(this.secrets!.hash, this.secrets!.aead, secret);
  }

  private handleAlert(fragment: Uint8Array): void {
    if (fragment.length !== 2) throw decodeError('alert record is not exactly two bytes');
    const [level, desc] = fragment;
    if (desc === AlertDescription.close_notify) {
      this.peerClosed = true;
      this.events.push({ type: 'peerClosed' });
      if (this.writeClosed || this.phase !== 'connected') this.phase = 'closed';
      return;
    }
    if (desc === AlertDescription.user_canceled && level === AlertLevel.warning) return;
    // TLS 1.2 warnings (e.g. no_renegotiation) do not end the connection; a flood of them does.
    if (this.tls12 && level === AlertLevel.warning) {
      if (++this.warningAlerts > MAX_EMPTY_RECORDS) throw unexpectedMessage('too many warning alerts');
      return;
    }
    // Every other alert is fatal in TLS 1.3 whatever its level (RFC 8446 6).
    this.phase = 'closed';
    this.pendingOp = null;
    this.events.push({ type: 'error', error: new Error(`peer sent alert ${alertName(desc)}`), alertReceived: desc });
  }
}
