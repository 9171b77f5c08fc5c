/**
 * keyd wire protocol, version 1: binary, length-prefixed frames with request ids, so one
 * connection carries many concurrent operations. See docs/keyd.md for the full layout.
 *
 * Frame:
 *   u32 length      bytes that follow this field (6 + body), at most the configured maximum
 *   u8  version     PROTOCOL_VERSION
 *   u8  type        FrameType
 *   u32 requestId   chosen by the client; answers carry the id of their request
 *   body            a sequence of TLV fields: u8 tag, u24 length, value
 *
 * The `length` + `version` prefix is the invariant every future version keeps, so a peer
 * can always skip a frame it does not understand and answer it with a typed error.
 * Every decoder here is bounds-checked and throws only KeyOperationError('bad-request').
 */
import { MAX_BOUND_MESSAGES } from '../keys/boundSignInput.js';
import type { DelegatedCredentialRequest } from '../keys/delegatedCredentialIssuer.js';
import { encodeCredential, parseCredential } from '../tls/wire/delegatedCredential.js';
import { KeyOperationError, type KeyErrorCode, type OperationContext, type PskMasterSecretRequest, type SignPurpose, type Tls13PskRequest } from '../keys/keyOperations.js';
import type { Tls13PskStep } from '../keys/tls13PskSteps.js';

/** The protocol version this implementation speaks. */
export const PROTOCOL_VERSION = 1;
/** Bytes of the `length` field. */
export const LENGTH_BYTES = 4;
/** Bytes after `length` that every frame has: version, type, request id. */
export const FRAME_HEADER_BYTES = 6;
/** Default bound on the `length` field (1 MiB): large enough for any key or key list. */
export const DEFAULT_MAX_FRAME_BYTES = 1 << 20;
/** Request id reserved for connection-level errors that answer no particular request. */
export const CONNECTION_REQUEST_ID = 0;

/** Frame types. Requests go client → keyd, RESULT / ERROR / PONG come back. */
export enum FrameType {
  PING = 0x01,
  PONG = 0x02,
  /** Cancels the request whose id the CANCEL frame carries; never answered. */
  CANCEL = 0x03,
  RESULT = 0x04,
  ERROR = 0x05,
  GET_KEY = 0x10,
  SIGN = 0x11,
  /** Reserved: TLS 1.2 RSA key exchange. keyd answers `unsupported` for now. */
  DECRYPT_PREMASTER = 0x12,
  PSK_MASTER_SECRET = 0x13,
  /** Sign a delegated credential (RFC 9345) for the key's certificate. */
  ISSUE_DELEGATED_CREDENTIAL = 0x14,
  /** The fleet's session ticket keys (fronts whose rule says `ticketKeys`, mutual TLS only). */
  GET_TICKET_KEYS = 0x15,
  /** TLS 1.3 external PSK (docs/tls13-psk.md): the client's binder. */
  TLS13_PSK_BINDER = 0x16,
  /** TLS 1.3 external PSK: whether the client's binder is right (constant time; false for an unknown identity). */
  TLS13_PSK_VERIFY_BINDER = 0x17,
  /** TLS 1.3 external PSK: client and server handshake traffic secrets. */
  TLS13_PSK_HANDSHAKE_SECRETS = 0x18,
  /** TLS 1.3 external PSK: client and server application traffic secrets, exporter master secret. */
  TLS13_PSK_APPLICATION_SECRETS = 0x19,
  /** TLS 1.3 external PSK: resumption master secret. */
  TLS13_PSK_RESUMPTION_SECRET = 0x1a,
  PUT_KEY = 0x20,
  LIST_KEYS = 0x21,
  DELETE_KEY = 0x22,
  GENERATE_KEY = 0x23,
  PUT_PSK = 0x24,
  DELETE_PSK = 0x25,
}

const KNOWN_TYPES = new Set<number>(Object.values(FrameType).filter((v): v is number => typeof v === 'number'));

/** True for a frame type this version defines. */
export function isKnownFrameType(type: number): type is FrameType {
  return KNOWN_TYPES.has(type);
}

/** Name of a frame type for logs. */
export function frameTypeName(type: number): string {
  return isKnownFrameType(type) ? FrameType[type] : `0x${type.toString(16).padStart(2, '0')}`;
}

/** TLV tags. One namespace for all bodies; a body uses the tags its type documents. */
export enum Tag {
  KEY_ID = 0x01,
  SERVER_NAME = 0x02,
  SCHEME = 0x03,
  MESSAGE = 0x04,
  OUTPUT = 0x05,
  SPKI = 0x06,
  SCHEMES = 0x07,
  KEY_TYPE = 0x08,
  PRIVATE_KEY = 0x09,
  PSK_IDENTITY = 0x0a,
  PSK_SECRET = 0x0b,
  OTHER_SECRET = 0x0c,
  PRF_HASH = 0x0d,
  EXTENDED = 0x0e,
  SEED = 0x0f,
  CTX_SERVER_NAME = 0x10,
  CTX_PEER_ADDRESS = 0x11,
  CTX_TLS_VERSION = 0x12,
  CTX_PURPOSE = 0x13,
  CTX_CONNECTION_ID = 0x14,
  CIPHERTEXT = 0x15,
  CLIENT_VERSION = 0x16,
  /** SIGN in bound mode, repeated: the handshake messages the input derives from, in order. */
  HANDSHAKE_MESSAGE = 0x17,
  /** ISSUE_DELEGATED_CREDENTIAL: the DER end-entity certificate. */
  CERTIFICATE = 0x18,
  /** ISSUE_DELEGATED_CREDENTIAL: the encoded Credential (RFC 9345 4). */
  CREDENTIAL = 0x19,
  /** ISSUE_DELEGATED_CREDENTIAL: u8, 1 server, 2 client. */
  DC_SIDE = 0x1a,
  /** TLS13_PSK_*: the transcript hash the step names (Hash.length bytes of PRF_HASH). */
  TRANSCRIPT_HASH = 0x1b,
  /** TLS13_PSK_VERIFY_BINDER: the client's binder. */
  BINDER = 0x1c,
  /** TLS13_PSK_* results: the client's, the server's traffic secret; the exporter master secret. */
  CLIENT_SECRET = 0x1d,
  SERVER_SECRET = 0x1e,
  EXPORTER_SECRET = 0x1f,
  ERROR_CODE = 0x20,
  ERROR_MESSAGE = 0x21,
  SUPPORTED_VERSION = 0x22,
  KEY_ENTRY = 0x30,
  PSK_ENTRY = 0x31,
  SOURCE = 0x32,
  ORIGIN = 0x33,
  CREATED_AT = 0x34,
  /** GET_TICKET_KEYS result, repeated: nested TICKET_KEY_NAME, TICKET_KEY_SECRET, CREATED_AT. */
  TICKET_KEY = 0x35,
  TICKET_KEY_NAME = 0x36,
  TICKET_KEY_SECRET = 0x37,
  /** u32 ms: keyd makes a new sealing key this often. */
  ROTATE_EVERY_MS = 0x38,
  /** u32 seconds: the ticket lifetime fronts give their tickets. */
  TICKET_LIFETIME = 0x39,
  /** u32 ms: until keyd's next rotation (relative, so the front's clock does not matter). */
  NEXT_ROTATION_MS = 0x3a,
}

/** Error codes on the wire: every KeyErrorCode plus the PSK-specific one. */
export type WireErrorCode = KeyErrorCode | 'unknown-psk-identity';

const ERROR_CODES: readonly WireErrorCode[] = [
  'internal', // 0 is never sent; unknown numbers decode as 'internal'
  'aborted',
  'timeout',
  'unavailable',
  'refused',
  'unknown-key',
  'unsupported',
  'bad-request',
  'rate-limited',
  'internal',
  'unknown-psk-identity',
];

/** Wire number of an error code. */
export function errorCodeToWire(code: WireErrorCode): number {
  const i = ERROR_CODES.indexOf(code, 1);
  return i < 0 ? 9 : i;
}

/** Error code of a wire number; unknown numbers are 'internal'. */
export function errorCodeFromWire(n: number): WireErrorCode {
  return n > 0 && n < ERROR_CODES.length ? ERROR_CODES[n] : 'internal';
}

/** CTX_PURPOSE numbers: index + 1. The TLS 1.2 client CertificateVerify (4) is signed in bound mode only. */
const PURPOSES: readonly SignPurpose[] = ['tls13-server-certificate-verify', 'tls13-client-certificate-verify', 'tls12-server-key-exchange', 'tls12-client-certificate-verify'];
const TLS_VERSIONS = new Map<OperationContext['tlsVersion'], number>([
  ['TLSv1.3', 0x0304],
  ['TLSv1.2', 0x0303],
]);

/** Key types keyd can generate. */
export type GeneratedKeyType = 'ec-p256' | 'ec-p384' | 'ec-p521' | 'ed25519' | 'rsa-2048' | 'rsa-3072' | 'rsa-4096' | 'rsa-pss-2048' | 'rsa-pss-3072';
/** Every GeneratedKeyType. */
export const GENERATED_KEY_TYPES: readonly GeneratedKeyType[] = ['ec-p256', 'ec-p384', 'ec-p521', 'ed25519', 'rsa-2048', 'rsa-3072', 'rsa-4096', 'rsa-pss-2048', 'rsa-pss-3072'];

/** A decoded frame. `body` may share memory with the input buffer. */
export interface Frame {
  version: number;
  type: number;
  id: number;
  body: Uint8Array;
}

/** Which key a request is for: its id (hex SHA-256 of the SPKI) or a server name it serves. */
export type KeySelector = { keyId: string } | { serverName: string };

/**
 * SIGN: sign `message` (the whole structure) with `scheme`. In bound mode the request
 * also carries the handshake messages `message` derives from (see boundSignInput.ts).
 */
export interface SignRequest {
  key: KeySelector;
  scheme: number;
  message: Uint8Array;
  ctx: OperationContext;
  handshakeMessages?: readonly Uint8Array[];
}

/** GET_KEY: public facts about a key. */
export interface GetKeyRequest {
  key: KeySelector;
}

/** DECRYPT_PREMASTER: TLS 1.2 RSA key exchange. */
export interface DecryptPremasterRequest {
  key: KeySelector;
  ciphertext: Uint8Array;
  clientVersion: number;
  ctx: OperationContext;
}

/** PSK_MASTER_SECRET: a TLS 1.2 master secret from a PSK keyd holds. */
export interface PskMasterSecretMessage {
  req: PskMasterSecretRequest;
  ctx: OperationContext;
}

/** The frame type of each TLS 1.3 PSK step. */
export const TLS13_PSK_FRAMES: Readonly<Record<Tls13PskStep, FrameType>> = {
  binder: FrameType.TLS13_PSK_BINDER,
  'verify-binder': FrameType.TLS13_PSK_VERIFY_BINDER,
  'handshake-secrets': FrameType.TLS13_PSK_HANDSHAKE_SECRETS,
  'application-secrets': FrameType.TLS13_PSK_APPLICATION_SECRETS,
  'resumption-master-secret': FrameType.TLS13_PSK_RESUMPTION_SECRET,
};

/** A TLS 1.3 PSK request: `dheSecret` null for psk_ke (and for binders), `binder` for verify-binder only. */
export interface Tls13PskMessage {
  step: Tls13PskStep;
  req: Tls13PskRequest & { transcriptHash: Uint8Array; dheSecret: Uint8Array | null; binder?: Uint8Array };
  ctx: OperationContext;
}

/** ISSUE_DELEGATED_CREDENTIAL: a credential for the selected key's certificate. */
export interface IssueDelegatedCredentialMessage {
  key: KeySelector;
  request: DelegatedCredentialRequest;
  ctx: OperationContext;
}

/** PUT_KEY: import a private key. */
export interface PutKeyRequest {
  /** PKCS#8 DER of the private key. */
  pkcs8: Uint8Array;
  serverNames: string[];
}

/** DELETE_KEY: remove a stored key. */
export interface DeleteKeyRequest {
  keyId: string;
}

/** GENERATE_KEY: make a key inside keyd. */
export interface GenerateKeyRequest {
  keyType: GeneratedKeyType;
  serverNames: string[];
}

/** PUT_PSK: store a PSK under its identity, with its TLS 1.3 hash (default sha256). */
export interface PutPskRequest {
  identity: Uint8Array;
  secret: Uint8Array;
  hash?: 'sha256' | 'sha384';
}

/** DELETE_PSK: remove a stored PSK. */
export interface DeletePskRequest {
  identity: Uint8Array;
}

/** Public facts about a key keyd holds. Never any private material. */
export interface KeyInfo {
  keyId: string;
  /** SubjectPublicKeyInfo DER. */
  spki: Uint8Array;
  schemes: number[];
  serverNames: string[];
  /** 'ec-p256', 'rsa', 'ed25519', ... */
  keyType: string;
  /** Where the key lives: 'store' (sealed store), 'pkcs11', or 'embedded' (given by the embedding program). */
  source: string;
  /** 'imported' or 'generated' for store keys. */
  origin?: string;
  /** ISO 8601 time the key entered the store. */
  createdAt?: string;
}

/** RESULT of GET_TICKET_KEYS: the sealing key first, then the others still accepted. */
export interface TicketKeysResult {
  keys: Array<{ name: Uint8Array; secret: Uint8Array; createdAt: number }>;
  rotateEveryMs: number;
  ticketLifetimeSeconds: number;
  nextRotationMs: number;
}

/** Public facts about a PSK: its identity and TLS 1.3 hash. */
export interface PskInfo {
  identity: Uint8Array;
  createdAt?: string;
  hash?: 'sha256' | 'sha384';
}

/** RESULT of LIST_KEYS. */
export interface ListKeysResult {
  keys: KeyInfo[];
  psks: PskInfo[];
}

/** Content of an ERROR frame. */
export interface ErrorBody {
  code: WireErrorCode;
  message: string;
  /** Versions keyd speaks; sent when the request's version was not one of them. */
  supportedVersions?: number[];
}

// ---------------------------------------------------------------------------------------
// Frames

/**
 * Encodes one frame. A body still in a {@link TlvWriter} is written straight into the
 * frame: one allocation, no intermediate copy.
 */
export function encodeFrame(type: number, id: number, body: Uint8Array | TlvWriter = EMPTY, version = PROTOCOL_VERSION): Buffer {
  const out = Buffer.allocUnsafe(LENGTH_BYTES + FRAME_HEADER_BYTES + body.length);
  out.writeUInt32BE(FRAME_HEADER_BYTES + body.length, 0);
  out[4] = version;
  out[5] = type;
  out.writeUInt32BE(id >>> 0, 6);
  if (body instanceof TlvWriter) body.writeTo(out, LENGTH_BYTES + FRAME_HEADER_BYTES);
  else out.set(body, LENGTH_BYTES + FRAME_HEADER_BYTES);
  return out;
}

const EMPTY = new Uint8Array(0);

/**
 * Splits a byte stream into frames. A frame whole within one chunk is a view of it (no
 * copy); a frame that straddles chunks is assembled in a buffer of its own as its bytes
 * arrive, grown by doubling up to the frame's length: a peer trickling a frame a byte per
 * TLS record costs keyd that frame's bytes, not a Buffer object per byte (which was ~600
 * bytes of memory per byte sent). A length field below the header size or above the
 * maximum is a fatal protocol error (the stream cannot be resynchronised): `push` throws
 * KeyOperationError('bad-request') and the caller must close the connection.
 */
export class FrameDecoder {
  /** The straddling frame being assembled: `partial[0, partialLength)` are its first bytes. */
  private partial: Buffer | undefined;
  private partialLength = 0;
  /** Its whole size (length field included), once the length field is in; 0 before. */
  private partialSize = 0;

  /**
   * `wipeConsumed`: zero the bytes of the reads a straddling frame was copied from, and the
   * assembly buffers it outgrew (for a socket's own buffers; off by default, as it writes
   * to what `push` is given).
   */
  constructor(
    private readonly maxFrameBytes = DEFAULT_MAX_FRAME_BYTES,
    private readonly wipeConsumed = false,
  ) {}

  /** Bytes buffered and not yet part of a complete frame. */
  get buffered(): number {
    return this.partialLength;
  }

  /** Feeds bytes; returns the frames completed by them, in order. */
  push(chunk: Uint8Array): Frame[] {
    if (chunk.length === 0) return [];
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    const frames: Frame[] = [];
    let off = 0;
    if (this.partial) {
      off = this.continuePartial(buf, frames);
      if (this.wipeConsumed) buf.fill(0, 0, off);
    }
    while (buf.length - off >= LENGTH_BYTES) {
      const size = LENGTH_BYTES + this.checkLength(buf.readUInt32BE(off));
      if (buf.length - off < size) break;
      frames.push(frameOf(buf.subarray(off, off + size)));
      off += size;
    }
    if (off < buf.length) {
      // The start of a frame that ends in a later chunk.
      this.partialSize = buf.length - off >= LENGTH_BYTES ? LENGTH_BYTES + this.checkLength(buf.readUInt32BE(off)) : 0;
      this.append(buf, off, buf.length - off);
      if (this.wipeConsumed) buf.fill(0, off);
    }
    return frames;
  }

  /** Adds the bytes of `buf` that belong to the frame being assembled; returns how many. */
  private continuePartial(buf: Buffer, frames: Frame[]): number {
    let off = 0;
    if (this.partialSize === 0) {
      off = Math.min(LENGTH_BYTES - this.partialLength, buf.length);
      this.append(buf, 0, off);
      if (this.partialLength < LENGTH_BYTES) return off;
      this.partialSize = LENGTH_BYTES + this.checkLength(this.partial!.readUInt32BE(0));
    }
    const k = Math.min(this.partialSize - this.partialLength, buf.length - off);
    this.append(buf, off, k);
    off += k;
    if (this.partialLength === this.partialSize) {
      frames.push(frameOf(this.partial!.subarray(0, this.partialSize)));
      this.partial = undefined;
      this.partialLength = 0;
      this.partialSize = 0;
    }
    return off;
  }

  private checkLength(len: number): number {
    if (len < FRAME_HEADER_BYTES) throw new KeyOperationError('bad-request', `frame length ${len} is shorter than the ${FRAME_HEADER_BYTES}-byte header`);
    if (len > this.maxFrameBytes) throw new KeyOperationError('bad-request', `frame of ${len} bytes exceeds the ${this.maxFrameBytes}-byte maximum`);
    return len;
  }

  /** Copies `n` bytes of `buf` from `from` into the assembly buffer, doubling it (up to the frame's size) when full. */
  private append(buf: Buffer, from: number, n: number): void {
    const need = this.partialLength + n;
    if (!this.partial || this.partial.length < need) {
      const cap = Math.max(need, Math.min(Math.max(2 * (this.partial?.length ?? 0), 64), this.partialSize || LENGTH_BYTES));
      const grown = Buffer.allocUnsafe(cap);
      if (this.partial) {
        this.partial.copy(grown, 0, 0, this.partialLength);
        // The frame may hold secrets (keys, PSKs): its outgrown copy is not left behind.
        if (this.wipeConsumed) this.partial.fill(0);
      }
      this.partial = grown;
    }
    buf.copy(this.partial, this.partialLength, from, from + n);
    this.partialLength = need;
  }
}

function frameOf(f: Buffer): Frame {
  return { version: f[4], type: f[5], id: f.readUInt32BE(6), body: f.subarray(10) };
}

// ---------------------------------------------------------------------------------------
// TLV bodies

/** Largest TLV value (u24 length). */
const MAX_TLV_VALUE = 0xffffff;

/**
 * Builds a TLV body. Fields are collected and laid out once, at the end, into a buffer of
 * the exact size (or straight into a frame, see {@link encodeFrame}): a request on the
 * hot path costs one allocation. Byte values are referenced, not copied, until then: do
 * not change them meanwhile, and copy a secret out (`finish()`) before wiping it.
 */
export class TlvWriter {
  readonly #tags: number[] = [];
  readonly #values: Array<Uint8Array | string | TlvWriter> = [];
  readonly #sizes: number[] = [];
  #length = 0;

  /** Bytes the body takes. */
  get length(): number {
    return this.#length;
  }

  #add(tag: Tag, value: Uint8Array | string | TlvWriter, size: number): this {
    if (size > MAX_TLV_VALUE) throw new RangeError(`TLV value of ${size} bytes exceeds the u24 length`);
    this.#tags.push(tag);
    this.#values.push(value);
    this.#sizes.push(size);
    this.#length += 4 + size;
    return this;
  }

  bytes(tag: Tag, value: Uint8Array): this {
    return this.#add(tag, value, value.length);
  }

  u8(tag: Tag, v: number): this {
    return this.bytes(tag, Uint8Array.of(v & 0xff));
  }

  u16(tag: Tag, v: number): this {
    return this.bytes(tag, Uint8Array.of((v >>> 8) & 0xff, v & 0xff));
  }

  u32(tag: Tag, v: number): this {
    return this.bytes(tag, Uint8Array.of((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff));
  }

  str(tag: Tag, s: string): this {
    return this.#add(tag, s, Buffer.byteLength(s, 'utf8'));
  }

  /**
   * A nested TLV body as one field, laid out in place when this writer is: no buffer of its
   * own, so a nested secret (a ticket key) exists only in the frame, which keyd wipes.
   */
  nested(tag: Tag, inner: TlvWriter): this {
    return this.#add(tag, inner, inner.length);
  }

  u16List(tag: Tag, values: readonly number[]): this {
    const b = new Uint8Array(values.length * 2);
    values.forEach((v, i) => {
      b[2 * i] = (v >>> 8) & 0xff;
      b[2 * i + 1] = v & 0xff;
    });
    return this.bytes(tag, b);
  }

  /** Writes the body into `out` at `offset` (which must have {@link length} bytes free). */
  writeTo(out: Buffer, offset: number): void {
    let o = offset;
    for (let i = 0; i < this.#tags.length; i++) {
      const size = this.#sizes[i];
      out[o] = this.#tags[i];
      out[o + 1] = size >>> 16;
      out[o + 2] = (size >>> 8) & 0xff;
      out[o + 3] = size & 0xff;
      o += 4;
      const v = this.#values[i];
      if (typeof v === 'string') out.write(v, o, size, 'utf8');
      else if (v instanceof TlvWriter) v.writeTo(out, o);
      else out.set(v, o);
      o += size;
    }
  }

  finish(): Uint8Array {
    const out = Buffer.allocUnsafe(this.#length);
    this.writeTo(out, 0);
    return out;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A parsed TLV body. Unknown tags are kept and ignored by the typed decoders, so a newer
 * peer can add optional fields; a single-valued field sent twice is an error. Bodies have
 * a handful of fields: they are kept in arrays and looked up by scanning.
 */
export class TlvFields {
  private constructor(
    private readonly tags: number[],
    private readonly values: Uint8Array[],
    private readonly what: string,
  ) {}

  /** Parses `body`; throws KeyOperationError('bad-request') when it is not a well-formed TLV sequence. */
  static parse(body: Uint8Array, what: string): TlvFields {
    const tags: number[] = [];
    const values: Uint8Array[] = [];
    let o = 0;
    while (o < body.length) {
      if (body.length - o < 4) throw badRequest(`${what}: truncated field`);
      const size = (body[o + 1] << 16) | (body[o + 2] << 8) | body[o + 3];
      if (body.length - o - 4 < size) throw badRequest(`${what}: truncated field`);
      tags.push(body[o]);
      values.push(body.subarray(o + 4, o + 4 + size));
      o += 4 + size;
    }
    return new TlvFields(tags, values, what);
  }

  has(tag: Tag): boolean {
    return this.tags.includes(tag);
  }

  /** Every value of a repeatable field, in order. */
  all(tag: Tag): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let i = 0; i < this.tags.length; i++) if (this.tags[i] === tag) out.push(this.values[i]);
    return out;
  }

  /** The value of a single-valued field, or undefined when absent. */
  opt(tag: Tag): Uint8Array | undefined {
    const i = this.tags.indexOf(tag);
    if (i < 0) return undefined;
    if (this.tags.indexOf(tag, i + 1) >= 0) throw badRequest(`${this.what}: ${Tag[tag] ?? tag} appears ${this.all(tag).length} times`);
    return this.values[i];
  }

  req(tag: Tag): Uint8Array {
    const v = this.opt(tag);
    if (v === undefined) throw badRequest(`${this.what}: missing ${Tag[tag] ?? tag}`);
    return v;
  }

  optU8(tag: Tag): number | undefined {
    const v = this.opt(tag);
    if (v === undefined) return undefined;
    if (v.length !== 1) throw badRequest(`${this.what}: ${Tag[tag]} must be 1 byte`);
    return v[0];
  }

  optU16(tag: Tag): number | undefined {
    const v = this.opt(tag);
    if (v === undefined) return undefined;
    if (v.length !== 2) throw badRequest(`${this.what}: ${Tag[tag]} must be 2 bytes`);
    return (v[0] << 8) | v[1];
  }

  reqU16(tag: Tag): number {
    const v = this.optU16(tag);
    if (v === undefined) throw badRequest(`${this.what}: missing ${Tag[tag]}`);
    return v;
  }

  reqU32(tag: Tag): number {
    const v = this.req(tag);
    if (v.length !== 4) throw badRequest(`${this.what}: ${Tag[tag]} must be 4 bytes`);
    return ((v[0] << 24) | (v[1] << 16) | (v[2] << 8) | v[3]) >>> 0;
  }

  optStr(tag: Tag, maxBytes: number): string | undefined {
    const v = this.opt(tag);
    return v === undefined ? undefined : decodeString(v, maxBytes, `${this.what}: ${Tag[tag]}`);
  }

  reqStr(tag: Tag, maxBytes: number): string {
    return decodeString(this.req(tag), maxBytes, `${this.what}: ${Tag[tag]}`);
  }

  allStr(tag: Tag, maxBytes: number): string[] {
    return this.all(tag).map((v) => decodeString(v, maxBytes, `${this.what}: ${Tag[tag]}`));
  }

  u16ListOf(tag: Tag): number[] {
    const v = this.opt(tag);
    if (v === undefined) return [];
    if (v.length % 2 !== 0) throw badRequest(`${this.what}: ${Tag[tag]} has odd length`);
    const out: number[] = [];
    for (let i = 0; i < v.length; i += 2) out.push((v[i] << 8) | v[i + 1]);
    return out;
  }
}

/** A Buffer over the same memory (no copy). */
function asBuffer(v: Uint8Array): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.length);
}

function badRequest(message: string): KeyOperationError {
  return new KeyOperationError('bad-request', message);
}

/** Decodes UTF-8 without control characters (values end up in logs and audit lines). */
function decodeString(v: Uint8Array, maxBytes: number, what: string): string {
  if (v.length > maxBytes) throw badRequest(`${what} is longer than ${maxBytes} bytes`);
  // Names and addresses are printable ASCII: no decoder, no pattern.
  let ascii = true;
  for (let i = 0; i < v.length; i++) {
    if (v[i] < 0x20 || v[i] > 0x7e) {
      ascii = false;
      break;
    }
  }
  if (ascii) return asBuffer(v).toString('latin1');
  let s: string;
  try {
    s = utf8.decode(v);
  } catch {
    throw badRequest(`${what} is not valid UTF-8`);
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(s)) throw badRequest(`${what} contains control characters`);
  return s;
}

/** Limits on string fields. */
const MAX_NAME = 255;
const MAX_SHORT = 128;
const MAX_MESSAGE = 64 * 1024;

/**
 * Normalises and checks a server name used to address keys: lower case, no trailing dot,
 * DNS characters, optionally a leading "*." wildcard label.
 */
export function normalizeServerName(name: string): string {
  const n = name.toLowerCase().replace(/\.$/, '');
  if (n.length === 0 || n.length > 253 || !/^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/.test(n)) {
    throw badRequest(`not a valid server name: ${JSON.stringify(name.slice(0, 64))}`);
  }
  return n;
}

/** Checks a key id: 64 lower-case hex characters. */
export function normalizeKeyId(keyId: string): string {
  const k = keyId.toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(k)) throw badRequest('key id must be 64 hex characters (SHA-256 of the SubjectPublicKeyInfo)');
  return k;
}

/** KEY_ID bytes of the key ids last written: a front sends the same few ids on every request. */
const keyIdBytes = new Map<string, Uint8Array>();

function writeSelector(w: TlvWriter, key: KeySelector): void {
  if ('keyId' in key) {
    let b = keyIdBytes.get(key.keyId);
    if (!b) {
      b = Buffer.from(normalizeKeyId(key.keyId), 'hex');
      if (keyIdBytes.size >= 64) keyIdBytes.clear();
      keyIdBytes.set(key.keyId, b);
    }
    w.bytes(Tag.KEY_ID, b);
  } else w.str(Tag.SERVER_NAME, normalizeServerName(key.serverName));
}

function readSelector(f: TlvFields, what: string): KeySelector {
  const id = f.opt(Tag.KEY_ID);
  const name = f.optStr(Tag.SERVER_NAME, MAX_NAME);
  if (id !== undefined && name !== undefined) throw badRequest(`${what}: give KEY_ID or SERVER_NAME, not both`);
  if (id !== undefined) {
    if (id.length !== 32) throw badRequest(`${what}: KEY_ID must be 32 bytes`);
    return { keyId: asBuffer(id).toString('hex') };
  }
  if (name !== undefined) return { serverName: normalizeServerName(name) };
  throw badRequest(`${what}: missing KEY_ID or SERVER_NAME`);
}

function writeContext(w: TlvWriter, ctx: OperationContext): void {
  const v = TLS_VERSIONS.get(ctx.tlsVersion);
  if (v === undefined) throw new RangeError(`unknown TLS version ${String(ctx.tlsVersion)}`);
  w.u16(Tag.CTX_TLS_VERSION, v);
  if (ctx.serverName !== undefined) w.str(Tag.CTX_SERVER_NAME, ctx.serverName.slice(0, MAX_NAME));
  if (ctx.peerAddress !== undefined) w.str(Tag.CTX_PEER_ADDRESS, ctx.peerAddress.slice(0, MAX_SHORT));
  if (ctx.purpose !== undefined) w.u8(Tag.CTX_PURPOSE, PURPOSES.indexOf(ctx.purpose) + 1);
  if (ctx.connectionId !== undefined) w.str(Tag.CTX_CONNECTION_ID, ctx.connectionId.slice(0, MAX_SHORT));
}

function readContext(f: TlvFields, what: string): OperationContext {
  const v = f.optU16(Tag.CTX_TLS_VERSION);
  let tlsVersion: OperationContext['tlsVersion'] | undefined;
  for (const [name, code] of TLS_VERSIONS) if (code === v) tlsVersion = name;
  if (!tlsVersion) throw badRequest(`${what}: missing or unknown CTX_TLS_VERSION`);
  const ctx: OperationContext = { tlsVersion };
  const sn = f.optStr(Tag.CTX_SERVER_NAME, MAX_NAME);
  if (sn !== undefined) ctx.serverName = sn;
  const peer = f.optStr(Tag.CTX_PEER_ADDRESS, MAX_SHORT);
  if (peer !== undefined) ctx.peerAddress = peer;
  const p = f.optU8(Tag.CTX_PURPOSE);
  if (p !== undefined) {
    if (p < 1 || p > PURPOSES.length) throw badRequest(`${what}: unknown CTX_PURPOSE ${p}`);
    ctx.purpose = PURPOSES[p - 1];
  }
  const cid = f.optStr(Tag.CTX_CONNECTION_ID, MAX_SHORT);
  if (cid !== undefined) ctx.connectionId = cid;
  return ctx;
}

// ---------------------------------------------------------------------------------------
// Requests

/** Body of a SIGN request, still in its writer (see {@link encodeFrame}). */
export function signRequestWriter(m: SignRequest): TlvWriter {
  const w = new TlvWriter();
  writeSelector(w, m.key);
  w.u16(Tag.SCHEME, m.scheme).bytes(Tag.MESSAGE, m.message);
  for (const hm of m.handshakeMessages ?? []) w.bytes(Tag.HANDSHAKE_MESSAGE, hm);
  writeContext(w, m.ctx);
  return w;
}

/** Body of a SIGN request. */
export function encodeSignRequest(m: SignRequest): Uint8Array {
  return signRequestWriter(m).finish();
}

/** Parses a SIGN body; throws KeyOperationError('bad-request'). */
export function decodeSignRequest(body: Uint8Array): SignRequest {
  const f = TlvFields.parse(body, 'SIGN');
  const message = f.req(Tag.MESSAGE);
  if (message.length > MAX_MESSAGE) throw badRequest(`SIGN: MESSAGE longer than ${MAX_MESSAGE} bytes`);
  const req: SignRequest = { key: readSelector(f, 'SIGN'), scheme: f.reqU16(Tag.SCHEME), message, ctx: readContext(f, 'SIGN') };
  const hms = f.all(Tag.HANDSHAKE_MESSAGE);
  if (hms.length > MAX_BOUND_MESSAGES) throw badRequest(`SIGN: more than ${MAX_BOUND_MESSAGES} HANDSHAKE_MESSAGE fields`);
  if (hms.length > 0) req.handshakeMessages = hms;
  return req;
}

const DC_SIDES: readonly DelegatedCredentialRequest['side'][] = ['server', 'client'];

/** Body of an ISSUE_DELEGATED_CREDENTIAL request. */
export function encodeIssueDelegatedCredentialRequest(m: IssueDelegatedCredentialMessage): Uint8Array {
  const w = new TlvWriter();
  writeSelector(w, m.key);
  w.u16(Tag.SCHEME, m.request.algorithm)
    .bytes(Tag.CERTIFICATE, m.request.certificate)
    .bytes(Tag.CREDENTIAL, encodeCredential(m.request.credential))
    .u8(Tag.DC_SIDE, DC_SIDES.indexOf(m.request.side) + 1);
  writeContext(w, m.ctx);
  return w.finish();
}

/** Parses an ISSUE_DELEGATED_CREDENTIAL body; throws KeyOperationError('bad-request'). */
export function decodeIssueDelegatedCredentialRequest(body: Uint8Array): IssueDelegatedCredentialMessage {
  const what = 'ISSUE_DELEGATED_CREDENTIAL';
  const f = TlvFields.parse(body, what);
  const certificate = f.req(Tag.CERTIFICATE);
  if (certificate.length === 0 || certificate.length > MAX_MESSAGE) throw badRequest(`${what}: CERTIFICATE must be 1..${MAX_MESSAGE} bytes`);
  const side = DC_SIDES[(f.optU8(Tag.DC_SIDE) ?? 0) - 1];
  if (!side) throw badRequest(`${what}: missing or unknown DC_SIDE`);
  let credential: DelegatedCredentialRequest['credential'];
  try {
    credential = parseCredential(f.req(Tag.CREDENTIAL));
  } catch (e) {
    if (e instanceof KeyOperationError) throw e;
    throw badRequest(`${what}: CREDENTIAL is not an RFC 9345 Credential`);
  }
  return { key: readSelector(f, what), request: { certificate, credential, algorithm: f.reqU16(Tag.SCHEME), side }, ctx: readContext(f, what) };
}

/** Body of a GET_KEY request. */
export function encodeGetKeyRequest(m: GetKeyRequest): Uint8Array {
  const w = new TlvWriter();
  writeSelector(w, m.key);
  return w.finish();
}

/** Parses a GET_KEY body; throws KeyOperationError('bad-request'). */
export function decodeGetKeyRequest(body: Uint8Array): GetKeyRequest {
  return { key: readSelector(TlvFields.parse(body, 'GET_KEY'), 'GET_KEY') };
}

/** Body of a DECRYPT_PREMASTER request. */
export function encodeDecryptPremasterRequest(m: DecryptPremasterRequest): Uint8Array {
  const w = new TlvWriter();
  writeSelector(w, m.key);
  w.bytes(Tag.CIPHERTEXT, m.ciphertext).u16(Tag.CLIENT_VERSION, m.clientVersion);
  writeContext(w, m.ctx);
  return w.finish();
}

/** Parses a DECRYPT_PREMASTER body; throws KeyOperationError('bad-request'). */
export function decodeDecryptPremasterRequest(body: Uint8Array): DecryptPremasterRequest {
  const f = TlvFields.parse(body, 'DECRYPT_PREMASTER');
  const ciphertext = f.req(Tag.CIPHERTEXT);
  if (ciphertext.length > 1024) throw badRequest('DECRYPT_PREMASTER: CIPHERTEXT longer than 1024 bytes');
  return { key: readSelector(f, 'DECRYPT_PREMASTER'), ciphertext, clientVersion: f.reqU16(Tag.CLIENT_VERSION), ctx: readContext(f, 'DECRYPT_PREMASTER') };
}

const PRF_HASHES: readonly PskMasterSecretRequest['hash'][] = ['sha256', 'sha384'];

/** Body of a PSK_MASTER_SECRET request. */
export function encodePskMasterSecretRequest(m: PskMasterSecretMessage): Uint8Array {
  const w = new TlvWriter();
  w.bytes(Tag.PSK_IDENTITY, m.req.identity);
  if (m.req.otherSecret) w.bytes(Tag.OTHER_SECRET, m.req.otherSecret);
  w.u8(Tag.PRF_HASH, PRF_HASHES.indexOf(m.req.hash) + 1)
    .u8(Tag.EXTENDED, m.req.extended ? 1 : 0)
    .bytes(Tag.SEED, m.req.seed);
  writeContext(w, m.ctx);
  return w.finish();
}

/** Parses a PSK_MASTER_SECRET body; throws KeyOperationError('bad-request'). */
export function decodePskMasterSecretRequest(body: Uint8Array): PskMasterSecretMessage {
  const what = 'PSK_MASTER_SECRET';
  const f = TlvFields.parse(body, what);
  const identity = f.req(Tag.PSK_IDENTITY);
  if (identity.length === 0 || identity.length > 0xffff) throw badRequest(`${what}: PSK_IDENTITY must be 1..65535 bytes`);
  const otherSecret = f.opt(Tag.OTHER_SECRET) ?? null;
  if (otherSecret && otherSecret.length > 0xffff) throw badRequest(`${what}: OTHER_SECRET too long`);
  const h = f.optU8(Tag.PRF_HASH);
  if (h === undefined || h < 1 || h > PRF_HASHES.length) throw badRequest(`${what}: missing or unknown PRF_HASH`);
  const e = f.optU8(Tag.EXTENDED) ?? 0;
  if (e > 1) throw badRequest(`${what}: EXTENDED must be 0 or 1`);
  const seed = f.req(Tag.SEED);
  // client_random + server_random (64) or a session hash (32 or 48).
  if (seed.length < 32 || seed.length > 64) throw badRequest(`${what}: SEED must be 32..64 bytes`);
  return { req: { identity, otherSecret, hash: PRF_HASHES[h - 1], extended: e === 1, seed }, ctx: readContext(f, what) };
}

/** Body of a TLS13_PSK_* request (the frame type says the step). */
export function encodeTls13PskRequest(m: Tls13PskMessage): Uint8Array {
  const w = new TlvWriter().bytes(Tag.PSK_IDENTITY, m.req.identity).u8(Tag.PRF_HASH, PRF_HASHES.indexOf(m.req.hash) + 1).bytes(Tag.TRANSCRIPT_HASH, m.req.transcriptHash);
  if (m.req.dheSecret) w.bytes(Tag.OTHER_SECRET, m.req.dheSecret);
  if (m.step === 'verify-binder') w.bytes(Tag.BINDER, m.req.binder ?? new Uint8Array(0));
  writeContext(w, m.ctx);
  return w.finish();
}

/** The step of a TLS13_PSK_* frame type, or undefined. */
export function tls13PskStepOf(type: number): Tls13PskStep | undefined {
  return (Object.keys(TLS13_PSK_FRAMES) as Tls13PskStep[]).find((s) => TLS13_PSK_FRAMES[s] === type);
}

/**
 * Parses a TLS13_PSK_* body (its shape only: lengths against the hash are Tls13PskSteps'
 * to check); throws KeyOperationError('bad-request').
 */
export function decodeTls13PskRequest(type: number, body: Uint8Array): Tls13PskMessage {
  const step = tls13PskStepOf(type);
  if (!step) throw badRequest(`frame type ${type} is not a TLS 1.3 PSK request`);
  const what = FrameType[type];
  const f = TlvFields.parse(body, what);
  const identity = f.req(Tag.PSK_IDENTITY);
  if (identity.length === 0 || identity.length > 0xffff) throw badRequest(`${what}: PSK_IDENTITY must be 1..65535 bytes`);
  const h = f.optU8(Tag.PRF_HASH);
  if (h === undefined || h < 1 || h > PRF_HASHES.length) throw badRequest(`${what}: missing or unknown PRF_HASH`);
  const transcriptHash = f.req(Tag.TRANSCRIPT_HASH);
  if (transcriptHash.length > 64) throw badRequest(`${what}: TRANSCRIPT_HASH longer than 64 bytes`);
  const dheSecret = f.opt(Tag.OTHER_SECRET) ?? null;
  const binder = f.opt(Tag.BINDER);
  if (step === 'verify-binder' ? binder === undefined || binder.length > 255 : binder !== undefined) throw badRequest(`${what}: BINDER (at most 255 bytes) is for TLS13_PSK_VERIFY_BINDER, and required there`);
  return { step, req: { identity, hash: PRF_HASHES[h - 1], transcriptHash, dheSecret, ...(binder ? { binder } : {}) }, ctx: readContext(f, what) };
}

/** RESULT of TLS13_PSK_HANDSHAKE_SECRETS and _APPLICATION_SECRETS. */
export function trafficSecretsWriter(s: { client: Uint8Array; server: Uint8Array; exporter?: Uint8Array }): TlvWriter {
  const w = new TlvWriter().bytes(Tag.CLIENT_SECRET, s.client).bytes(Tag.SERVER_SECRET, s.server);
  if (s.exporter) w.bytes(Tag.EXPORTER_SECRET, s.exporter);
  return w;
}

/** Parses the RESULT of TLS13_PSK_HANDSHAKE_SECRETS or, with `exporter`, _APPLICATION_SECRETS. */
export function decodeTrafficSecrets(body: Uint8Array, exporter: boolean): { client: Uint8Array; server: Uint8Array; exporter?: Uint8Array } {
  const f = TlvFields.parse(body, 'RESULT');
  return { client: f.req(Tag.CLIENT_SECRET), server: f.req(Tag.SERVER_SECRET), ...(exporter ? { exporter: f.req(Tag.EXPORTER_SECRET) } : {}) };
}

/** Body of a PUT_KEY request (carries a private key: admin link only). */
export function encodePutKeyRequest(m: PutKeyRequest): Uint8Array {
  const w = new TlvWriter().bytes(Tag.PRIVATE_KEY, m.pkcs8);
  for (const n of m.serverNames) w.str(Tag.SERVER_NAME, normalizeServerName(n));
  return w.finish();
}

/** Parses a PUT_KEY body; throws KeyOperationError('bad-request'). */
export function decodePutKeyRequest(body: Uint8Array): PutKeyRequest {
  const f = TlvFields.parse(body, 'PUT_KEY');
  return { pkcs8: f.req(Tag.PRIVATE_KEY), serverNames: f.allStr(Tag.SERVER_NAME, MAX_NAME).map(normalizeServerName) };
}

/** Body of a DELETE_KEY request. */
export function encodeDeleteKeyRequest(m: DeleteKeyRequest): Uint8Array {
  return new TlvWriter().bytes(Tag.KEY_ID, Buffer.from(normalizeKeyId(m.keyId), 'hex')).finish();
}

/** Parses a DELETE_KEY body; throws KeyOperationError('bad-request'). */
export function decodeDeleteKeyRequest(body: Uint8Array): DeleteKeyRequest {
  const f = TlvFields.parse(body, 'DELETE_KEY');
  const id = f.req(Tag.KEY_ID);
  if (id.length !== 32) throw badRequest('DELETE_KEY: KEY_ID must be 32 bytes');
  return { keyId: Buffer.from(id).toString('hex') };
}

/** Body of a GENERATE_KEY request. */
export function encodeGenerateKeyRequest(m: GenerateKeyRequest): Uint8Array {
  const w = new TlvWriter().str(Tag.KEY_TYPE, m.keyType);
  for (const n of m.serverNames) w.str(Tag.SERVER_NAME, normalizeServerName(n));
  return w.finish();
}

/** Parses a GENERATE_KEY body; throws KeyOperationError('bad-request'). */
export function decodeGenerateKeyRequest(body: Uint8Array): GenerateKeyRequest {
  const f = TlvFields.parse(body, 'GENERATE_KEY');
  const t = f.reqStr(Tag.KEY_TYPE, 32);
  if (!(GENERATED_KEY_TYPES as readonly string[]).includes(t)) throw badRequest(`GENERATE_KEY: unknown KEY_TYPE ${JSON.stringify(t)} (one of ${GENERATED_KEY_TYPES.join(', ')})`);
  return { keyType: t as GeneratedKeyType, serverNames: f.allStr(Tag.SERVER_NAME, MAX_NAME).map(normalizeServerName) };
}

/** Body of a PUT_PSK request (carries the PSK: admin link only). */
export function encodePutPskRequest(m: PutPskRequest): Uint8Array {
  const w = new TlvWriter().bytes(Tag.PSK_IDENTITY, m.identity).bytes(Tag.PSK_SECRET, m.secret);
  if (m.hash) w.u8(Tag.PRF_HASH, PRF_HASHES.indexOf(m.hash) + 1);
  return w.finish();
}

/** Parses a PUT_PSK body; throws KeyOperationError('bad-request'). */
export function decodePutPskRequest(body: Uint8Array): PutPskRequest {
  const f = TlvFields.parse(body, 'PUT_PSK');
  const identity = f.req(Tag.PSK_IDENTITY);
  const secret = f.req(Tag.PSK_SECRET);
  if (identity.length === 0 || identity.length > 0xffff) throw badRequest('PUT_PSK: PSK_IDENTITY must be 1..65535 bytes');
  // RFC 4279 asks for PSKs of up to 64 bytes at least; 16 bytes is a floor worth enforcing.
  if (secret.length < 16 || secret.length > 1024) throw badRequest('PUT_PSK: PSK_SECRET must be 16..1024 bytes');
  const h = f.optU8(Tag.PRF_HASH);
  if (h !== undefined && (h < 1 || h > PRF_HASHES.length)) throw badRequest('PUT_PSK: unknown PRF_HASH (1 sha256, 2 sha384)');
  return { identity, secret, ...(h !== undefined ? { hash: PRF_HASHES[h - 1] } : {}) };
}

/** Body of a DELETE_PSK request. */
export function encodeDeletePskRequest(m: DeletePskRequest): Uint8Array {
  return new TlvWriter().bytes(Tag.PSK_IDENTITY, m.identity).finish();
}

/** Parses a DELETE_PSK body; throws KeyOperationError('bad-request'). */
export function decodeDeletePskRequest(body: Uint8Array): DeletePskRequest {
  const f = TlvFields.parse(body, 'DELETE_PSK');
  const identity = f.req(Tag.PSK_IDENTITY);
  if (identity.length === 0 || identity.length > 0xffff) throw badRequest('DELETE_PSK: PSK_IDENTITY must be 1..65535 bytes');
  return { identity };
}

// ---------------------------------------------------------------------------------------
// Results

/** RESULT of SIGN, PSK_MASTER_SECRET and DECRYPT_PREMASTER: one OUTPUT field (see {@link encodeFrame}). */
export function outputWriter(output: Uint8Array): TlvWriter {
  return new TlvWriter().bytes(Tag.OUTPUT, output);
}

/** Parses a RESULT body holding OUTPUT. */
export function decodeOutput(body: Uint8Array): Uint8Array {
  return TlvFields.parse(body, 'RESULT').req(Tag.OUTPUT);
}

function writeKeyInfo(w: TlvWriter, k: KeyInfo): TlvWriter {
  w.bytes(Tag.KEY_ID, Buffer.from(normalizeKeyId(k.keyId), 'hex'))
    .bytes(Tag.SPKI, k.spki)
    .u16List(Tag.SCHEMES, k.schemes)
    .str(Tag.KEY_TYPE, k.keyType)
    .str(Tag.SOURCE, k.source);
  for (const n of k.serverNames) w.str(Tag.SERVER_NAME, n);
  if (k.origin !== undefined) w.str(Tag.ORIGIN, k.origin);
  if (k.createdAt !== undefined) w.str(Tag.CREATED_AT, k.createdAt);
  return w;
}

function readKeyInfo(body: Uint8Array): KeyInfo {
  const f = TlvFields.parse(body, 'KEY_ENTRY');
  const id = f.req(Tag.KEY_ID);
  if (id.length !== 32) throw badRequest('KEY_ENTRY: KEY_ID must be 32 bytes');
  const info: KeyInfo = {
    keyId: Buffer.from(id).toString('hex'),
    spki: f.req(Tag.SPKI),
    schemes: f.u16ListOf(Tag.SCHEMES),
    serverNames: f.allStr(Tag.SERVER_NAME, MAX_NAME),
    keyType: f.reqStr(Tag.KEY_TYPE, 32),
    source: f.reqStr(Tag.SOURCE, 32),
  };
  const origin = f.optStr(Tag.ORIGIN, 32);
  if (origin !== undefined) info.origin = origin;
  const created = f.optStr(Tag.CREATED_AT, 64);
  if (created !== undefined) info.createdAt = created;
  return info;
}

/** RESULT of GET_KEY: one KEY_ENTRY per matching key (by id: one; by name: newest first). */
export function encodeKeyInfos(keys: readonly KeyInfo[]): Uint8Array {
  const w = new TlvWriter();
  for (const k of keys) w.nested(Tag.KEY_ENTRY, writeKeyInfo(new TlvWriter(), k));
  return w.finish();
}

/** Parses a RESULT body of KEY_ENTRY fields. */
export function decodeKeyInfos(body: Uint8Array): KeyInfo[] {
  return TlvFields.parse(body, 'RESULT').all(Tag.KEY_ENTRY).map(readKeyInfo);
}

/** RESULT of LIST_KEYS: KEY_ENTRY and PSK_ENTRY fields. */
export function encodeListKeysResult(r: ListKeysResult): Uint8Array {
  const w = new TlvWriter();
  for (const k of r.keys) w.nested(Tag.KEY_ENTRY, writeKeyInfo(new TlvWriter(), k));
  for (const p of r.psks) {
    const e = new TlvWriter().bytes(Tag.PSK_IDENTITY, p.identity);
    if (p.createdAt !== undefined) e.str(Tag.CREATED_AT, p.createdAt);
    if (p.hash !== undefined) e.u8(Tag.PRF_HASH, PRF_HASHES.indexOf(p.hash) + 1);
    w.nested(Tag.PSK_ENTRY, e);
  }
  return w.finish();
}

/** Parses a LIST_KEYS RESULT body. */
export function decodeListKeysResult(body: Uint8Array): ListKeysResult {
  const f = TlvFields.parse(body, 'RESULT');
  const psks = f.all(Tag.PSK_ENTRY).map((b) => {
    const e = TlvFields.parse(b, 'PSK_ENTRY');
    const p: PskInfo = { identity: e.req(Tag.PSK_IDENTITY) };
    const created = e.optStr(Tag.CREATED_AT, 64);
    if (created !== undefined) p.createdAt = created;
    const h = e.optU8(Tag.PRF_HASH);
    if (h !== undefined && PRF_HASHES[h - 1]) p.hash = PRF_HASHES[h - 1];
    return p;
  });
  return { keys: f.all(Tag.KEY_ENTRY).map(readKeyInfo), psks };
}

/** Most ticket keys one answer carries (a handful: sealing, next, a few retired). */
export const MAX_TICKET_KEYS = 64;

/**
 * RESULT of GET_TICKET_KEYS, in its writer: the secrets are referenced, not copied, and the
 * entries are nested writers, so the only copy made is the frame itself (which keyd wipes
 * once written).
 */
export function ticketKeysWriter(r: TicketKeysResult): TlvWriter {
  const w = new TlvWriter().u32(Tag.ROTATE_EVERY_MS, r.rotateEveryMs).u32(Tag.TICKET_LIFETIME, r.ticketLifetimeSeconds).u32(Tag.NEXT_ROTATION_MS, Math.max(0, Math.round(r.nextRotationMs)));
  for (const k of r.keys) {
    w.nested(Tag.TICKET_KEY, new TlvWriter().bytes(Tag.TICKET_KEY_NAME, k.name).bytes(Tag.TICKET_KEY_SECRET, k.secret).str(Tag.CREATED_AT, new Date(k.createdAt).toISOString()));
  }
  return w;
}

/** Parses a GET_TICKET_KEYS RESULT body; the secrets are views of `body` (wipe it after use). */
export function decodeTicketKeysResult(body: Uint8Array): TicketKeysResult {
  const what = 'GET_TICKET_KEYS result';
  const f = TlvFields.parse(body, what);
  const entries = f.all(Tag.TICKET_KEY);
  if (entries.length === 0 || entries.length > MAX_TICKET_KEYS) throw badRequest(`${what}: expected 1..${MAX_TICKET_KEYS} TICKET_KEY fields`);
  const keys = entries.map((b) => {
    const e = TlvFields.parse(b, 'TICKET_KEY');
    const name = e.req(Tag.TICKET_KEY_NAME);
    const secret = e.req(Tag.TICKET_KEY_SECRET);
    if (name.length !== 16 || secret.length !== 32) throw badRequest('TICKET_KEY: a 16-byte name and a 32-byte key expected');
    const createdAt = Date.parse(e.reqStr(Tag.CREATED_AT, 64));
    if (!Number.isFinite(createdAt)) throw badRequest('TICKET_KEY: CREATED_AT is not an ISO 8601 time');
    return { name, secret, createdAt };
  });
  const rotateEveryMs = f.reqU32(Tag.ROTATE_EVERY_MS);
  const ticketLifetimeSeconds = f.reqU32(Tag.TICKET_LIFETIME);
  if (rotateEveryMs === 0 || ticketLifetimeSeconds === 0 || ticketLifetimeSeconds > 604_800) throw badRequest(`${what}: ROTATE_EVERY_MS or TICKET_LIFETIME out of range`);
  return { keys, rotateEveryMs, ticketLifetimeSeconds, nextRotationMs: f.reqU32(Tag.NEXT_ROTATION_MS) };
}

/** Body of an ERROR frame. */
export function encodeError(e: ErrorBody): Uint8Array {
  const w = new TlvWriter().u8(Tag.ERROR_CODE, errorCodeToWire(e.code)).str(Tag.ERROR_MESSAGE, sanitizeMessage(e.message));
  if (e.supportedVersions) w.bytes(Tag.SUPPORTED_VERSION, Uint8Array.from(e.supportedVersions));
  return w.finish();
}

/** Parses an ERROR body; unknown codes become 'internal'. */
export function decodeError(body: Uint8Array): ErrorBody {
  const f = TlvFields.parse(body, 'ERROR');
  const out: ErrorBody = {
    code: errorCodeFromWire(f.optU8(Tag.ERROR_CODE) ?? 0),
    message: f.optStr(Tag.ERROR_MESSAGE, 1024) ?? 'no message',
  };
  const v = f.opt(Tag.SUPPORTED_VERSION);
  if (v !== undefined) out.supportedVersions = [...v];
  return out;
}

/** Keeps an error message printable and short (it is shown to the peer and logged there). */
function sanitizeMessage(m: string): string {
  // eslint-disable-next-line no-control-regex
  const s = m.replace(/[\u0000-\u001f\u007f]/g, ' ');
  return Buffer.byteLength(s) > 1000 ? s.slice(0, 500) + '…' : s;
}

/** PING and PONG carry an optional opaque payload that PONG echoes (at most 64 bytes). */
export const MAX_PING_PAYLOAD = 64;
