/**
 * A minimal TLS 1.3 client over the engine's own crypto, for sans-IO engine tests that
 * need to reach the encrypted phases (bad Finished, KeyUpdate, fragmented or malformed
 * protected records). Not a product: it trusts what it receives and checks little.
 */
import { RecordAead } from '../../src/tls/crypto/aead.js';
import { suiteInfo, type AeadName } from '../../src/tls/crypto/cipherSuites.js';
import { generateKeyExchange, NamedGroup, type KeyExchange } from '../../src/tls/crypto/groups.js';
import {
  tls13ApplicationSecrets,
  tls13EarlySecret,
  tls13FinishedVerifyData,
  tls13HandshakeSecrets,
  tls13NextTrafficSecret,
  tls13TrafficKeys,
} from '../../src/tls/crypto/keySchedule13.js';
import { Transcript } from '../../src/tls/crypto/transcript.js';
import { HandshakeType } from '../../src/tls/wire/constants.js';
import { encodeFinished } from '../../src/tls/wire/finished.js';
import { encodeKeyUpdate } from '../../src/tls/wire/messages13.js';
import { parseServerHello } from '../../src/tls/wire/serverHello.js';
import { clientHelloBody, ext, handshakeMsg, nextHandshakeMessage, nextRecord, record, type HelloParts } from './clientHelloBuilder.js';

export interface PlainRecordOut {
  type: number;
  data: Buffer;
}

export class MiniClient {
  readonly kx: KeyExchange;
  transcript: Transcript | null = null;
  private readAead: RecordAead | null = null;
  private writeAead: RecordAead | null = null;
  private readSeq = 0;
  private writeSeq = 0;
  private hash: 'sha256' | 'sha384' = 'sha256';
  private aeadName: AeadName = 'aes-128-gcm';
  private chRaw: Uint8Array;
  private clientHs!: Buffer;
  private serverHs!: Buffer;
  clientApp!: Buffer;
  serverApp!: Buffer;
  private hsSecret!: Buffer;
  private inbuf = Buffer.alloc(0);
  private hsBuf = Buffer.alloc(0);
  serverMessages: { type: number; raw: Buffer }[] = [];
  alerts: number[] = [];
  appData: Buffer[] = [];

  constructor(parts: HelloParts & { extraExtensions?: { type: number; data: Uint8Array }[] } = {}, group: NamedGroup = NamedGroup.x25519) {
    this.kx = generateKeyExchange(group);
    const exts = parts.extensions ?? [
      ext.serverName('localhost'),
      ext.supportedGroups([group]),
      ext.signatureAlgorithms([0x0403, 0x0804, 0x0807, 0x0503, 0x0805]),
      ext.supportedVersions([0x0304]),
      ext.keyShare([{ group, key: this.kx.publicKey }]),
      ...(parts.extraExtensions ?? []),
    ];
    this.chRaw = handshakeMsg(1, clientHelloBody({ ...parts, extensions: exts }));
  }

  clientHelloRecord(): Uint8Array {
    return record(22, this.chRaw, 0x0301);
  }

  /** Feeds server records; decrypts what it can. */
  receive(records: Uint8Array[]): void {
    this.inbuf = Buffer.concat([this.inbuf, ...records]);
    for (let rec = nextRecord(this.inbuf); rec; rec = nextRecord(this.inbuf)) {
      const { type, header, body } = rec;
      this.inbuf = rec.rest;
      if (type === 20) continue;
      if (type === 23 && this.readAead) {
        const plain = this.readAead.open(this.readSeq++, header, body);
        if (!plain) throw new Error('client could not decrypt a server record');
        let end = plain.length - 1;
        while (plain[end] === 0) end--;
        this.onPlain(plain[end], plain.subarray(0, end));
      } else {
        this.onPlain(type, Buffer.from(body));
      }
    }
  }

  private onPlain(type: number, data: Buffer): void {
    if (type === 21) {
      this.alerts.push(data[1]);
      return;
    }
    if (type === 23) {
      this.appData.push(Buffer.from(data));
      return;
    }
    if (type !== 22) return;
    this.hsBuf = Buffer.concat([this.hsBuf, data]);
    for (let next = nextHandshakeMessage(this.hsBuf); next; next = nextHandshakeMessage(this.hsBuf)) {
      this.hsBuf = next.rest;
      this.onMessage(next.message);
    }
  }

  private onMessage(raw: Buffer): void {
    this.serverMessages.push({ type: raw[0], raw });
    if (raw[0] === HandshakeType.server_hello) {
      const sh = parseServerHello(raw.subarray(4));
      const info = suiteInfo(sh.cipherSuite)!;
      this.hash = info.hash;
      this.aeadName = info.aead;
      this.transcript = new Transcript(this.hash);
      this.transcript.update(this.chRaw);
      this.transcript.update(raw);
      const shared = this.kx.computeSharedSecret(sh.keyShare!.keyExchange);
      const hs = tls13HandshakeSecrets(this.hash, tls13EarlySecret(this.hash), shared, this.transcript.current());
      this.clientHs = hs.clientHandshakeTraffic;
      this.serverHs = hs.serverHandshakeTraffic;
      this.hsSecret = hs.handshakeSecret;
      this.readAead = this.aead(this.serverHs);
      this.readSeq = 0;
      return;
    }
    if (raw[0] === HandshakeType.key_update) {
      this.serverApp = tls13NextTrafficSecret(this.hash, this.serverApp);
      this.readAead = this.aead(this.serverApp);
      this.readSeq = 0;
      return;
    }
    this.transcript?.update(raw);
    if (raw[0] === HandshakeType.finished) {
      const app = tls13ApplicationSecrets(this.hash, this.hsSecret, this.transcript!.current());
      this.clientApp = app.clientApplicationTraffic;
      this.serverApp = app.serverApplicationTraffic;
      this.readAead = this.aead(this.serverApp);
      this.readSeq = 0;
    }
  }

  get serverFinished(): boolean {
    return this.serverMessages.some((m) => m.type === 20);
  }

  /** The client's Finished, protected with the client handshake key. */
  finishedRecord(corrupt = false): Uint8Array {
    const vd = Buffer.from(tls13FinishedVerifyData(this.hash, this.clientHs, this.transcript!.current()));
    if (corrupt) vd[0] ^= 1;
    this.writeAead = this.aead(this.clientHs);
    this.writeSeq = 0;
    const rec = this.protect(22, encodeFinished(vd));
    this.writeAead = this.aead(this.clientApp);
    this.writeSeq = 0;
    return rec;
  }

  /** A protected record of `type` under the current client key; `padding` zero bytes added. */
  protect(type: number, data: Uint8Array, padding = 0): Uint8Array {
    const inner = Buffer.concat([data, Buffer.of(type), Buffer.alloc(padding)]);
    const len = inner.length + 16;
    const header = Buffer.from([23, 3, 3, len >> 8, len & 0xff]);
    const sealed = this.writeAead!.seal(this.writeSeq++, header, [inner]);
    return Buffer.concat([header, sealed]);
  }

  /** A record protected under the client handshake traffic key (before the client Finished). */
  protectUnderHandshakeKey(type: number, data: Uint8Array, padding = 0): Uint8Array {
    this.writeAead = this.aead(this.clientHs);
    this.writeSeq = 0;
    return this.protect(type, data, padding);
  }

  /** Sends a KeyUpdate and switches the client's write key. */
  keyUpdateRecord(requestUpdate: boolean): Uint8Array {
    const rec = this.protect(22, encodeKeyUpdate(requestUpdate));
    this.clientApp = tls13NextTrafficSecret(this.hash, this.clientApp);
    this.writeAead = this.aead(this.clientApp);
    this.writeSeq = 0;
    return rec;
  }

  private aead(secret: Buffer): RecordAead {
    const k = tls13TrafficKeys(this.hash, secret, this.aeadName);
    return new RecordAead(this.aeadName, k.key, k.iv, 'tls13');
  }
}
