/**
 * keyd's operations, independent of the transport: each request frame of an authenticated
 * session becomes one reply (or none, when the request was cancelled). Every request is
 * authorized, counted and audited; the audit line is written to the log file before the reply is returned (fsync in small batches).
 */
import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import { keyIdOf } from '../keys/keyId.js';
import { KeyOperationError, UnknownPskIdentityError, type OperationContext, type SignPurpose } from '../keys/keyOperations.js';
import { checkBoundSignInput } from '../keys/boundSignInput.js';
import { DelegationRefusedError, checkDelegatedCredentialRequest, delegatedCredentialInput, type AcceptedDelegation, type DelegatedCredentialIssuer } from '../keys/delegatedCredentialIssuer.js';
import { InlineSignBudget } from '../keys/inlineSignBudget.js';
import { Tls13PskSteps, withDecoy } from '../keys/tls13PskSteps.js';
import { checkSignInput, versionOfPurpose } from '../keys/signingPolicy.js';
import { describeUnusableKey, schemeFitsVersion, schemeName, schemesForKey, verifySignature, verifySignature12, type TlsVersion } from '../tls/crypto/signatureSchemes.js';
import type { AuditLog, AuditRecord } from './audit.js';
import type { Authorizer, Grant, PeerIdentity } from './authz.js';
import { keyLabel, type KeydMetrics } from './metrics.js';
import {
  FrameType,
  decodeDecryptPremasterRequest,
  decodeDeleteKeyRequest,
  decodeDeletePskRequest,
  decodeGenerateKeyRequest,
  decodeGetKeyRequest,
  decodeIssueDelegatedCredentialRequest,
  decodePskMasterSecretRequest,
  decodePutKeyRequest,
  decodePutPskRequest,
  decodeSignRequest,
  decodeTls13PskRequest,
  encodeError,
  encodeKeyInfos,
  encodeListKeysResult,
  outputWriter,
  ticketKeysWriter,
  trafficSecretsWriter,
  TlvFields,
  type Frame,
  type GeneratedKeyType,
  type KeySelector,
  type SignRequest,
  type TlvWriter,
  type WireErrorCode,
} from './protocol.js';
import { pskMasterSecret } from '../tls/crypto/prf12.js';
import type { WorkQueue } from './queue.js';
import { keyInfoOf, servesName, type KeyRegistry, type RegisteredKey } from './registry.js';
import { StoreError, type SealedStore } from './store.js';
import type { TicketKeyKeeper } from './ticketKeys.js';
import { registerStoredKey } from './storeKey.js';
import type { ErrorLineBudget } from './errorLineBudget.js';

/** Who is on the other end of a connection. */
export interface Session {
  peer: PeerIdentity;
  /** The grant of the rule matching the peer, if any. */
  grant: Grant | undefined;
  transport: 'tls' | 'unix';
  /** The front's address on the keyd link (host:port, or the socket path). */
  remote: string;
}

/** One reply frame: RESULT or ERROR. */
export interface Reply {
  type: FrameType.RESULT | FrameType.ERROR;
  /** A signature's result stays in its writer until its frame is built (one copy). */
  body: Uint8Array | TlvWriter;
  /** The frame carries secrets (ticket keys, PSK-derived secrets): it is written alone, and it and a byte body are zeroed once written. */
  wipe?: boolean;
  /** An error beyond its client's budget of error lines: counted in a summary line instead of a line of its own (ErrorLineBudget). */
  unaudited?: boolean;
}

/** What the service needs. */
export interface ServiceDeps {
  registry: KeyRegistry;
  store: SealedStore;
  audit: AuditLog;
  authz: Authorizer;
  metrics: KeydMetrics;
  logger: Logger;
  queue: WorkQueue;
  unknownPskIdentity: 'random' | 'reject';
  /** Longest validity of a delegated credential keyd signs, ms. */
  dcMaxValidityMs: number;
  /** Clock for delegated-credential validity, ms since the epoch (default Date.now). */
  now?: () => number;
  /** The fleet's ticket keys, when a client rule grants `ticketKeys`. */
  ticketKeys?: TicketKeyKeeper;
  /** How many error answers per client get audit and log lines of their own; none: all. */
  errorLines?: ErrorLineBudget;
}

const OP_NAMES: Partial<Record<FrameType, string>> = {
  [FrameType.GET_KEY]: 'get-key',
  [FrameType.SIGN]: 'sign',
  [FrameType.DECRYPT_PREMASTER]: 'decrypt-premaster',
  [FrameType.PSK_MASTER_SECRET]: 'psk-master-secret',
  [FrameType.ISSUE_DELEGATED_CREDENTIAL]: 'delegated-credential',
  [FrameType.GET_TICKET_KEYS]: 'ticket-keys',
  [FrameType.TLS13_PSK_BINDER]: 'tls13-psk-binder',
  [FrameType.TLS13_PSK_VERIFY_BINDER]: 'tls13-psk-verify-binder',
  [FrameType.TLS13_PSK_HANDSHAKE_SECRETS]: 'tls13-psk-handshake-secrets',
  [FrameType.TLS13_PSK_APPLICATION_SECRETS]: 'tls13-psk-application-secrets',
  [FrameType.TLS13_PSK_RESUMPTION_SECRET]: 'tls13-psk-resumption-secret',
  [FrameType.PUT_KEY]: 'put-key',
  [FrameType.LIST_KEYS]: 'list-keys',
  [FrameType.DELETE_KEY]: 'delete-key',
  [FrameType.GENERATE_KEY]: 'generate-key',
  [FrameType.PUT_PSK]: 'put-psk',
  [FrameType.DELETE_PSK]: 'delete-psk',
};

/** True for frame types the service answers (requests that are operations). */
export function isOperation(type: number): boolean {
  return OP_NAMES[type as FrameType] !== undefined;
}

function errorReply(code: WireErrorCode, message: string): Reply {
  return { type: FrameType.ERROR, body: encodeError({ code, message }) };
}

function refused(message: string): KeyOperationError {
  return new KeyOperationError('refused', message);
}

/** A sign request refused by the signing policy (its input, or its scheme for the key): always logged. */
class SignInputRefused extends KeyOperationError {}

function round3(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

function generate(type: GeneratedKeyType): Promise<KeyObject> {
  const done = (resolve: (k: KeyObject) => void, reject: (e: Error) => void) => (err: Error | null, _pub: KeyObject, priv: KeyObject) => (err ? reject(err) : resolve(priv));
  return new Promise((resolve, reject) => {
    switch (type) {
      case 'ec-p256':
      case 'ec-p384':
      case 'ec-p521':
        generateKeyPair('ec', { namedCurve: { 'ec-p256': 'P-256', 'ec-p384': 'P-384', 'ec-p521': 'P-521' }[type] }, done(resolve, reject));
        break;
      case 'ed25519':
        generateKeyPair('ed25519', {}, done(resolve, reject));
        break;
      case 'rsa-pss-2048':
      case 'rsa-pss-3072':
        // An RSASSA-PSS key without parameters: every rsa_pss_pss_* scheme, never a decryption.
        generateKeyPair('rsa-pss', { modulusLength: Number(type.slice(8)), publicExponent: 0x10001 }, done(resolve, reject));
        break;
      default:
        generateKeyPair('rsa', { modulusLength: Number(type.slice(4)), publicExponent: 0x10001 }, done(resolve, reject));
    }
  });
}

/** The operations. One instance per keyd. */
export class KeydService {
  #active = 0;
  readonly #inline = new InlineSignBudget();
  /** Finished operations whose metrics are not counted yet (see afterReplies). */
  readonly #unmetered: AuditRecord[] = [];
  /** Durations (ms) of audit writes not observed yet. */
  readonly #unmeteredWrites: number[] = [];
  #idleWaiters: Array<() => void> = [];
  /** Set during shutdown: new requests are refused with 'unavailable'. */
  draining = false;

  /** TLS 1.3 external-PSK steps over the store's PSKs. */
  readonly #tls13: Tls13PskSteps;

  constructor(private readonly d: ServiceDeps) {
    this.#tls13 = new Tls13PskSteps((identity) => d.store.getPsk(identity), d.unknownPskIdentity);
  }

  /** Requests being handled now (queued, running, or writing their audit line). */
  get active(): number {
    return this.#active;
  }

  /** Resolves when no request is being handled. */
  idle(): Promise<void> {
    if (this.#active === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /**
   * Handles one operation frame; never throws or rejects. Work that can finish at once
   * (refusals, lookups, PSK secrets, EC and EdDSA signatures by in-memory keys) does, and
   * its reply comes back directly with its audit line queued: the caller sends it only
   * after {@link writeAudit}. Other work comes back as a promise of the reply, whose audit
   * line is written by then, or of null when the request's signal fired (cancelled, or
   * its connection closed): its result is discarded.
   *
   * `signal` is asked for only by work that may wait, so that a request answered at once
   * costs no AbortController; the caller creates it on first call and aborts it on CANCEL.
   * `lastOfRead`: false when more requests of the same read follow this one; they must not
   * wait for a signature on the loop.
   */
  handle(session: Session, frame: Frame, signal: () => AbortSignal, lastOfRead = true): Reply | Promise<Reply | null> {
    const op = OP_NAMES[frame.type as FrameType] ?? 'unknown';
    const t0 = performance.now();
    const rec: AuditRecord = { client: session.peer.display, op, outcome: 'ok', front: session.remote };
    this.#active += 1;
    let out: Reply | Promise<Reply>;
    try {
      if (this.draining) throw new KeyOperationError('unavailable', 'keyd is shutting down');
      out = this.#dispatch(frame, session, rec, signal, lastOfRead);
    } catch (e) {
      out = this.#failed(e, rec, false);
    }
    if (out instanceof Promise) return this.#finishLater(out, rec, t0, signal);
    this.#measure(rec, t0);
    if (out.unaudited) {
      this.#done();
      return out;
    }
    // Mode 'always': the fsync comes first; a CANCEL meanwhile still discards the result.
    if (!this.d.audit.writeIsEnough) return this.#audited(out, rec, signal);
    return this.#auditNow(out, rec);
  }

  /** Queues the audit line of a finished request (written by the next writeAudit). */
  #auditNow(reply: Reply, rec: AuditRecord): Reply {
    try {
      this.d.audit.add(rec);
      this.d.metrics.auditLines.inc();
    } catch (e) {
      reply = this.#auditFailed(e);
    } finally {
      this.#done();
    }
    return reply;
  }

  /**
   * Writes the audit lines of replies {@link handle} returned directly. Returns false when
   * they could not be written: those replies must not leave keyd (send {@link auditUnavailable}).
   */
  writeAudit(): boolean {
    const t = performance.now();
    try {
      this.d.audit.writeNow();
    } catch (e) {
      this.#auditFailed(e);
      return false;
    }
    this.#unmeteredWrites.push(performance.now() - t);
    return true;
  }

  /** The reply for a result whose audit line could not be written. */
  get auditUnavailable(): Reply {
    return errorReply('unavailable', 'keyd audit log unavailable');
  }

  async #finishLater(work: Promise<Reply>, rec: AuditRecord, t0: number, signal: () => AbortSignal): Promise<Reply | null> {
    let reply: Reply;
    try {
      reply = await work;
      if (signal().aborted) {
        // It ran to the end (a key holder cannot always stop), but nobody gets the result.
        rec.outcome = 'cancelled';
        rec.reason = 'cancelled while running; result discarded';
      }
    } catch (e) {
      reply = this.#failed(e, rec, signal().aborted);
    }
    this.#measure(rec, t0);
    if (reply.unaudited) {
      this.#done();
      return signal().aborted ? null : reply;
    }
    if (!this.d.audit.writeIsEnough) return this.#audited(reply, rec, signal);
    // The result leaves as soon as its line is written, not at the end of this turn.
    reply = this.#auditNow(reply, rec);
    if (!this.writeAudit()) reply = this.auditUnavailable;
    return signal().aborted ? null : reply;
  }

  /** Appends the audit line and waits until it is written (and fsynced in mode 'always'). */
  async #audited(reply: Reply, rec: AuditRecord, signal: () => AbortSignal): Promise<Reply | null> {
    try {
      const ta = performance.now();
      await this.d.audit.append(rec);
      this.d.metrics.auditLines.inc();
      this.d.metrics.auditBatchSeconds.observe((performance.now() - ta) / 1000);
    } catch (e) {
      reply = this.#auditFailed(e);
    } finally {
      this.#done();
    }
    return signal().aborted ? null : reply;
  }

  /** The error reply for a failed request, with its outcome recorded, refusals counted and logged. */
  #failed(e: unknown, rec: AuditRecord, aborted: boolean): Reply {
    const { code, message } = this.#describe(e, rec);
    rec.outcome = aborted ? 'cancelled' : code;
    rec.reason = message;
    if (code === 'refused' || code === 'rate-limited') this.d.metrics.refusals.inc({ reason: code });
    // Internal failures (a token's signature that does not verify) are always audited: a flood of junk cannot hide them.
    if (code !== 'internal' && this.d.errorLines && !this.d.errorLines.take(rec.client)) return { ...errorReply(code, message), unaudited: true };
    if (code === 'refused' || code === 'rate-limited' || e instanceof SignInputRefused) {
      this.d.logger.warn({ client: rec.client, front: rec.front, op: rec.op, keyId: rec.keyId, serverName: rec.serverName, reason: message }, 'request refused');
    } else if (code === 'internal') {
      this.d.logger.error({ client: rec.client, op: rec.op, keyId: rec.keyId, err: message }, 'operation failed');
    }
    return errorReply(code, message);
  }

  #measure(rec: AuditRecord, t0: number): void {
    rec.latencyMs = round3(performance.now() - t0);
    this.#unmetered.push(rec);
  }

  /**
   * Bookkeeping that no result waits for, done by the connection once it has sent the
   * replies of a chunk (or an async result): metrics (prom-client's label lookups cost a
   * few µs per operation) and the audit chain's hash.
   */
  afterReplies(): void {
    for (const rec of this.#unmetered) {
      this.d.metrics.operations.inc({ key: keyLabel(rec.keyId), op: rec.op, outcome: rec.outcome });
      this.d.metrics.latency.observe({ op: rec.op }, rec.latencyMs! / 1000);
    }
    for (const ms of this.#unmeteredWrites) this.d.metrics.auditBatchSeconds.observe(ms / 1000);
    this.#unmetered.length = 0;
    this.#unmeteredWrites.length = 0;
    this.d.audit.settle();
  }

  #auditFailed(e: unknown): Reply {
    // No result leaves keyd without its audit line.
    this.d.logger.error({ err: (e as Error).message }, 'audit write failed; refusing results');
    return this.auditUnavailable;
  }

  #done(): void {
    this.#active -= 1;
    if (this.#active === 0) {
      const w = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const f of w) f();
    }
  }

  /** Audits a request that never reached an operation (e.g. unknown version or type). */
  async auditRejected(session: Session, op: string, code: WireErrorCode, reason: string): Promise<void> {
    this.d.metrics.operations.inc({ key: 'none', op, outcome: code });
    if (this.d.errorLines && !this.d.errorLines.take(session.peer.display)) return;
    await this.d.audit.append({ client: session.peer.display, op, outcome: code, front: session.remote, reason }).catch(() => undefined);
  }

  #describe(e: unknown, rec: AuditRecord): { code: WireErrorCode; message: string } {
    if (e instanceof KeyOperationError) return { code: e instanceof UnknownPskIdentityError ? 'unknown-psk-identity' : e.code, message: e.message };
    if (e instanceof StoreError) {
      if (e.code === 'bad-key') return { code: 'bad-request', message: e.message };
      this.d.logger.error({ op: rec.op, err: e.message }, 'store operation failed');
      return { code: 'internal', message: 'key store write failed' };
    }
    // Unknown failures may carry library text; say nothing specific to the peer.
    this.d.logger.error({ op: rec.op, err: e instanceof Error ? e.message : String(e) }, 'unexpected failure');
    return { code: 'internal', message: 'internal error' };
  }

  /**
   * A costly signature (RSA) runs on the loop when no work waits for a slot and no other
   * request of its chunk follows it (see InlineSignBudget): it then runs beside the
   * pool's signatures, not behind them.
   */
  #signInline(lastOfRead: boolean): boolean {
    return lastOfRead && this.d.queue.queued === 0 && this.#inline.allows();
  }

  /** Counts a sign request the signing policy refuses; the caller throws the error (logged and audited by #failed). */
  #refuseInput(code: 'refused' | 'unsupported', message: string): SignInputRefused {
    this.d.metrics.refusedSignInputs.inc();
    return new SignInputRefused(code, message);
  }

  #grant(session: Session): Grant {
    if (!session.grant) throw refused(`identity ${session.peer.display} is not authorized by keyd`);
    return session.grant;
  }

  #admin(session: Session): void {
    if (!this.#grant(session).admin) throw refused(`identity ${session.peer.display} is not an admin`);
  }

  #takeToken(grant: Grant): void {
    if (!grant.takeToken()) throw new KeyOperationError('rate-limited', 'rate limit exceeded for this front');
  }

  /** Finds the key for a request and checks the peer may use it. */
  #pickKey(sel: KeySelector, grant: Grant, rec: AuditRecord, scheme?: number, version?: TlsVersion): RegisteredKey {
    return this.#allowedKeys(sel, grant, rec, scheme, version)[0];
  }

  /** The keys a selector names that the peer may use (at least one, else it throws), newest first. */
  #allowedKeys(sel: KeySelector, grant: Grant, rec: AuditRecord, scheme?: number, version?: TlsVersion): RegisteredKey[] {
    const found = this.d.registry.select(sel, scheme, version);
    if (found.length === 0) {
      if (scheme !== undefined && 'serverName' in sel && this.d.registry.select(sel).length > 0) {
        throw this.#refuseInput('unsupported', `sign input refused: no key serving ${sel.serverName} fits ${schemeName(scheme)}`);
      }
      if ('keyId' in sel) rec.keyId = sel.keyId;
      throw new KeyOperationError('unknown-key', 'keyId' in sel ? `no key ${sel.keyId}` : `no key serves ${sel.serverName}${scheme === undefined ? '' : ` with ${schemeName(scheme)}`}`);
    }
    const allowed = found.filter((k) => grant.mayUseKey(k));
    if (allowed.length === 0) {
      rec.keyId = found[0].keyId;
      throw refused(`not permitted to use key ${found[0].keyId}`);
    }
    rec.keyId = allowed[0].keyId;
    return allowed;
  }

  #fillContext(rec: AuditRecord, ctx: OperationContext): void {
    if (ctx.serverName !== undefined) rec.serverName = ctx.serverName;
    if (ctx.peerAddress !== undefined) rec.peer = ctx.peerAddress;
    if (ctx.purpose !== undefined) rec.purpose = ctx.purpose;
    if (ctx.connectionId !== undefined) rec.connectionId = ctx.connectionId;
  }

  #dispatch(frame: Frame, session: Session, rec: AuditRecord, signal: () => AbortSignal, lastOfRead: boolean): Reply | Promise<Reply> {
    switch (frame.type as FrameType) {
      case FrameType.SIGN:
        return this.#sign(frame, session, rec, signal, lastOfRead);
      case FrameType.GET_KEY:
        return this.#getKey(frame, session, rec);
      case FrameType.PSK_MASTER_SECRET:
        return this.#pskMasterSecret(frame, session, rec);
      case FrameType.DECRYPT_PREMASTER:
        return this.#decryptPremaster(frame, session, rec, signal);
      case FrameType.ISSUE_DELEGATED_CREDENTIAL:
        return this.#issueDelegatedCredential(frame, session, rec, signal);
      case FrameType.GET_TICKET_KEYS:
        return this.#ticketKeys(frame, session, rec);
      case FrameType.TLS13_PSK_BINDER:
      case FrameType.TLS13_PSK_VERIFY_BINDER:
      case FrameType.TLS13_PSK_HANDSHAKE_SECRETS:
      case FrameType.TLS13_PSK_APPLICATION_SECRETS:
      case FrameType.TLS13_PSK_RESUMPTION_SECRET:
        return this.#tls13Psk(frame, session, rec);
      case FrameType.PUT_KEY:
        return this.#putKey(frame, session, rec);
      case FrameType.GENERATE_KEY:
        return this.#generateKey(frame, session, rec);
      case FrameType.LIST_KEYS:
        this.#admin(session);
        return {
          type: FrameType.RESULT,
          body: encodeListKeysResult({ keys: this.d.registry.all().map(keyInfoOf), psks: this.d.store.psks().map((p) => ({ identity: p.identity, createdAt: p.createdAt, hash: p.hash })) }),
        };
      case FrameType.DELETE_KEY:
        return this.#deleteKey(frame, session, rec);
      case FrameType.PUT_PSK:
        return this.#putPsk(frame, session, rec);
      case FrameType.DELETE_PSK:
        return this.#deletePsk(frame, session, rec);
      default:
        throw new KeyOperationError('unsupported', `frame type ${frame.type} is not an operation`);
    }
  }

  async #putPsk(frame: Frame, session: Session, rec: AuditRecord): Promise<Reply> {
    this.#admin(session);
    const req = decodePutPskRequest(frame.body);
    rec.pskIdentity = Buffer.from(req.identity).toString('hex').slice(0, 128);
    try {
      await this.d.store.putPsk(req.identity, req.secret, req.hash);
    } finally {
      req.secret.fill(0);
    }
    return { type: FrameType.RESULT, body: new Uint8Array(0) };
  }

  async #deletePsk(frame: Frame, session: Session, rec: AuditRecord): Promise<Reply> {
    this.#admin(session);
    const req = decodeDeletePskRequest(frame.body);
    rec.pskIdentity = Buffer.from(req.identity).toString('hex').slice(0, 128);
    if (!(await this.d.store.deletePsk(req.identity))) throw new KeyOperationError('unknown-key', 'no PSK with that identity');
    return { type: FrameType.RESULT, body: new Uint8Array(0) };
  }

  /**
   * Bound mode (level 2): the input must be the one the request's handshake messages give,
   * for this key's certificate and a name it serves. Required for fronts whose rule says
   * `bound`; checked whenever a front sends the messages.
   */
  #checkBound(req: SignRequest, purpose: SignPurpose, key: RegisteredKey, rec: AuditRecord): void {
    if (!req.handshakeMessages) throw this.#refuseInput('refused', 'sign input refused: this front must send the handshake messages (bound mode)');
    const check = checkBoundSignInput(req.message, purpose, req.handshakeMessages, { spki: key.spki, servesName: (n) => servesName(key, n) });
    if (!check.ok) throw this.#refuseInput('refused', `sign input refused (bound mode): ${check.reason}`);
    rec.bound = true;
    // The name the verified ClientHello asked for (none, if it sent none), never the one
    // the front reported: a bound line shows only what keyd checked.
    if (check.serverName !== undefined) rec.serverName = check.serverName;
    else delete rec.serverName;
  }

  /**
   * In-memory EC and EdDSA keys sign at once. In-memory RSA keys sign at once too when
   * nothing waits behind them (see #signInline), else on the thread pool through the work
   * queue, as PKCS#11 keys always do.
   */
  #sign(frame: Frame, session: Session, rec: AuditRecord, signal: () => AbortSignal, lastOfRead: boolean): Reply | Promise<Reply> {
    const req = decodeSignRequest(frame.body);
    rec.scheme = schemeName(req.scheme);
    this.#fillContext(rec, req.ctx);
    const grant = this.#grant(session);
    const key = this.#pickKey(req.key, grant, rec, req.scheme, req.ctx.tlsVersion);
    this.#takeToken(grant);
    // The TLS 1.2 client CertificateVerify input has no fixed shape: only bound mode checks it.
    const bound = req.handshakeMessages !== undefined;
    if (!bound && req.ctx.purpose === 'tls12-client-certificate-verify') throw this.#refuseInput('refused', 'sign input refused: a TLS 1.2 client CertificateVerify is signed only in bound mode');
    const shape = checkSignInput(req.message, req.scheme, req.ctx.purpose, { tls12ClientCertificateVerify: bound });
    if (!shape.ok) throw this.#refuseInput('refused', `sign input refused: ${shape.reason}`);
    rec.purpose = shape.purpose;
    // Answered 'unsupported' like a local key holder would, and counted and logged as a refused input.
    // The input's shape, not the claimed context, says whether the scheme binds the curve.
    const version = versionOfPurpose(shape.purpose);
    if (!schemeFitsVersion(key.schemes, req.scheme, version)) throw this.#refuseInput('unsupported', `sign input refused: ${schemeName(req.scheme)} does not fit key ${key.keyId} (${key.keyType})`);
    if (bound || grant.bound) this.#checkBound(req, shape.purpose, key, rec);
    const ctx: OperationContext = { ...req.ctx, purpose: shape.purpose, tlsVersion: version };
    const result = (sig: Uint8Array): Reply => {
      if (key.verifyResults && !(version === 'TLSv1.2' ? verifySignature12 : verifySignature)(key.publicKey, req.scheme, req.message, sig)) {
        throw new KeyOperationError('internal', `key holder for ${key.keyId} returned a signature that does not verify`);
      }
      return { type: FrameType.RESULT, body: outputWriter(sig) };
    };
    const ops = key.ops;
    if (ops.signNow) return result(ops.signNow(req.scheme, req.message, ctx));
    if (ops.signBlocking && this.#signInline(lastOfRead)) return result(this.#inline.run(() => ops.signBlocking!(req.scheme, req.message, ctx)));
    return this.d.queue.submit((s) => ops.sign(req.scheme, req.message, ctx, s), signal(), rec.client).then(result);
  }

  async #decryptPremaster(frame: Frame, session: Session, rec: AuditRecord, signal: () => AbortSignal): Promise<Reply> {
    const req = decodeDecryptPremasterRequest(frame.body);
    this.#fillContext(rec, req.ctx);
    const grant = this.#grant(session);
    const key = this.#pickKey(req.key, grant, rec);
    this.#takeToken(grant);
    const decrypt = key.ops.decryptPremaster?.bind(key.ops);
    if (!decrypt) throw new KeyOperationError('unsupported', `key ${key.keyId} cannot decrypt premaster secrets (RSA keys only)`);
    // RSA key exchange exists only in TLS 1.2; anything else is not a handshake input.
    if (req.ctx.tlsVersion !== 'TLSv1.2') throw refused('premaster decryption is for TLS 1.2 only');
    // A raw RSA operation on the loop (node:crypto has no asynchronous form): charged to the inline budget.
    const premaster = await this.d.queue.submit((s) => this.#inline.run(() => decrypt(req.ciphertext, req.clientVersion, req.ctx, s)), signal(), rec.client);
    try {
      // A real premaster and the random one a bad ciphertext gets leave alike, and are zeroed once written.
      return { type: FrameType.RESULT, body: outputWriter(premaster).finish(), wipe: true };
    } finally {
      premaster.fill(0);
    }
  }

  /**
   * A delegated credential (RFC 9345) for the key's certificate: only for fronts whose rule
   * allows it, only when the request is structurally a credential for this key's
   * certificate (checkDelegatedCredentialRequest), signed like a handshake by the key's
   * holder and verified before it leaves. Audited with the credential key's hash, scheme
   * and expiry; refusals counted by reason.
   */
  #issueDelegatedCredential(frame: Frame, session: Session, rec: AuditRecord, signal: () => AbortSignal): Reply | Promise<Reply> {
    const { key: sel, request: req, ctx } = decodeIssueDelegatedCredentialRequest(frame.body);
    rec.scheme = schemeName(req.algorithm);
    rec.dcScheme = schemeName(req.credential.certVerifyAlgorithm);
    this.#fillContext(rec, ctx);
    const grant = this.#grant(session);
    const key = this.#pickKey(sel, grant, rec);
    this.#takeToken(grant);
    let accepted: AcceptedDelegation;
    try {
      if (!grant.delegatedCredentials) throw new DelegationRefusedError('not-permitted', `identity ${session.peer.display} may not obtain delegated credentials (its rule lacks "delegatedCredentials": true)`);
      accepted = checkDelegatedCredentialRequest(req, key, this.d.dcMaxValidityMs, (this.d.now ?? Date.now)());
    } catch (e) {
      if (e instanceof DelegationRefusedError) this.d.metrics.dcRefusals.inc({ reason: e.refusal });
      throw e;
    }
    rec.dcKey = accepted.dcKeyId;
    rec.dcExpires = new Date(accepted.expiresAt).toISOString();
    const input = delegatedCredentialInput(req);
    const opCtx: OperationContext = { ...ctx, tlsVersion: 'TLSv1.3' };
    const result = (sig: Uint8Array): Reply => {
      // Always verified: a credential is served for hours, a bad one would fail every handshake.
      if (!verifySignature(key.publicKey, req.algorithm, input, sig)) throw new KeyOperationError('internal', `key holder for ${key.keyId} returned a credential signature that does not verify`);
      return { type: FrameType.RESULT, body: outputWriter(sig) };
    };
    const ops = key.ops;
    // An embedded holder that issues credentials itself (a key process) gets the request whole: its `sign` takes handshake shapes only.
    const issuer = (ops as Partial<DelegatedCredentialIssuer>).issueDelegatedCredential?.bind(ops);
    if (issuer) return this.d.queue.submit((s) => issuer(req, opCtx, s), signal(), rec.client).then(result);
    if (ops.signNow) return result(ops.signNow(req.algorithm, input, opCtx));
    return this.d.queue.submit((s) => ops.sign(req.algorithm, input, opCtx, s), signal(), rec.client).then(result);
  }

  /**
   * The fleet's session ticket keys, to a front whose rule says `ticketKeys`, over mutual
   * TLS only (a Unix socket peer is known by the socket's configured identity alone). The
   * audit line names the keys (their public names, sealing key first), never their bytes.
   */
  #ticketKeys(frame: Frame, session: Session, rec: AuditRecord): Reply {
    TlvFields.parse(frame.body, 'GET_TICKET_KEYS');
    const grant = this.#grant(session);
    if (!grant.ticketKeys) throw refused(`identity ${session.peer.display} may not fetch ticket keys (its rule lacks "ticketKeys": true)`);
    if (session.transport !== 'tls') throw refused('ticket keys are served over mutual TLS only');
    const keeper = this.d.ticketKeys;
    if (!keeper) throw new KeyOperationError('unavailable', 'keyd has no ticket keys');
    this.#takeToken(grant);
    const served = keeper.served();
    if (served.keys.length === 0) throw new KeyOperationError('unavailable', 'keyd has no current ticket key (rotation failing: see its log)');
    rec.ticketKeys = served.keys.map((k) => k.name.toString('hex')).join(',');
    const body = ticketKeysWriter({ keys: served.keys, rotateEveryMs: keeper.settings.rotateMs, ticketLifetimeSeconds: keeper.settings.lifetimeSeconds, nextRotationMs: served.nextRotationMs });
    return { type: FrameType.RESULT, body, wipe: true };
  }

  #getKey(frame: Frame, session: Session, rec: AuditRecord): Reply {
    const req = decodeGetKeyRequest(frame.body);
    if ('serverName' in req.key) rec.serverName = req.key.serverName;
    const allowed = this.#allowedKeys(req.key, this.#grant(session), rec);
    return { type: FrameType.RESULT, body: encodeKeyInfos(allowed.map(keyInfoOf)) };
  }

  #pskMasterSecret(frame: Frame, session: Session, rec: AuditRecord): Reply {
    const { req, ctx } = decodePskMasterSecretRequest(frame.body);
    this.#fillContext(rec, ctx);
    rec.pskIdentity = Buffer.from(req.identity).toString('hex').slice(0, 128);
    const grant = this.#grant(session);
    this.#takeToken(grant);
    // Rights first, from the configuration alone: a front without them gets the same
    // refusal whether the identity exists or not (the store is not even consulted).
    if (!grant.mayUsePsk(req.identity)) throw refused('not permitted to use this PSK identity');
    const psk = this.d.store.getPsk(req.identity);
    if (!psk) {
      if (this.d.unknownPskIdentity === 'reject') throw new UnknownPskIdentityError();
      // A master secret from a random PSK: the handshake fails at Finished, as for a wrong
      // PSK, and the answer takes the same work as a real one, so neither its content nor
      // its timing tells a TLS peer (through the front) which identities exist.
      rec.outcome = 'unknown-psk-identity';
    }
    const ms = withDecoy(psk?.secret, (secret) => pskMasterSecret(secret, req));
    try {
      // Real or decoy, the answer leaves the same way: copied out before the wipe below,
      // written alone, the frame zeroed once written.
      return { type: FrameType.RESULT, body: outputWriter(ms).finish(), wipe: true };
    } finally {
      ms.fill(0);
    }
  }

  /**
   * A TLS 1.3 external-PSK step (docs/tls13-psk.md): only binders, a binder verdict and
   * transcript-bound secrets leave; the Early, Handshake and Master Secrets exist for the
   * duration of the call. Rights are checked from the configuration alone, before the
   * store, as for TLS 1.2 PSKs; the handshake-secrets step (one per handshake) takes a
   * rate-limit token. The audit line names the identity and the outcome: for a binder check `ok`,
   * `bad-binder`, `wrong-hash` or `unknown-psk-identity`, while the front only ever learns
   * "not accepted".
   */
  #tls13Psk(frame: Frame, session: Session, rec: AuditRecord): Reply {
    const { step, req, ctx } = decodeTls13PskRequest(frame.type, frame.body);
    this.#fillContext(rec, ctx);
    rec.pskIdentity = Buffer.from(req.identity).toString('hex').slice(0, 128);
    const grant = this.#grant(session);
    // Every TLS 1.3 PSK handshake, client or server, takes its handshake traffic secrets
    // exactly once, and cannot finish without them: one token there bounds the handshakes
    // even of a front that skips the binder steps (it may: they are its own checks).
    if (step === 'handshake-secrets') this.#takeToken(grant);
    if (ctx.tlsVersion !== 'TLSv1.3') throw new KeyOperationError('bad-request', `${FrameType[frame.type]} is for TLS 1.3 (CTX_TLS_VERSION 0x0304)`);
    if (!grant.mayUsePsk(req.identity)) {
      if (step !== 'verify-binder') throw refused('not permitted to use this PSK identity');
      // A binder check the front may not make is answered "not accepted" after the same
      // work, as a wrong binder is: the peer gets decrypt_error either way and learns
      // nothing of which identities exist. keyd's own record says refused.
      this.#tls13.verifyBinder({ ...req, binder: req.binder ?? new Uint8Array(0) });
      rec.outcome = 'refused';
      return { type: FrameType.RESULT, body: outputWriter(Uint8Array.of(0)) };
    }
    if (step === 'verify-binder') {
      const v = this.#tls13.verifyBinder({ ...req, binder: req.binder ?? new Uint8Array(0) });
      rec.outcome = v.outcome;
      return { type: FrameType.RESULT, body: outputWriter(Uint8Array.of(v.accepted ? 1 : 0)) };
    }
    // keyd's own record says so; the front gets an answer made from a random PSK (or
    // unknown-psk-identity with psk.unknownIdentity "reject").
    if (!this.d.store.getPsk(req.identity)) rec.outcome = 'unknown-psk-identity';
    const secrets: Uint8Array[] = [];
    try {
      let body: TlvWriter;
      if (step === 'binder') {
        const b = this.#tls13.binder(req);
        secrets.push(b);
        body = outputWriter(b);
      } else if (step === 'resumption-master-secret') {
        const r = this.#tls13.resumptionMasterSecret(req);
        secrets.push(r);
        body = outputWriter(r);
      } else {
        const t = step === 'handshake-secrets' ? this.#tls13.handshakeSecrets(req) : this.#tls13.applicationSecrets(req);
        secrets.push(...Object.values(t));
        body = trafficSecretsWriter(t);
      }
      // Copied out before the wipe below; the frame is zeroed once written.
      return { type: FrameType.RESULT, body: body.finish(), wipe: true };
    } finally {
      for (const x of secrets) x.fill(0);
    }
  }

  async #putKey(frame: Frame, session: Session, rec: AuditRecord): Promise<Reply> {
    this.#admin(session);
    const req = decodePutKeyRequest(frame.body);
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey({ key: Buffer.from(req.pkcs8.buffer, req.pkcs8.byteOffset, req.pkcs8.length), format: 'der', type: 'pkcs8' });
    } catch {
      throw new KeyOperationError('bad-request', 'PRIVATE_KEY is not a PKCS#8 private key');
    } finally {
      // The frame buffer held the key; do not leave it for the garbage collector.
      req.pkcs8.fill(0);
    }
    if (schemesForKey(privateKey).length === 0) throw new KeyOperationError('bad-request', `PRIVATE_KEY is ${describeUnusableKey(privateKey)}`);
    rec.keyId = keyIdOf(createPublicKey(privateKey));
    const existing = this.d.registry.get(rec.keyId);
    if (existing && existing.source !== 'store') throw refused(`key ${rec.keyId} is served from ${existing.source}; it cannot also be stored`);
    const stored = await this.d.store.putKey(privateKey, { serverNames: req.serverNames, origin: 'imported' });
    const key = registerStoredKey(this.d.registry, stored);
    this.d.logger.info({ client: rec.client, keyId: key.keyId, serverNames: key.serverNames }, 'key stored');
    return { type: FrameType.RESULT, body: encodeKeyInfos([keyInfoOf(key)]) };
  }

  async #generateKey(frame: Frame, session: Session, rec: AuditRecord): Promise<Reply> {
    this.#admin(session);
    const req = decodeGenerateKeyRequest(frame.body);
    rec.reason = `type ${req.keyType}`;
    const privateKey = await generate(req.keyType);
    const stored = await this.d.store.putKey(privateKey, { serverNames: req.serverNames, origin: 'generated' });
    rec.keyId = stored.keyId;
    const key = registerStoredKey(this.d.registry, stored);
    this.d.logger.info({ client: rec.client, keyId: key.keyId, keyType: req.keyType, serverNames: key.serverNames }, 'key generated');
    return { type: FrameType.RESULT, body: encodeKeyInfos([keyInfoOf(key)]) };
  }

  async #deleteKey(frame: Frame, session: Session, rec: AuditRecord): Promise<Reply> {
    this.#admin(session);
    const req = decodeDeleteKeyRequest(frame.body);
    rec.keyId = req.keyId;
    const key = this.d.registry.get(req.keyId);
    if (!key) throw new KeyOperationError('unknown-key', `no key ${req.keyId}`);
    if (key.source !== 'store') throw refused(`key ${req.keyId} is served from ${key.source}; remove it from keyd's configuration instead`);
    await this.d.store.deleteKey(req.keyId);
    this.d.registry.remove(req.keyId);
    this.d.logger.info({ client: rec.client, keyId: req.keyId }, 'key deleted');
    return { type: FrameType.RESULT, body: new Uint8Array(0) };
  }
}
