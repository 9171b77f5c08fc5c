/**
 * PROXY protocol version 2 (haproxy's proxy-protocol.txt, section 2.2): the binary header
 * the proxy writes first on an upstream connection so the application sees the client's
 * address and what TLS negotiated. Encoder for the proxy; a bounds-checked decoder for
 * applications behind it (the demo app, tests).
 */
import { isIP } from 'node:net';

/** The 12-byte signature every v2 header starts with. */
export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** TLV types (section 2.2.7) this module writes. */
export const PP2 = {
  ALPN: 0x01,
  AUTHORITY: 0x02,
  UNIQUE_ID: 0x05,
  SSL: 0x20,
  SUBTYPE_SSL_VERSION: 0x21,
  SUBTYPE_SSL_CN: 0x22,
  SUBTYPE_SSL_CIPHER: 0x23,
  /** keyward's own (custom range 0xE0-0xEF): the key-exchange group, e.g. "x25519". */
  KEYWARD_GROUP: 0xe0,
  /** keyward's own: the handshake signature scheme, e.g. "ecdsa_secp256r1_sha256". */
  KEYWARD_SIGNATURE: 0xe1,
  /** keyward's own: the identity of the PSK the client authenticated with (UTF-8, as the handshake decoded it). */
  KEYWARD_PSK_IDENTITY: 0xe2,
} as const;

/** PP2_TYPE_SSL client bits. */
export const PP2_CLIENT_SSL = 0x01;
export const PP2_CLIENT_CERT_CONN = 0x02;

/** What the proxy knows about one client connection. */
export interface ProxyHeaderInfo {
  /** Client address and port; absent (LOCAL command) when unknown. */
  source?: { address: string; port: number };
  /** The address and port the client connected to. */
  destination?: { address: string; port: number };
  alpn?: string;
  /** SNI the client sent. */
  authority?: string;
  /** Connection id (also in the front's access log and keyd's audit lines). */
  uniqueId?: string;
  tls?: {
    version?: string;
    cipher?: string;
    /** Common name of a verified client certificate. */
    clientCn?: string;
    group?: string;
    signatureScheme?: string;
    /** The PSK identity the client authenticated with (TLS 1.2 PSK or TLS 1.3 external PSK). */
    pskIdentity?: string;
  };
}

const MAX_TLV_VALUE = 0xffff;

function tlv(type: number, value: Buffer): Buffer {
  if (value.length > MAX_TLV_VALUE) throw new RangeError(`PROXY v2 TLV 0x${type.toString(16)} is too long`);
  const b = Buffer.allocUnsafe(3 + value.length);
  b[0] = type;
  b.writeUInt16BE(value.length, 1);
  value.copy(b, 3);
  return b;
}

/** ::ffff:a.b.c.d as a.b.c.d, so a dual-stack listener still reports IPv4 clients as IPv4. */
function unmapped(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1] : address;
}

function ipv6Bytes(address: string): Buffer {
  const v4 = isIP(address) === 4 ? address : undefined;
  if (v4) return Buffer.concat([Buffer.alloc(10), Buffer.from([0xff, 0xff]), Buffer.from(v4.split('.').map(Number))]);
  const zoneless = address.replace(/%.*$/, '');
  const [head, tail] = zoneless.includes('::') ? zoneless.split('::') : [zoneless, undefined];
  const parse = (s: string | undefined): string[] => (s ? s.split(':') : []);
  let groups = parse(head);
  let after = parse(tail);
  // An embedded IPv4 tail (::ffff:1.2.3.4 when not unmapped, 64:ff9b::1.2.3.4) is two groups.
  const fix = (g: string[]): string[] => {
    const last = g[g.length - 1];
    if (last && last.includes('.')) {
      const o = last.split('.').map(Number);
      return [...g.slice(0, -1), ((o[0] << 8) | o[1]).toString(16), ((o[2] << 8) | o[3]).toString(16)];
    }
    return g;
  };
  groups = fix(groups);
  after = fix(after);
  const fill = tail === undefined ? [] : Array<string>(8 - groups.length - after.length).fill('0');
  const all = [...groups, ...fill, ...after];
  const b = Buffer.alloc(16);
  all.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16) & 0xffff, i * 2));
  return b;
}

/** Encodes a PROXY v2 header: PROXY over TCP/IPv4 or IPv6, or LOCAL when the addresses are unknown. */
export function encodeProxyV2(info: ProxyHeaderInfo): Buffer {
  const tlvs: Buffer[] = [];
  if (info.alpn) tlvs.push(tlv(PP2.ALPN, Buffer.from(info.alpn, 'latin1')));
  if (info.authority) tlvs.push(tlv(PP2.AUTHORITY, Buffer.from(info.authority, 'utf8')));
  if (info.uniqueId) tlvs.push(tlv(PP2.UNIQUE_ID, Buffer.from(info.uniqueId, 'latin1').subarray(0, 128)));
  if (info.tls) {
    const sub: Buffer[] = [];
    if (info.tls.version) sub.push(tlv(PP2.SUBTYPE_SSL_VERSION, Buffer.from(info.tls.version, 'latin1')));
    if (info.tls.clientCn) sub.push(tlv(PP2.SUBTYPE_SSL_CN, Buffer.from(info.tls.clientCn, 'utf8')));
    if (info.tls.cipher) sub.push(tlv(PP2.SUBTYPE_SSL_CIPHER, Buffer.from(info.tls.cipher, 'latin1')));
    const head = Buffer.alloc(5);
    head[0] = PP2_CLIENT_SSL | (info.tls.clientCn ? PP2_CLIENT_CERT_CONN : 0);
    // verify: 0 when the client presented a certificate that verified, else non-zero.
    head.writeUInt32BE(info.tls.clientCn ? 0 : 1, 1);
    tlvs.push(tlv(PP2.SSL, Buffer.concat([head, ...sub])));
    if (info.tls.group) tlvs.push(tlv(PP2.KEYWARD_GROUP, Buffer.from(info.tls.group, 'latin1')));
    if (info.tls.signatureScheme) tlvs.push(tlv(PP2.KEYWARD_SIGNATURE, Buffer.from(info.tls.signatureScheme, 'latin1')));
    if (info.tls.pskIdentity !== undefined) tlvs.push(tlv(PP2.KEYWARD_PSK_IDENTITY, Buffer.from(info.tls.pskIdentity, 'utf8')));
  }
  let command = 0x21; // version 2, PROXY
  let family = 0x00;
  let addresses = Buffer.alloc(0);
  const src = info.source && { address: unmapped(info.source.address), port: info.source.port };
  const dst = info.destination && { address: unmapped(info.destination.address), port: info.destination.port };
  if (src && dst && isIP(src.address) && isIP(dst.address)) {
    const ports = Buffer.alloc(4);
    ports.writeUInt16BE(src.port, 0);
    ports.writeUInt16BE(dst.port, 2);
    if (isIP(src.address) === 4 && isIP(dst.address) === 4) {
      family = 0x11; // TCP over IPv4
      addresses = Buffer.concat([Buffer.from(src.address.split('.').map(Number)), Buffer.from(dst.address.split('.').map(Number)), ports]);
    } else {
      family = 0x21; // TCP over IPv6 (an IPv4 side becomes ::ffff:a.b.c.d)
      addresses = Buffer.concat([ipv6Bytes(src.address), ipv6Bytes(dst.address), ports]);
    }
  } else {
    command = 0x20; // LOCAL: the receiver uses the connection's own addresses
  }
  const body = Buffer.concat([addresses, ...tlvs]);
  if (body.length > 0xffff) throw new RangeError('PROXY v2 header is too long');
  const fixed = Buffer.alloc(16);
  PROXY_V2_SIGNATURE.copy(fixed, 0);
  fixed[12] = command;
  fixed[13] = family;
  fixed.writeUInt16BE(body.length, 14);
  return Buffer.concat([fixed, body]);
}

/** A decoded header: the info, the command, and how many bytes it took. */
export interface DecodedProxyV2 extends ProxyHeaderInfo {
  command: 'PROXY' | 'LOCAL';
  length: number;
  /** Every TLV as read, for types this module does not name. */
  tlvs: Array<{ type: number; value: Buffer }>;
}

/** The header is malformed; the message says where. */
export class ProxyHeaderError extends Error {}

function ipText(b: Buffer): string {
  if (b.length === 4) return Array.from(b).join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  const text = groups.join(':');
  if (/^0:0:0:0:0:ffff:/.test(text)) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  // Shorten the first longest run of zero groups, as RFC 5952 asks.
  const m = /(?:^|:)0(?::0)+(?::|$)/g;
  let best = '';
  for (const r of text.matchAll(m)) if (r[0].length > best.length) best = r[0];
  return best ? text.replace(best, '::') : text;
}

function readTlvs(b: Buffer, start: number, end: number, where: string): Array<{ type: number; value: Buffer }> {
  const out: Array<{ type: number; value: Buffer }> = [];
  let i = start;
  while (i < end) {
    if (end - i < 3) throw new ProxyHeaderError(`${where}: truncated TLV header at byte ${i}`);
    const type = b[i];
    const len = b.readUInt16BE(i + 1);
    if (i + 3 + len > end) throw new ProxyHeaderError(`${where}: TLV 0x${type.toString(16)} at byte ${i} runs past the header (${len} bytes)`);
    out.push({ type, value: b.subarray(i + 3, i + 3 + len) });
    i += 3 + len;
  }
  return out;
}

/**
 * Decodes a PROXY v2 header at the start of `b`. Returns undefined when more bytes are
 * needed; throws ProxyHeaderError when the bytes are not a valid v2 header.
 */
export function decodeProxyV2(b: Buffer): DecodedProxyV2 | undefined {
  const sigLen = Math.min(b.length, 12);
  if (!b.subarray(0, sigLen).equals(PROXY_V2_SIGNATURE.subarray(0, sigLen))) throw new ProxyHeaderError('not a PROXY v2 header (bad signature)');
  if (b.length < 16) return undefined;
  const verCmd = b[12];
  if (verCmd >> 4 !== 2) throw new ProxyHeaderError(`unsupported PROXY protocol version ${verCmd >> 4}`);
  const cmd = verCmd & 0x0f;
  if (cmd > 1) throw new ProxyHeaderError(`unknown PROXY v2 command ${cmd}`);
  const family = b[13];
  const length = 16 + b.readUInt16BE(14);
  if (b.length < length) return undefined;
  let addrLen = 0;
  const out: DecodedProxyV2 = { command: cmd === 1 ? 'PROXY' : 'LOCAL', length, tlvs: [] };
  if (family === 0x11 || family === 0x12) addrLen = 12;
  else if (family === 0x21 || family === 0x22) addrLen = 36;
  else if (family === 0x31 || family === 0x32) addrLen = 216;
  else if (family !== 0x00) throw new ProxyHeaderError(`unknown PROXY v2 address family 0x${family.toString(16)}`);
  if (16 + addrLen > length) throw new ProxyHeaderError(`PROXY v2 header too short for address family 0x${family.toString(16)}`);
  if (cmd === 1 && addrLen === 12) {
    out.source = { address: ipText(b.subarray(16, 20)), port: b.readUInt16BE(24) };
    out.destination = { address: ipText(b.subarray(20, 24)), port: b.readUInt16BE(26) };
  } else if (cmd === 1 && addrLen === 36) {
    out.source = { address: ipText(b.subarray(16, 32)), port: b.readUInt16BE(48) };
    out.destination = { address: ipText(b.subarray(32, 48)), port: b.readUInt16BE(50) };
  }
  out.tlvs = readTlvs(b, 16 + addrLen, length, 'PROXY v2');
  for (const t of out.tlvs) {
    if (t.type === PP2.ALPN) out.alpn = t.value.toString('latin1');
    else if (t.type === PP2.AUTHORITY) out.authority = t.value.toString('utf8');
    else if (t.type === PP2.UNIQUE_ID) out.uniqueId = t.value.toString('latin1');
    else if (t.type === PP2.KEYWARD_GROUP) (out.tls ??= {}).group = t.value.toString('latin1');
    else if (t.type === PP2.KEYWARD_SIGNATURE) (out.tls ??= {}).signatureScheme = t.value.toString('latin1');
    else if (t.type === PP2.KEYWARD_PSK_IDENTITY) (out.tls ??= {}).pskIdentity = t.value.toString('utf8');
    else if (t.type === PP2.SSL) {
      if (t.value.length < 5) throw new ProxyHeaderError('PROXY v2 SSL TLV shorter than 5 bytes');
      const tls = (out.tls ??= {});
      for (const s of readTlvs(t.value, 5, t.value.length, 'PROXY v2 SSL TLV')) {
        if (s.type === PP2.SUBTYPE_SSL_VERSION) tls.version = s.value.toString('latin1');
        else if (s.type === PP2.SUBTYPE_SSL_CIPHER) tls.cipher = s.value.toString('latin1');
        else if (s.type === PP2.SUBTYPE_SSL_CN) tls.clientCn = s.value.toString('utf8');
      }
    }
  }
  return out;
}
