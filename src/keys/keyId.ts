import { createHash, type KeyObject } from 'node:crypto';

/** Key id used across keyward: hex SHA-256 of the SubjectPublicKeyInfo DER. */
export function keyIdOf(publicKey: KeyObject): string {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('hex');
}
