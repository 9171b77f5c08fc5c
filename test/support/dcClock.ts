/**
 * A clock for delegated-credential tests: timers that fire only when the clock is moved,
 * and a local issuer on that clock that can be made to fail (a key holder gone away).
 */
import type { DelegatedCredentialIssuer, DelegatedCredentialRequest } from '../../src/keys/delegatedCredentialIssuer.js';
import type { DelegatedCredentialManager, ManagerTimers } from '../../src/keys/delegatedCredentials.js';
import { KeyOperationError, type OperationContext } from '../../src/keys/keyOperations.js';
import { LocalDelegatedCredentialIssuer } from '../../src/keys/localDelegatedCredentialIssuer.js';
import type { DelegationCert } from './delegationPki.js';

/** Timers on a clock that moves only when told. */
export class FakeClock implements ManagerTimers {
  t: number;
  #next = 1;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();
  constructor(start: number) {
    this.t = start;
  }
  now = (): number => this.t;
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#next++;
    this.#timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.#timers.delete(h as number);
  }
  /** Moves to `t + ms`, running due timers in order and letting the manager finish each issue. */
  async advance(ms: number, m: DelegatedCredentialManager): Promise<void> {
    const target = this.t + ms;
    for (;;) {
      let due: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.#timers) if (e[1].at <= target && (!due || e[1].at < due[1].at)) due = e;
      if (!due) break;
      this.#timers.delete(due[0]);
      this.t = due[1].at;
      due[1].fn();
      await m.idle();
    }
    this.t = target;
  }
}

/** A local issuer on the fake clock that can be made to fail. */
export class TestIssuer implements DelegatedCredentialIssuer {
  readonly inner: LocalDelegatedCredentialIssuer;
  calls = 0;
  failing = false;
  readonly requests: DelegatedCredentialRequest[] = [];
  constructor(cert: DelegationCert, clock: FakeClock) {
    this.inner = new LocalDelegatedCredentialIssuer(cert.privateKey, { now: clock.now });
  }
  get keyId(): string {
    return this.inner.keyId;
  }
  get publicKey() {
    return this.inner.publicKey;
  }
  issueDelegatedCredential(req: DelegatedCredentialRequest, ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array> {
    this.calls++;
    this.requests.push(req);
    if (this.failing) return Promise.reject(new KeyOperationError('unavailable', 'keyd is down (test)'));
    return this.inner.issueDelegatedCredential(req, ctx, signal);
  }
}
