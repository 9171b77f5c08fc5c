/**
 * Can a certificate delegate (RFC 9345 4.2)? Its end-entity certificate must carry the
 * DelegationUsage extension (OID 1.3.6.1.4.1.44363.44, value NULL, non-critical) and the
 * digitalSignature key usage. Key holders (keyd, the key process) run this on the
 * certificate a front sends with a delegated-credential request; `serve` and `proxy` run
 * it at start to say plainly why a certificate cannot delegate.
 *
 * node:crypto's X509Certificate does not expose arbitrary extensions, so this reads the
 * few fields it needs with a small bounds-checked DER walker (X.690): validity, the
 * SubjectPublicKeyInfo, and the extensions.
 */

/** DER of the OID 1.3.6.1.4.1.44363.44 (id-ce-delegationUsage), content bytes only. */
const DELEGATION_USAGE_OID = Buffer.from('2b0601040182da4b2c', 'hex');
/** 2.5.29.15 keyUsage. */
const KEY_USAGE_OID = Buffer.from('551d0f', 'hex');

/** The DelegationUsage OID in dotted form, for messages and certificate tools. */
export const DELEGATION_USAGE = '1.3.6.1.4.1.44363.44';

/** What a delegation certificate tells a key holder. */
export interface DelegationCertificate {
  /** notBefore, ms since the epoch: a credential's valid_time counts from it. */
  notBefore: number;
  /** notAfter, ms since the epoch: no credential may outlive it. */
  notAfter: number;
  /** DER SubjectPublicKeyInfo: the key that signs credentials (the holder's). */
  spki: Buffer;
}

/** The answer of {@link checkDelegationCertificate}. */
export type DelegationCheck = ({ ok: true } & DelegationCertificate) | { ok: false; reason: string };

class DerError extends Error {}

interface Tlv {
  tag: number;
  /** Offset of the tag byte: `der.subarray(start, end)` is the whole element. */
  start: number;
  /** Offset of the content. */
  content: number;
  end: number;
}

/** Reads one DER element at `off`, which must end by `limit`. Short-form tags only (X.509 needs no others). */
function readTlv(der: Uint8Array, off: number, limit: number): Tlv {
  if (off + 2 > limit) throw new DerError('truncated element');
  const tag = der[off];
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte tag');
  let len = der[off + 1];
  let content = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    // DER: the long form only for lengths of 128 and more, in at most 4 bytes here.
    if (n === 0 || n > 4 || content + n > limit) throw new DerError('bad length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[content + i];
    if (len < 0x80 || der[content] === 0) throw new DerError('non-minimal length');
    content += n;
  }
  if (content + len > limit) throw new DerError('element overruns its container');
  return { tag, start: off, content, end: content + len };
}

/** The elements inside a constructed element, in order. */
function children(der: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let off = parent.content; off < parent.end; ) {
    const t = readTlv(der, off, parent.end);
    out.push(t);
    off = t.end;
  }
  return out;
}

function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (!t || t.tag !== tag) throw new DerError(`${what} missing`);
  return t;
}

/** UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), as RFC 5280 4.1.2.5 profiles them. */
function readTime(der: Uint8Array, t: Tlv): number {
  const s = Buffer.from(der.subarray(t.content, t.end)).toString('latin1');
  let m: RegExpExecArray | null;
  let year: number;
  if (t.tag === 0x17 && (m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s))) {
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else if (t.tag === 0x18 && (m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s))) {
    year = Number(m[1]);
  } else {
    throw new DerError('validity time is not a UTCTime or GeneralizedTime in Z form');
  }
  return Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
}

function sameBytes(der: Uint8Array, t: Tlv, want: Buffer): boolean {
  return t.end - t.content === want.length && Buffer.from(der.buffer, der.byteOffset + t.content, t.end - t.content).equals(want);
}

interface ParsedCertificate extends DelegationCertificate {
  extensions: Array<{ oid: Tlv; critical: boolean; value: Tlv }>;
}

function parseCertificate(der: Uint8Array): ParsedCertificate {
  const cert = readTlv(der, 0, der.length);
  if (cert.tag !== 0x30 || cert.end !== der.length) throw new DerError('not a single DER SEQUENCE');
  const tbs = expectTag(children(der, cert)[0], 0x30, 'tbsCertificate');
  const f = children(der, tbs);
  let i = 0;
  if (f[i]?.tag === 0xa0) i++; // [0] version
  i += 3; // serialNumber, signature, issuer
  const validity = children(der, expectTag(f[i++], 0x30, 'validity'));
  if (validity.length !== 2) throw new DerError('validity must hold notBefore and notAfter');
  i++; // subject
  const spki = expectTag(f[i++], 0x30, 'subjectPublicKeyInfo');
  const extensions: ParsedCertificate['extensions'] = [];
  for (; i < f.length; i++) {
    if (f[i].tag !== 0xa3) continue; // [1], [2] unique ids
    const list = expectTag(children(der, f[i])[0], 0x30, 'extensions');
    for (const ext of children(der, list)) {
      const parts = children(der, expectTag(ext, 0x30, 'extension'));
      const oid = expectTag(parts[0], 0x06, 'extension id');
      let critical = false;
      let v = 1;
      if (parts[1]?.tag === 0x01) {
        critical = parts[1].end - parts[1].content === 1 && der[parts[1].content] !== 0;
        v = 2;
      }
      extensions.push({ oid, critical, value: expectTag(parts[v], 0x04, 'extension value') });
    }
  }
  return {
    notBefore: readTime(der, validity[0]),
    notAfter: readTime(der, validity[1]),
    spki: Buffer.from(der.subarray(spki.start, spki.end)),
    extensions,
  };
}

/** Why a parsed certificate cannot delegate, or undefined when it can. */
function delegationProblem(der: Uint8Array, c: ParsedCertificate): string | undefined {
  const du = c.extensions.filter((e) => sameBytes(der, e.oid, DELEGATION_USAGE_OID));
  if (du.length === 0) return `the certificate has no DelegationUsage extension (${DELEGATION_USAGE}); issue one with it, e.g. keyward certs issue --delegation`;
  if (du.length > 1) return 'the certificate has the DelegationUsage extension twice';
  if (du[0].critical) return 'the DelegationUsage extension is marked critical (RFC 9345 requires it non-critical)';
  if (!sameBytes(der, du[0].value, Buffer.of(0x05, 0x00))) return "the DelegationUsage extension's value is not NULL";
  const ku = c.extensions.find((e) => sameBytes(der, e.oid, KEY_USAGE_OID));
  if (!ku) return 'the certificate has no keyUsage extension (delegation needs digitalSignature)';
  // KeyUsage ::= BIT STRING; digitalSignature is bit 0, the high bit of the first byte after the unused-bits count.
  let bits: Tlv;
  try {
    bits = readTlv(der, ku.value.content, ku.value.end);
  } catch {
    return 'the keyUsage extension is malformed';
  }
  if (bits.tag !== 0x03 || bits.end - bits.content < 2 || (der[bits.content + 1] & 0x80) === 0) {
    return "the certificate's keyUsage lacks digitalSignature (needed to sign delegated credentials)";
  }
  return undefined;
}

/**
 * Validity and public key of a DER certificate, and why it cannot delegate (`problem`,
 * absent when it can). Throws an Error naming what is malformed.
 */
export function readDelegationCertificate(der: Uint8Array): DelegationCertificate & { problem?: string } {
  let c: ParsedCertificate;
  try {
    c = parseCertificate(der);
  } catch (e) {
    throw new Error(`not a DER X.509 certificate (${(e as Error).message})`, { cause: e });
  }
  const problem = delegationProblem(der, c);
  return { notBefore: c.notBefore, notAfter: c.notAfter, spki: c.spki, ...(problem ? { problem } : {}) };
}

/**
 * Whether the end-entity certificate `der` permits delegated credentials (RFC 9345 4.2),
 * and if not, why, in one sentence naming the extension.
 */
export function checkDelegationCertificate(der: Uint8Array): DelegationCheck {
  let c: ReturnType<typeof readDelegationCertificate>;
  try {
    c = readDelegationCertificate(der);
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
  if (c.problem) return { ok: false, reason: c.problem };
  return { ok: true, notBefore: c.notBefore, notAfter: c.notAfter, spki: c.spki };
}
