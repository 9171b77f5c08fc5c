import { timingSafeEqual } from 'node:crypto';
import type { OperationContext, Tls13PskOperations } from '../../keys/keyOperations.js';
import { hashLength, type HashName } from '../crypto/hash.js';
import { KeySchedule13 } from '../crypto/keySchedule13.js';
import { AlertDescription } from '../wire/alerts.js';
import { TlsAlertError } from '../wire/errors.js';
import type { NewKeyOperation, Tls13PskStepRequest } from './events.js';
import type { HandshakeHost, Wait } from './handshakeHost.js';

/**
 * What a stage of the key schedule gives: its value now (computed in the front), or a key
 * operation to wait on and how to read its result (a key holder that keeps the PSK).
 */
export type StageResult<T> = { readonly value: T } | { readonly operation: NewKeyOperation; readonly decode: (result: Uint8Array) => T };

/** Client and server traffic secrets of one epoch. */
export interface TrafficPair {
  readonly client: Buffer;
  readonly server: Buffer;
}

/**
 * The TLS 1.3 key schedule of one connection as the handshakes use it (RFC 8446 7.1), in
 * the stages docs/tls13-psk.md names: each takes a transcript hash (and, from the
 * handshake stage on, the (EC)DHE secret, null for psk_ke) and returns transcript-bound
 * secrets only. `localKeyStages` computes them in the front (no PSK, or a resumption PSK);
 * `holderKeyStages` (external PSKs) answers with key operations that the PSK holder runs,
 * which the handshakes wait on through {@link StageRunner}.
 */
export interface KeyStages13 {
  readonly hash: HashName;
  /** Client: the binder over Hash(ClientHello truncated before the binders). */
  binder(truncatedHelloHash: Uint8Array): StageResult<Buffer>;
  /** Server: whether the client's binder is right (compared in constant time). */
  verifyBinder(truncatedHelloHash: Uint8Array, binder: Uint8Array): StageResult<boolean>;
  /** `helloHash` = Hash(ClientHello..ServerHello). */
  handshakeSecrets(dheSecret: Uint8Array | null, helloHash: Uint8Array): StageResult<TrafficPair>;
  /** `handshakeHash` = Hash(ClientHello..server Finished); `exporter` is the exporter master secret. */
  applicationSecrets(dheSecret: Uint8Array | null, handshakeHash: Uint8Array): StageResult<TrafficPair & { readonly exporter: Buffer }>;
  /**
   * `clientFinishedHash` = Hash(ClientHello..client Finished). Absent when the schedule
   * gives none (a PSK holder without it): then no tickets follow the handshake.
   */
  resumptionMasterSecret?(dheSecret: Uint8Array | null, clientFinishedHash: Uint8Array): StageResult<Buffer>;
  /** The handshake is over (or failed): forget what the stages keep. */
  wipe(): void;
}

/** The stages computed in the front: `psk` is a resumption PSK, absent for a certificate handshake. */
export function localKeyStages(hash: HashName, psk?: Uint8Array): KeyStages13 {
  const ks = new KeySchedule13(hash, psk);
  return {
    hash,
    binder: (h) => ({ value: ks.binder(h) }),
    verifyBinder: (h, binder) => {
      const expected = ks.binder(h);
      return { value: expected.length === binder.length && timingSafeEqual(expected, binder) };
    },
    handshakeSecrets: (dhe, h) => ({ value: ks.handshakeSecrets(dhe, h) }),
    applicationSecrets: (_dhe, h) => ({ value: ks.applicationSecrets(h) }),
    resumptionMasterSecret: (_dhe, h) => ({ value: ks.resumptionMasterSecret(h) }),
    wipe: () => ks.wipe(),
  };
}

/** What {@link holderKeyStages} needs: the holder, the PSK it keeps and how a request is described. */
export interface HolderStagesOptions {
  readonly holder: Tls13PskOperations;
  /** The external PSK's identity, exact bytes. */
  readonly identity: Uint8Array;
  /** The PSK's hash, which the suite's must be (RFC 8446 4.2.11). */
  readonly hash: 'sha256' | 'sha384';
  /** The connection's audit context, asked for at each request. */
  readonly context: () => OperationContext;
  /** Whether to ask for the resumption master secret (the holder must offer it). */
  readonly resumption: boolean;
}

/**
 * The stages of an external PSK that its holder keeps (docs/tls13-psk.md): every stage is
 * a `tls13Psk` key operation, and only transcript-bound values come back. Each answer is
 * checked for its length: a holder that answers otherwise fails the handshake with
 * internal_error, never a short key.
 */
export function holderKeyStages(opts: HolderStagesOptions): KeyStages13 {
  const { holder, identity, hash } = opts;
  const n = hashLength(hash);
  const stage = <T>(step: Tls13PskStepRequest, parts: number, decode: (secrets: Buffer[]) => T): StageResult<T> => ({
    operation: { kind: 'tls13Psk', holder, step, context: opts.context() },
    decode: (result) => {
      if (result.length !== parts * n) throw new TlsAlertError(AlertDescription.internal_error, `the PSK holder answered ${result.length} bytes to ${step.step} (expected ${parts * n})`);
      const secrets = Array.from({ length: parts }, (_, i) => Buffer.from(result.subarray(i * n, (i + 1) * n)));
      result.fill(0);
      return decode(secrets);
    },
  });
  const schedule = (step: 'handshake-secrets' | 'application-secrets' | 'resumption-master-secret', dheSecret: Uint8Array | null, transcriptHash: Uint8Array): Tls13PskStepRequest => ({
    step,
    request: { identity, hash, dheSecret, transcriptHash },
  });
  return {
    hash,
    binder: (transcriptHash) => stage({ step: 'binder', request: { identity, hash, transcriptHash } }, 1, ([b]) => b),
    verifyBinder: (transcriptHash, binder) => ({
      operation: { kind: 'tls13Psk', holder, step: { step: 'verify-binder', request: { identity, hash, transcriptHash, binder } }, context: opts.context() },
      decode: (result) => {
        if (result.length !== 1 || result[0] > 1) throw new TlsAlertError(AlertDescription.internal_error, 'the PSK holder answered a malformed binder verdict');
        return result[0] === 1;
      },
    }),
    handshakeSecrets: (dhe, h) => stage(schedule('handshake-secrets', dhe, h), 2, ([client, server]) => ({ client, server })),
    applicationSecrets: (dhe, h) => stage(schedule('application-secrets', dhe, h), 3, ([client, server, exporter]) => ({ client, server, exporter })),
    ...(opts.resumption && holder.tls13ResumptionMasterSecret ? { resumptionMasterSecret: (dhe: Uint8Array | null, h: Uint8Array) => stage(schedule('resumption-master-secret', dhe, h), 1, ([rms]) => rms) } : {}),
    // Nothing PSK-derived is kept here: the holder keeps it.
    wipe: () => {},
  };
}

/**
 * Runs key-schedule stages for a handshake: a value goes to the continuation at once; a
 * key operation is requested and the continuation waits for its result (the handshake's
 * `wait` and `keyOperationResult` defer to the runner while one is pending).
 */
export class StageRunner {
  private pending: { readonly opId: number; readonly resume: (result: Uint8Array) => void } | null = null;

  constructor(private readonly host: HandshakeHost) {}

  run<T>(stage: StageResult<T>, then: (value: T) => void): void {
    if ('value' in stage) return then(stage.value);
    const opId = this.host.requestKeyOperation(stage.operation);
    this.pending = { opId, resume: (result) => then(stage.decode(result)) };
  }

  /** The key operation a stage waits on, if any. */
  get wait(): Wait | null {
    return this.pending && { on: 'keyOperation', id: this.pending.opId };
  }

  /** Hands a key operation's result to its stage; false when it is not a stage's. */
  result(opId: number, result: Uint8Array): boolean {
    const p = this.pending;
    if (!p || p.opId !== opId) return false;
    this.pending = null;
    p.resume(result);
    return true;
  }
}
