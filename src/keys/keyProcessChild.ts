/**
 * The key process: the only process that opens the key file and holds the private key.
 * Started by keyProcess.ts as `node keyProcessChild.js [--dumpable-policy=P]
 * [--dc-max-validity=SECONDS] KEYPATH` with a private socketpair on fd 3; it answers sign,
 * decryptPremaster and (with --dc-max-validity) delegated-credential requests over it and
 * exits when the front closes the channel. Started as `node keyProcessChild.js
 * [--dumpable-policy=P] --psk FILE random|reject` it holds PSKs instead and answers only
 * PSK requests: TLS 1.2 master secrets, TLS 1.3 binders and transcript-bound secrets. Before it reads a secret it makes itself non-dumpable
 * (keyProcessHardening.ts), so that the front cannot read its memory.
 *
 * Not a general signing oracle: every sign request must be a TLS handshake signature
 * input (checkSignInput), or it is refused. This does not stop a compromised front that
 * relays real handshakes; it stops it from getting arbitrary data signed with the key.
 */
import { createPrivateKey, createPublicKey, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { describeUnusableKey, isRsaKey, schemeFitsVersion, schemeInfo, schemesForKey, cryptoParams, type SignatureScheme } from '../tls/crypto/signatureSchemes.js';
import { InlineSignBudget, inlineSignable } from './inlineSignBudget.js';
import { NON_DUMPABLE_POLICIES, makeNonDumpable, type HardeningResult, type NonDumpablePolicy } from './keyProcessHardening.js';
import { DelegationRefusedError, checkDcMaxValidity, issueWithPrivateKey, type DelegationHolder } from './delegatedCredentialIssuer.js';
import { KeyOperationError, UnknownPskIdentityError, type KeyErrorCode } from './keyOperations.js';
import { LocalPsk } from './localPsk.js';
import {
  FrameDecoder,
  FrameType,
  FrameWriter,
  MAX_FRAME,
  MAX_OPERATION_INPUT,
  UNKNOWN_PSK_IDENTITY,
  decodeIssueDc,
  decodePskMasterSecret,
  decodePurpose,
  decodeTls13Psk,
  encodeError,
  encodeFrame,
  encodeReady,
  type Frame,
  type Tls13PskFrame,
} from './keyProcessProtocol.js';
import { decryptPremasterImplicit } from './rsaPremaster.js';
import { checkSignInput, versionOfPurpose } from './signingPolicy.js';
import { parsePskEntries } from './pskFile.js';

/**
 * Operations handed to node:crypto at once. libuv's pool has 4 threads; a few more keep
 * it busy, and the rest wait here where a CANCEL can still drop them.
 */
const MAX_RUNNING = 8;

interface Job {
  id: number;
  type: number;
  payload: Buffer;
}

class KeyServer {
  readonly #key: KeyObject;
  readonly #schemes: readonly number[];
  readonly #out: FrameWriter;
  readonly #queue: Job[] = [];
  /** Ids handed to node:crypto and not finished; a cancelled one is removed so its result is dropped. */
  readonly #running = new Set<number>();
  #runningCount = 0;
  /** Set for keys whose signatures may run inline (EC and EdDSA always do, RSA when this allows). */
  readonly #inline: InlineSignBudget | undefined;
  /** Longest delegated credential it signs, ms; undefined: it signs none. */
  readonly #dcMaxValidityMs: number | undefined;
  readonly #holder: DelegationHolder;

  constructor(key: KeyObject, schemes: readonly SignatureScheme[], out: FrameWriter, dcMaxValidityMs: number | undefined) {
    this.#key = key;
    this.#dcMaxValidityMs = dcMaxValidityMs;
    this.#holder = { spki: createPublicKey(key).export({ type: 'spki', format: 'der' }), schemes };
    if (isRsaKey(key) && inlineSignable(key.asymmetricKeyDetails?.modulusLength)) this.#inline = new InlineSignBudget();
    this.#schemes = schemes;
    this.#out = out;
  }

  onFrame(f: Frame): void {
    switch (f.type) {
      case FrameType.pskMasterSecret:
      case FrameType.tls13Psk:
        this.#out.send(encodeError(f.id, 'unsupported', 'this key process holds a private key, not PSKs'));
        return;
      case FrameType.sign:
      case FrameType.decrypt:
        // The payload is a view of a whole socket read: a job keeps its own few bytes, not the read.
        // Started by pump() once the whole read is decoded.
        this.#queue.push({ id: f.id, type: f.type, payload: Buffer.from(f.payload) });
        return;
      case FrameType.issueDc:
        // About once an hour per front, and a single signature: answered at once.
        this.#issueDc(f);
        return;
      case FrameType.cancel: {
        const i = this.#queue.findIndex((j) => j.id === f.id);
        if (i >= 0) this.#queue.splice(i, 1);
        else this.#running.delete(f.id);
        return;
      }
      default:
        this.#out.send(encodeError(f.id, 'bad-request', `unknown request type ${f.type}`));
    }
  }

  /**
   * Starts queued jobs: after each read (`afterRead`), and as pool work finishes. Only the
   * last job of a read may sign RSA inline: the others are on the pool by then, and no
   * finished result waits in the writer behind it.
   */
  pump(afterRead = false): void {
    while (this.#runningCount < MAX_RUNNING && this.#queue.length > 0) {
      const job = this.#queue.shift() as Job;
      if (job.type === FrameType.sign) this.#sign(job, afterRead && this.#queue.length === 0);
      else this.#decrypt(job);
    }
  }

  #fail(id: number, code: KeyErrorCode, message: string): void {
    this.#out.send(encodeError(id, code, message));
  }

  #sign(job: Job, mayBlock: boolean): void {
    const p = job.payload;
    if (p.length < 3) return this.#fail(job.id, 'bad-request', 'truncated sign request');
    const scheme = p.readUInt16BE(0);
    const purpose = decodePurpose(p[2]);
    const message = p.subarray(3);
    if (purpose === null) return this.#fail(job.id, 'bad-request', 'unknown signing purpose');
    if (message.length > MAX_OPERATION_INPUT) return this.#fail(job.id, 'refused', 'message too long for a handshake signature');
    const info = schemeInfo(scheme);
    // The widest fit (TLS 1.2's) first: a scheme no version allows is 'unsupported' whatever the input.
    if (!info || !schemeFitsVersion(this.#schemes, scheme, 'TLSv1.2')) return this.#fail(job.id, 'unsupported', `signature scheme 0x${scheme.toString(16).padStart(4, '0')} does not fit this key`);
    // The key process serves one local front, which may be a TLS 1.2 client with this key.
    const shape = checkSignInput(message, scheme, purpose, { tls12ClientCertificateVerify: true });
    if (!shape.ok) return this.#fail(job.id, 'refused', `refused: ${shape.reason}`);
    // The input's shape says the TLS version, and so whether an ECDSA scheme binds the curve.
    if (!schemeFitsVersion(this.#schemes, scheme, versionOfPurpose(shape.purpose))) {
      return this.#fail(job.id, 'unsupported', `signature scheme ${info.name} does not fit this key`);
    }

    const params = cryptoParams(info, this.#key);
    const sign = (): Buffer => cryptoSign(params.algorithm, message, params.key);
    // EC and EdDSA signatures take tens of microseconds, less than a hop to the pool and
    // back: they run inline. So may an RSA one (see InlineSignBudget).
    const rsa = isRsaKey(this.#key);
    if (!rsa || (mayBlock && this.#inline?.allows())) {
      let sig: Buffer;
      try {
        sig = rsa ? this.#inline!.run(sign) : sign();
      } catch {
        return this.#fail(job.id, 'internal', 'signing failed');
      }
      // The reply leaves with the others of this read.
      this.#out.send(encodeFrame(FrameType.ok, job.id, sig));
      return;
    }
    this.#runningCount++;
    this.#running.add(job.id);
    // The callback form runs on libuv's pool, so concurrent RSA signatures do not serialise this loop.
    cryptoSign(params.algorithm, message, params.key, (err, sig) => {
      this.#runningCount--;
      if (this.#running.delete(job.id)) {
        if (err) this.#fail(job.id, 'internal', 'signing failed');
        else this.#out.send(encodeFrame(FrameType.ok, job.id, sig));
      }
      this.pump();
    });
  }

  #issueDc(f: Frame): void {
    if (this.#dcMaxValidityMs === undefined) return this.#fail(f.id, 'refused', 'delegated credentials are not enabled for this key process (start it with delegatedCredentials)');
    const req = decodeIssueDc(f.payload);
    if ('error' in req) return this.#fail(f.id, 'bad-request', req.error);
    try {
      const { signature } = issueWithPrivateKey(this.#key, this.#holder, req, this.#dcMaxValidityMs, Date.now());
      this.#out.send(encodeFrame(FrameType.ok, f.id, signature));
    } catch (e) {
      if (e instanceof DelegationRefusedError || e instanceof KeyOperationError) return this.#fail(f.id, e.code, e.message);
      this.#fail(f.id, 'internal', 'signing the delegated credential failed');
    }
  }

  #decrypt(job: Job): void {
    const p = job.payload;
    if (this.#key.asymmetricKeyType !== 'rsa') return this.#fail(job.id, 'unsupported', 'RSA key exchange needs an RSA key');
    if (p.length < 2) return this.#fail(job.id, 'bad-request', 'truncated decrypt request');
    if (p.length - 2 > MAX_OPERATION_INPUT) return this.#fail(job.id, 'bad-request', 'ciphertext too long');
    const clientVersion = p.readUInt16BE(0);
    // Synchronous (node:crypto has no async privateDecrypt); about one RSA operation,
    // and it delays only this process, never the front. Charged to the inline budget.
    const decrypt = (): Uint8Array => decryptPremasterImplicit(this.#key, p.subarray(2), clientVersion);
    const premaster = this.#inline ? this.#inline.run(decrypt) : decrypt();
    this.#out.send(encodeFrame(FrameType.ok, job.id, premaster));
    premaster.fill(0);
  }
}

/**
 * Answers PSK_MASTER_SECRET (TLS 1.2) and TLS13_PSK requests from the PSKs of one file.
 * Anything else, and any PSK request not of the exact shape (decodePskMasterSecret,
 * decodeTls13Psk, Tls13PskSteps), is refused. The work is a few HMACs, so it is done at once.
 */
class PskServer {
  readonly #holder: LocalPsk;
  readonly #out: FrameWriter;
  readonly #never = new AbortController().signal;

  constructor(holder: LocalPsk, out: FrameWriter) {
    this.#holder = holder;
    this.#out = out;
  }

  onFrame(f: Frame): void {
    if (f.type === FrameType.cancel) return; // answered synchronously: nothing is ever pending
    if (f.type === FrameType.sign || f.type === FrameType.decrypt) {
      this.#out.send(encodeError(f.id, 'unsupported', 'this key process holds PSKs, not a private key'));
      return;
    }
    if (f.type === FrameType.tls13Psk) {
      this.#tls13(f);
      return;
    }
    if (f.type !== FrameType.pskMasterSecret) {
      this.#out.send(encodeError(f.id, 'bad-request', `unknown request type ${f.type}`));
      return;
    }
    const req = decodePskMasterSecret(f.payload);
    if ('error' in req) {
      this.#out.send(encodeError(f.id, 'bad-request', req.error));
      return;
    }
    this.#holder.tls12MasterSecret(req, { tlsVersion: 'TLSv1.2' }, this.#never).then(
      (ms) => {
        this.#out.send(encodeFrame(FrameType.ok, f.id, ms));
        ms.fill(0);
      },
      (err: Error) => {
        if (err instanceof UnknownPskIdentityError) this.#out.send(encodeFrame(FrameType.error, f.id, Buffer.of(UNKNOWN_PSK_IDENTITY), Buffer.from('unknown PSK identity')));
        else this.#out.send(encodeError(f.id, 'bad-request', 'invalid PSK master secret request'));
      },
    );
  }

  /**
   * A TLS 1.3 external-PSK step (tls13PskSteps.ts): only transcript-bound results leave,
   * concatenated (the front splits them by the hash's length); the copies here are zeroed
   * once written.
   */
  #tls13(f: Frame): void {
    const r = decodeTls13Psk(f.payload);
    if ('error' in r) {
      this.#out.send(encodeError(f.id, 'bad-request', r.error));
      return;
    }
    let parts: Uint8Array[];
    try {
      parts = this.#tls13Step(r);
    } catch (err) {
      if (err instanceof UnknownPskIdentityError) this.#out.send(encodeFrame(FrameType.error, f.id, Buffer.of(UNKNOWN_PSK_IDENTITY), Buffer.from('unknown PSK identity')));
      else if (err instanceof KeyOperationError) this.#out.send(encodeError(f.id, err.code, err.message));
      else this.#out.send(encodeError(f.id, 'internal', 'TLS 1.3 PSK operation failed'));
      return;
    }
    this.#out.send(encodeFrame(FrameType.ok, f.id, ...parts));
    for (const p of parts) p.fill(0);
  }

  #tls13Step(r: Tls13PskFrame): Uint8Array[] {
    const steps = this.#holder.tls13Steps;
    switch (r.step) {
      case 'binder':
        return [steps.binder(r)];
      case 'verify-binder':
        return [Buffer.of(steps.verifyBinder({ ...r, binder: r.binder ?? new Uint8Array(0) }).accepted ? 1 : 0)];
      case 'handshake-secrets': {
        const s = steps.handshakeSecrets(r);
        return [s.client, s.server];
      }
      case 'application-secrets': {
        const s = steps.applicationSecrets(r);
        return [s.client, s.server, s.exporter];
      }
      case 'resumption-master-secret':
        return [steps.resumptionMasterSecret(r)];
    }
  }
}

/** Loads the private key; returns it or a message naming the file and the reason (never content). */
function loadKey(path: string): { key: KeyObject } | { error: string } {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    const why: Record<string, string> = {
      ENOENT: 'no such file',
      EACCES: 'permission denied',
      EISDIR: 'is a directory',
      ENOTDIR: 'a path component is not a directory',
    };
    return { error: `cannot read key file ${path}: ${why[code] ?? 'read failed'} (${code})` };
  }
  try {
    const isPem = data.indexOf('-----BEGIN') >= 0;
    if (isPem && data.indexOf('-----BEGIN CERTIFICATE') >= 0 && data.indexOf('PRIVATE KEY-----') < 0) {
      return { error: `key file ${path} holds a certificate, not a private key` };
    }
    let key: KeyObject | undefined;
    // OpenSSL reports a missing passphrase as "interrupted or cancelled"; the PEM markers say it plainly.
    let encrypted = isPem && (data.indexOf('-----BEGIN ENCRYPTED PRIVATE KEY') >= 0 || data.indexOf('Proc-Type: 4,ENCRYPTED') >= 0);
    const attempts: (() => KeyObject)[] = isPem
      ? [() => createPrivateKey({ key: data, format: 'pem' })]
      : (['pkcs8', 'pkcs1', 'sec1'] as const).map((type) => () => createPrivateKey({ key: data, format: 'der', type }));
    for (const attempt of attempts) {
      try {
        key = attempt();
        break;
      } catch (e) {
        // OpenSSL's messages name no key bytes, but they are not needed either.
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ERR_MISSING_PASSPHRASE' || code === 'ERR_OSSL_CRYPTO_INTERRUPTED_OR_CANCELLED') encrypted = true;
      }
    }
    if (!key && encrypted) return { error: `key file ${path} is encrypted; the key process needs an unencrypted key` };
    if (!key) return { error: `key file ${path} does not contain a private key (PEM or DER: PKCS#8, PKCS#1 or SEC1)` };
    return { key };
  } finally {
    // Do not leave a second copy of the key in this process's heap longer than needed.
    data.fill(0);
  }
}

function main(): void {
  process.title = 'keyward-key';
  const args = process.argv.slice(2);
  // Optional first argument: what to do about being dumpable (default 'require').
  let policy: NonDumpablePolicy = 'require';
  const p = /^--dumpable-policy=(.*)$/.exec(args[0] ?? '');
  if (p) {
    args.shift();
    policy = p[1] as NonDumpablePolicy;
  }
  // Optional: sign delegated credentials valid for at most this many seconds.
  let dcMaxValidityMs: number | undefined;
  const dc = /^--dc-max-validity=(\d+)$/.exec(args[0] ?? '');
  if (dc) {
    args.shift();
    dcMaxValidityMs = Number(dc[1]) * 1000;
  }
  let channel: Socket;
  const reads = new ReadHandler();
  try {
    // Reads land in one buffer of this process's own (node:net's `onread`), handed to the
    // decoder without the stream machinery: no Buffer, 'data' event or read-more tick per read.
    channel = new Socket({ fd: 3, readable: true, writable: true, onread: { buffer: Buffer.allocUnsafe(READ_BUFFER), callback: reads.callback } });
  } catch {
    process.stderr.write('keyward key process: no channel on fd 3; it must be started by keyProcess\n');
    process.exit(2);
  }
  channel.on('error', () => process.exit(3));
  // The front is gone (or closed us): nothing left to serve.
  channel.on('end', () => process.exit(0));
  channel.on('close', () => process.exit(0));
  const out = new FrameWriter((b) => channel.write(b));

  if (!NON_DUMPABLE_POLICIES.includes(policy)) return failStart(channel, `unknown dumpable policy ${JSON.stringify(policy)}`);
  const badDc = dcMaxValidityMs === undefined ? undefined : checkDcMaxValidity(dcMaxValidityMs);
  if (badDc) return failStart(channel, badDc);
  // Before any secret is read: from here on the front cannot read this process's memory.
  const hardening: HardeningResult = policy === 'off' ? { nonDumpable: false, reason: 'turned off (policy "off")' } : makeNonDumpable();
  if (!hardening.nonDumpable && policy === 'require') {
    return failStart(channel, `cannot make the key process non-dumpable: ${hardening.reason}; refusing to load a secret the front could read from its memory`);
  }
  const ready = { nonDumpable: hardening.nonDumpable };

  const keyPath = args[0];
  if (keyPath === '--psk') {
    servePsks(channel, reads, out, args[1], args[2], ready);
    return;
  }
  const loaded = keyPath ? loadKey(keyPath) : { error: 'no key file given' };
  if ('error' in loaded) return failStart(channel, loaded.error);
  const key = loaded.key;
  const publicKey = createPublicKey(key);
  const schemes = schemesForKey(publicKey);
  if (schemes.length === 0) return failStart(channel, `key in ${keyPath} is ${describeUnusableKey(key)}`);
  const server = new KeyServer(key, schemes, out, dcMaxValidityMs);
  serveFrames(channel, reads, out, (f) => server.onFrame(f), encodeReady(schemes, publicKey.export({ type: 'spki', format: 'der' }), ready), () => server.pump(true));
}

/** Tells the front why this process cannot serve, then exits. */
function failStart(channel: Socket, msg: string): void {
  channel.end(encodeFrame(FrameType.startFailed, 0, Buffer.from(msg, 'utf8')), () => process.exit(1));
}

/**
 * Says it is ready, then answers frames until the channel closes; `afterRead` runs once
 * each read is decoded; replies leave once per read.
 */
function serveFrames(channel: Socket, reads: ReadHandler, out: FrameWriter, onFrame: (f: Frame) => void, ready: Buffer, afterRead?: () => void): void {
  const decoder = new FrameDecoder();
  reads.serve((chunk) =>
    out.batch(() => {
      try {
        decoder.push(chunk, onFrame);
      } catch {
        // A malformed stream means a broken front; stop rather than guess.
        process.exit(4);
      }
      afterRead?.();
    }),
  );
  channel.write(ready);
}

/** Size of the read buffer: a read may hold a whole frame of the largest size, and its neighbours. */
const READ_BUFFER = 2 * MAX_FRAME;

/**
 * The channel's `onread` callback, given its reader once the process knows what it serves.
 * Each read is a view of the one read buffer, zeroed once read (PSK requests carry
 * secrets): whatever outlives the reader's call is copied (the key server copies each
 * job's payload).
 */
class ReadHandler {
  #reader: ((chunk: Buffer) => void) | undefined;

  readonly callback = (n: number, buf: Uint8Array): boolean => {
    try {
      // Nothing comes before READY; a process that failed to start has no reader.
      this.#reader?.(Buffer.from(buf.buffer, buf.byteOffset, n));
    } finally {
      buf.fill(0, 0, n);
    }
    return true; // keep reading
  };

  serve(reader: (chunk: Buffer) => void): void {
    this.#reader = reader;
  }
}

/** PSK mode: load the PSK file, then answer PSK requests until the channel closes. */
function servePsks(channel: Socket, reads: ReadHandler, out: FrameWriter, path: string | undefined, unknown: string | undefined, ready: { nonDumpable: boolean }): void {
  const fail = (msg: string): void => failStart(channel, msg);
  if (!path) return fail('no PSK file given');
  if (unknown !== 'random' && unknown !== 'reject') return fail('unknown-identity mode must be random or reject');
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (e) {
    return fail(`cannot read PSK file ${path}: ${(e as NodeJS.ErrnoException).code ?? 'read failed'}`);
  }
  let holder: LocalPsk;
  try {
    const psks = parsePskEntries(data, path);
    holder = new LocalPsk(psks, { unknownIdentity: unknown });
    for (const v of psks.values()) v.secret.fill(0);
  } catch (e) {
    return fail((e as Error).message);
  } finally {
    data.fill(0);
  }
  const server = new PskServer(holder, out);
  serveFrames(channel, reads, out, (f) => server.onFrame(f), encodeReady([], Buffer.alloc(0), ready));
}

main();
