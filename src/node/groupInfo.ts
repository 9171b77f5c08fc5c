/** node:tls's names and sizes for key-exchange groups (what `getEphemeralKeyInfo()` reports). */
const GROUPS: Record<number, { name: string; size: number; type?: string }> = {
  0x0017: { name: 'prime256v1', size: 256 },
  0x0018: { name: 'secp384r1', size: 384 },
  0x0019: { name: 'secp521r1', size: 521 },
  0x001d: { name: 'X25519', size: 253 },
  0x001e: { name: 'X448', size: 448 },
  // node:tls reports a finite-field group as type 'DH' with its size (and no name; ours keeps the RFC 7919 one).
  0x0100: { name: 'ffdhe2048', size: 2048, type: 'DH' },
  0x0101: { name: 'ffdhe3072', size: 3072, type: 'DH' },
  0x0102: { name: 'ffdhe4096', size: 4096, type: 'DH' },
  // Node 24 (OpenSSL 3.5) reports the hybrid as a 'TLSGroup' without a size.
  0x11ec: { name: 'X25519MLKEM768', size: 0, type: 'TLSGroup' },
};

/** `{ type: 'ECDH', name, size }` for a TLS NamedGroup code point; unknown codes keep their number. */
export function ephemeralKeyInfo(group: number): { type: string; name: string; size: number } {
  const g = GROUPS[group];
  return { type: g?.type ?? 'ECDH', name: g?.name ?? `group_0x${group.toString(16).padStart(4, '0')}`, size: g?.size ?? 0 };
}
