/**
 * Bounds the proxy's private-key work: at most `maxPending` key operations run in the key
 * holders at once; beyond that new ones wait in a queue of at most `maxQueued`, and beyond
 * that they are refused at once (the handshake fails with internal_error) rather than
 * letting memory grow with a flood of half-open handshakes. A wrapped key also reports
 * each operation's latency and outcome, for the metrics.
 */
import {
  KeyOperationError,
  signaturesVouchedFor,
  vouchForSignatures,
  type CertificateKey,
  type OperationContext,
  type PskMasterSecretRequest,
  type PskOperations,
  type Tls13PskOperations,
} from '../keys/keyOperations.js';
import type { SignatureScheme } from '../tls/crypto/signatureSchemes.js';

/** One finished key operation, as the metrics see it. */
export interface KeyOperationReport {
  holder: string;
  /** `psk`: a TLS 1.2 PSK master secret; `tls13-psk`: a step of a TLS 1.3 external PSK's key schedule. */
  operation: 'sign' | 'decrypt' | 'psk' | 'tls13-psk';
  /** 'ok', 'refused-busy' (queue full), or the KeyOperationError code. */
  outcome: string;
  /** Seconds from the request to the answer, queueing included. */
  seconds: number;
  connectionId?: string;
  /** The PSK identity a PSK operation named (UTF-8 decoded): public, sent in the clear by the client. */
  pskIdentity?: string;
}

/** TLS 1.2 RSA premaster decryption, which an RSA key holder may offer beside signing. */
type DecryptPremaster = (ciphertext: Uint8Array, clientVersion: number, ctx: OperationContext, signal: AbortSignal) => Promise<Uint8Array>;

interface Waiter {
  start: () => void;
  signal: AbortSignal;
  onAbort: () => void;
}

/** The shared limit on key operations; wrap every key of the proxy with the same gate. */
export class KeyOperationGate {
  #running = 0;
  readonly #queue: Waiter[] = [];

  /**
   * @param maxPending operations running in key holders at once (>= 1)
   * @param maxQueued operations waiting for a slot (>= 0); more are refused
   * @param report called once per operation when it settles
   */
  constructor(
    public maxPending: number,
    public maxQueued: number,
    private readonly report: (r: KeyOperationReport) => void = () => undefined,
  ) {
    if (!Number.isInteger(maxPending) || maxPending < 1) throw new RangeError('maxPending must be a positive integer');
    if (!Number.isInteger(maxQueued) || maxQueued < 0) throw new RangeError('maxQueued must be a non-negative integer');
  }

  /** Operations running now. */
  get running(): number {
    return this.#running;
  }

  /** Operations waiting for a slot. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Runs `op` within the limit, reporting it under `holder`. */
  async run<T>(holder: string, operation: KeyOperationReport['operation'], ctx: OperationContext, signal: AbortSignal, op: () => Promise<T>, pskIdentity?: Uint8Array): Promise<T> {
    const started = performance.now();
    const done = (outcome: string) =>
      this.report({
        holder,
        operation,
        outcome,
        seconds: (performance.now() - started) / 1000,
        ...(ctx.connectionId ? { connectionId: ctx.connectionId } : {}),
        ...(pskIdentity ? { pskIdentity: Buffer.from(pskIdentity).toString('utf8') } : {}),
      });
    try {
      await this.#acquire(signal);
    } catch (err) {
      done(err instanceof KeyOperationError ? (err.code === 'unavailable' ? 'refused-busy' : err.code) : 'aborted');
      throw err;
    }
    try {
      const result = await op();
      done('ok');
      return result;
    } catch (err) {
      done(err instanceof KeyOperationError ? err.code : 'internal');
      throw err;
    } finally {
      this.#release();
    }
  }

  #acquire(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(signal.reason instanceof Error ? signal.reason : new KeyOperationError('aborted', 'the TLS connection closed'));
    if (this.#running < this.maxPending) {
      this.#running++;
      return Promise.resolve();
    }
    if (this.#queue.length >= this.maxQueued) {
      return Promise.reject(new KeyOperationError('unavailable', `too many key operations pending (${this.maxPending} running, ${this.maxQueued} queued)`));
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        signal,
        start: () => {
          signal.removeEventListener('abort', waiter.onAbort);
          this.#running++;
          resolve();
        },
        onAbort: () => {
          const i = this.#queue.indexOf(waiter);
          if (i >= 0) this.#queue.splice(i, 1);
          reject(signal.reason instanceof Error ? signal.reason : new KeyOperationError('aborted', 'the TLS connection closed'));
        },
      };
      signal.addEventListener('abort', waiter.onAbort, { once: true });
      this.#queue.push(waiter);
    });
  }

  #release(): void {
    this.#running--;
    const next = this.#queue.shift();
    if (next) next.start();
  }

  /** `key` with every operation passing through this gate, reported as `holder`. */
  wrapKey(key: CertificateKey, holder: string): CertificateKey {
    const wrapped: CertificateKey = {
      publicKey: key.publicKey,
      schemes: key.schemes,
      keyId: key.keyId,
      sign: (scheme: SignatureScheme, message: Uint8Array, ctx: OperationContext, signal: AbortSignal) =>
        this.run(holder, 'sign', ctx, signal, () => key.sign(scheme, message, ctx, signal)),
      ...(key.close ? { close: () => key.close!() } : {}),
    };
    const decrypt = (key as { decryptPremaster?: DecryptPremaster }).decryptPremaster?.bind(key);
    if (decrypt) {
      wrapped.decryptPremaster = (ciphertext: Uint8Array, clientVersion: number, ctx: OperationContext, signal: AbortSignal) => this.run(holder, 'decrypt', ctx, signal, () => decrypt(ciphertext, clientVersion, ctx, signal));
    }
    // The gate passes the holder's signature through untouched: whatever the holder vouches for, so does the wrapper.
    if (signaturesVouchedFor(key)) vouchForSignatures(wrapped);
    return wrapped;
  }

  /** `psk` with every operation passing through this gate (TLS 1.2 and, when it has them, TLS 1.3 steps), reported as `holder`. */
  wrapPsk(psk: PskOperations & Partial<Tls13PskOperations>, holder: string): PskOperations & Partial<Tls13PskOperations> {
    const wrapped: PskOperations & Partial<Tls13PskOperations> = {
      tls12MasterSecret: (req: PskMasterSecretRequest, ctx: OperationContext, signal: AbortSignal) =>
        this.run(holder, 'psk', ctx, signal, () => psk.tls12MasterSecret(req, ctx, signal), req.identity),
      ...(psk.close ? { close: () => psk.close!() } : {}),
    };
    const step = <R extends { identity: Uint8Array }, T>(op: ((req: R, ctx: OperationContext, signal: AbortSignal) => Promise<T>) | undefined) =>
      op && ((req: R, ctx: OperationContext, signal: AbortSignal) => this.run(holder, 'tls13-psk', ctx, signal, () => op.call(psk, req, ctx, signal), req.identity));
    const tls13: Partial<Tls13PskOperations> = {
      tls13Binder: step(psk.tls13Binder),
      tls13VerifyBinder: step(psk.tls13VerifyBinder),
      tls13HandshakeSecrets: step(psk.tls13HandshakeSecrets),
      tls13ApplicationSecrets: step(psk.tls13ApplicationSecrets),
      tls13ResumptionMasterSecret: step(psk.tls13ResumptionMasterSecret),
    };
    for (const [name, op] of Object.entries(tls13)) if (op) Object.assign(wrapped, { [name]: op });
    return wrapped;
  }
}
