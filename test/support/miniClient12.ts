/**
 * A minimal TLS 1.2 client over the engine's own crypto, for sans-IO tests of server12:
 * it builds the ClientHello, reads the server flight, checks the ServerKeyExchange
 * signature, and builds ClientKeyExchange / ChangeCipherSpec / Finished, each of which a
 * test can break on purpose. Not a product: it trusts what it receives and checks little.
 */
import { constants, publicEncrypt, randomBytes, X509Certificate } from 'node:crypto';
import { RecordAead } from '../../src/tls/crypto/aead.js';
import { suiteInfo, type CipherSuiteInfo } from '../../src/tls/crypto/cipherSuites.js';
import { generateKeyExchange, type KeyExchange, type NamedGroup } from '../../src/tls/crypto/groups.js';
import { pskPremaster, tls12ExtendedMasterSecret, tls12KeyBlock, tls12MasterSecret, tls12VerifyData } from '../../src/tls/crypto/prf12.js';
import { verifySignature } from '../../src/tls/crypto/signatureSchemes.js';
import { Transcript } from '../../src/tls/crypto/transcript.js';
import { HandshakeType } from '../../src/tls/wire/constants.js';
import { ecPointFormatsExt, extendedMasterSecretExt, renegotiationInfoExt } from '../../src/tls/wire/extensionCodecs.js';
import { encodeFinished } from '../../src/tls/wire/finished.js';
import {
  encodeClientKeyExchange,
  parseCertificate12,
  parseServerKeyExchange,
  serverKeyExchangeSignedContent,
  type ClientKeyExchange12,
} from '../../src/tls/wire/messages12.js';
import { parseServerHello } from '../../src/tls/wire/serverHello.js';
import { clientHelloBody, ext, handshakeMsg, nextHandshakeMessage, nextRecord, record } from './clientHelloBuilder.js';

export interface MiniClient12Options {
  suites?: number[];
  groups?: number[] | null;
  sigAlgs?: number[] | null;
  /** Offer extended_master_secret (default true). */
  ems?: boolean;
  /** renegotiation_info: empty by default; null leaves it out; bytes send that body. */
  renegotiationInfo?: Uint8Array | null;
  /** ec_point_formats list; null (default) leaves it out. */
  ecPointFormats?: number[] | null;
  serverName?: string;
  alpn?: string[];
  /** Extra extensions appended. */
  extra?: { type: number; data: Uint8Array }[];
  /** ClientHello.client_version (default 0x0303). */
  clientVersion?: number;
  /** Offer TLS 1.3 too (supported_versions 1.3, 1.2). */
  offer13?: boolean;
}

export interface ServerFlight12 {
  serverRandom: Buffer;
  sessionId: Buffer;
  suite: CipherSuiteInfo;
  extensions: Map<number, Buffer>;
  certificates: Buffer[];
  ske?: Buffer;
  /** ServerKeyExchange signature checked against the leaf certificate (signed suites). */
  signatureValid?: boolean;
  skeGroup?: number;
  skePoint?: Buffer;
  scheme?: number;
  pskHint?: Buffer;
  done: boolean;
}

export class MiniClient12 {
  readonly random = randomBytes(32);
  readonly chRaw: Uint8Array;
  readonly clientVersion: number;
  private readonly ems: boolean;
  private inbuf = Buffer.alloc(0);
  private hsBuf = Buffer.alloc(0);
  private transcript: Transcript | null = null;
  private readAead: RecordAead | null = null;
  private writeAead: RecordAead | null = null;
  private readSeq = 0;
  private writeSeq = 0;
  private masterSecret: Buffer | null = null;
  private serverCcs = false;
  flight: ServerFlight12 | null = null;
  serverFinishedOk: boolean | undefined;
  alerts: { level: number; desc: number }[] = [];
  appData: Buffer[] = [];
  messages: { type: number; raw: Buffer }[] = [];
  kx: KeyExchange | null = null;

  constructor(opts: MiniClient12Options = {}) {
    this.ems = opts.ems ?? true;
    this.clientVersion = opts.clientVersion ?? 0x0303;
    const exts: { type: number; data: Uint8Array }[] = [];
    if (opts.serverName) exts.push(ext.serverName(opts.serverName));
    const groups = opts.groups === undefined ? [29, 23, 24] : opts.groups;
    if (groups) exts.push(ext.supportedGroups(groups));
    if (opts.ecPointFormats) exts.push(ecPointFormatsExt.encode(Uint8Array.from(opts.ecPointFormats)));
    const sig = opts.sigAlgs === undefined ? [0x0403, 0x0503, 0x0804, 0x0805, 0x0401, 0x0807] : opts.sigAlgs;
    if (sig) exts.push(ext.signatureAlgorithms(sig));
    if (opts.alpn) exts.push(ext.alpn(opts.alpn));
    if (this.ems) exts.push(extendedMasterSecretExt.encode());
    const ri = opts.renegotiationInfo === undefined ? new Uint8Array(0) : opts.renegotiationInfo;
    if (ri) exts.push(renegotiationInfoExt.encode(ri));
    if (opts.offer13) {
      exts.push(ext.supportedVersions([0x0304, 0x0303]));
      exts.push(ext.keyShare([{ group: 29, key: generateKeyExchange(29).publicKey }]));
    }
    exts.push(...(opts.extra ?? []));
    this.chRaw = handshakeMsg(
      1,
      clientHelloBody({
        legacyVersion: this.clientVersion,
        random: this.random,
        sessionId: new Uint8Array(0),
        cipherSuites: opts.suites ?? [0xc02b, 0xc02f],
        extensions: exts,
      }),
    );
  }

  clientHelloRecord(): Uint8Array {
    return record(22, this.chRaw, 0x0301);
  }

  /** Feeds server records. */
  receive(records: Uint8Array[]): void {
    this.inbuf = Buffer.concat([this.inbuf, ...records]);
    for (let rec = nextRecord(this.inbuf); rec; rec = nextRecord(this.inbuf)) {
      const type = rec.type;
      let body: Buffer = Buffer.from(rec.body);
      this.inbuf = rec.rest;
      if (type === 20) {
        this.serverCcs = true;
        this.readAead = this.keys!.server;
        this.readSeq = 0;
        continue;
      }
      if (this.serverCcs && this.readAead) {
        const plainLen = body.length - this.readAead.explicitNonceLength - 16;
        const plain = this.readAead.open(this.readSeq, aad(this.readSeq, type, plainLen), body);
        if (!plain) throw new Error('client could not decrypt a server record');
        this.readSeq++;
        body = plain;
      }
      if (type === 21) this.alerts.push({ level: body[0], desc: body[1] });
      else if (type === 23) this.appData.push(body);
      else if (type === 22) this.onHandshakeData(body);
    }
  }

  private onHandshakeData(data: Buffer): void {
    this.hsBuf = Buffer.concat([this.hsBuf, data]);
    for (let next = nextHandshakeMessage(this.hsBuf); next; next = nextHandshakeMessage(this.hsBuf)) {
      this.hsBuf = next.rest;
      this.onMessage(next.message);
    }
  }

  private onMessage(raw: Buffer): void {
    this.messages.push({ type: raw[0], raw });
    const body = raw.subarray(4);
    if (raw[0] === HandshakeType.finished) {
      const expected = tls12VerifyData(this.flight!.suite.hash, this.masterSecret!, 'server finished', this.transcript!.current());
      this.serverFinishedOk = expected.equals(body);
      this.transcript!.update(raw);
      return;
    }
    if (raw[0] === HandshakeType.server_hello) {
      const sh = parseServerHello(body);
      const suite = suiteInfo(sh.cipherSuite)!;
      const extensions = new Map(sh.extensions.map((e) => [e.type, Buffer.from(e.data)]));
      this.flight = { serverRandom: Buffer.from(sh.random), sessionId: Buffer.from(sh.sessionId), suite, extensions, certificates: [], done: false };
      this.transcript = new Transcript(suite.hash);
      this.transcript.update(this.chRaw);
    }
    this.transcript?.update(raw);
    const f = this.flight!;
    if (raw[0] === HandshakeType.certificate) {
      f.certificates.push(...parseCertificate12(body).map((c) => Buffer.from(c)));
    } else if (raw[0] === HandshakeType.server_key_exchange) {
      f.ske = Buffer.from(body);
      const kx = f.suite.keyExchange;
      const ske = parseServerKeyExchange(body, kx === 'ECDHE_ECDSA' || kx === 'ECDHE_RSA' ? 'ECDHE' : (kx as 'PSK' | 'ECDHE_PSK'));
      if (ske.kind === 'PSK' || ske.kind === 'ECDHE_PSK') f.pskHint = Buffer.from(ske.identityHint);
      if (ske.kind === 'ECDHE' || ske.kind === 'ECDHE_PSK') {
        f.skeGroup = ske.group;
        f.skePoint = Buffer.from(ske.publicKey);
      }
      if (ske.kind === 'ECDHE') {
        f.scheme = ske.signed.scheme;
        const leaf = new X509Certificate(f.certificates[0]);
        f.signatureValid = verifySignature(leaf.publicKey, f.scheme, serverKeyExchangeSignedContent(this.random, f.serverRandom, ske.params), ske.signed.signature);
      }
    } else if (raw[0] === HandshakeType.server_hello_done) {
      f.done = true;
    }
  }

  private keys: { client: RecordAead; server: RecordAead } | null = null;

  /**
   * The client's second flight: ClientKeyExchange, ChangeCipherSpec, Finished, as
   * separate records. For RSA: `ciphertext` replaces the encrypted premaster and
   * `premaster` the secret the client derives its keys from.
   */
  secondFlight(
    o: { psk?: { identity: string; key: Uint8Array }; ciphertext?: Uint8Array; premaster?: Uint8Array; corruptFinished?: boolean; point?: Uint8Array } = {},
  ): { cke: Uint8Array; ccs: Uint8Array; finished: Uint8Array } {
    const f = this.flight!;
    const kx = f.suite.keyExchange;
    let premaster: Uint8Array;
    let message: ClientKeyExchange12;
    if (kx === 'RSA') {
      const pm = o.premaster ?? Buffer.concat([Buffer.of(this.clientVersion >> 8, this.clientVersion & 0xff), randomBytes(46)]);
      const leaf = new X509Certificate(f.certificates[0]);
      const ct = o.ciphertext ?? publicEncrypt({ key: leaf.publicKey, padding: constants.RSA_PKCS1_PADDING }, pm);
      message = { kind: 'RSA', encryptedPremaster: ct };
      premaster = pm;
    } else if (kx === 'PSK') {
      message = { kind: 'PSK', identity: Buffer.from(o.psk!.identity, 'utf8') };
      premaster = pskPremaster(o.psk!.key, null);
    } else {
      this.kx = generateKeyExchange(f.skeGroup as NamedGroup);
      const publicKey = o.point ?? this.kx.publicKey;
      const shared = this.kx.computeSharedSecret(f.skePoint!);
      if (kx === 'ECDHE_PSK') {
        message = { kind: 'ECDHE_PSK', identity: Buffer.from(o.psk!.identity, 'utf8'), publicKey };
        premaster = pskPremaster(o.psk!.key, shared);
      } else {
        message = { kind: 'ECDHE', publicKey };
        premaster = shared;
      }
    }
    const cke = encodeClientKeyExchange(message);
    this.transcript!.update(cke);
    const h = f.suite.hash;
    const useEms = this.ems && f.extensions.has(23);
    this.masterSecret = useEms ? tls12ExtendedMasterSecret(h, premaster, this.transcript!.current()) : tls12MasterSecret(h, premaster, this.random, f.serverRandom);
    const kb = tls12KeyBlock(h, this.masterSecret, this.random, f.serverRandom, f.suite.aead);
    this.keys = {
      client: new RecordAead(f.suite.aead, kb.clientKey, kb.clientIv, 'tls12'),
      server: new RecordAead(f.suite.aead, kb.serverKey, kb.serverIv, 'tls12'),
    };
    const vd = tls12VerifyData(h, this.masterSecret, 'client finished', this.transcript!.current());
    if (o.corruptFinished) vd[0] ^= 1;
    const fin = encodeFinished(vd);
    this.transcript!.update(fin);
    this.writeAead = this.keys.client;
    this.writeSeq = 0;
    return { cke: record(22, cke), ccs: record(20, Uint8Array.of(1)), finished: this.protect(22, fin) };
  }

  /** A record of `type` protected with the client's write key. */
  protect(type: number, data: Uint8Array): Uint8Array {
    const a = this.writeAead!;
    const sealed = a.seal(this.writeSeq, aad(this.writeSeq, type, data.length), [data]);
    this.writeSeq++;
    return record(type, sealed);
  }
}

function aad(seq: number, type: number, length: number): Buffer {
  const a = Buffer.alloc(13);
  a.writeBigUInt64BE(BigInt(seq), 0);
  a[8] = type;
  a[9] = 3;
  a[10] = 3;
  a.writeUInt16BE(length, 11);
  return a;
}
