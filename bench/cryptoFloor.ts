/**
 * The floor under keyward's server handshake: the node:crypto calls one TLS 1.3 server
 * handshake makes (ECDSA P-256 certificate, x25519, AES-128-GCM, two tickets), made alone
 * in a loop, with nothing of keyward around them. Counted on the engine itself (every
 * node:crypto function and Hash/Hmac/Cipher method the server calls during
 * bench/engineLoop.ts): one x25519 key pair (its public half as a JWK) and agreement with
 * the peer's share imported from a JWK, one P-256 signature, 23 HMACs (the HKDF steps of
 * RFC 8446 7.1 and the two Finished), a transcript hash of 7 messages read 5 times, 4
 * record keys, 4 sealed records or tickets (the server's flight, two tickets, the record
 * carrying them) and 1 opened record (the client's Finished). `resumed`: a psk_dhe_ke
 * resumption (27 HMACs, one ticket opened and one sealed, no signature).
 *
 * Whatever keyward does costs at least this much per handshake in CPU on this Node, before
 * any of its own JavaScript, its records, its streams or the kernel; node:tls makes the
 * same computations inside OpenSSL without a call per step. Printed beside bench/engineLoop.ts's
 * figure it says how much of the engine's cost is the calls themselves.
 *
 *   node dist/bench/cryptoFloor.js [tls13|resumed|all] [handshakes-per-round] [rounds]
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPublicKey,
  createSecretKey,
  diffieHellman,
  generateKeyPairSync,
  randomBytes,
  sign,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';

const which = process.argv[2] ?? 'all';
const perRound = Number(process.argv[3] ?? 4000);
const rounds = Number(process.argv[4] ?? 7);

/** What a TLS 1.3 handshake's messages weigh, in bytes: ClientHello, ServerHello, EncryptedExtensions, Certificate, CertificateVerify, the two Finished. */
const MESSAGES = [250, 90, 20, 600, 80, 36, 36].map((n) => randomBytes(n));
const HMAC_INPUT = randomBytes(50);
const SIGN_INPUT = randomBytes(130);
const FLIGHT = randomBytes(800);
const TICKET_STATE = randomBytes(150);
const NST_RECORD = randomBytes(400);
const AAD = randomBytes(5);
const IV = randomBytes(12);
/** A tag that does not verify: `final` is left out, its check costs next to nothing. */
const TAG = randomBytes(16);
const { privateKey: certificateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const peerShare = (generateKeyPairSync('x25519', { publicKeyEncoding: { format: 'jwk' } } as never) as unknown as { publicKey: { x: string } }).publicKey.x;
const ticketKey = createSecretKey(randomBytes(32));

function seal(cipher: 'aes-128-gcm' | 'aes-256-gcm', key: KeyObject, plaintext: Uint8Array): void {
  const c = createCipheriv(cipher, key, IV, { authTagLength: 16 });
  c.setAAD(AAD);
  c.update(plaintext);
  c.final();
  c.getAuthTag();
}

function hmacs(n: number, key: Buffer): Buffer {
  let k = key;
  for (let i = 0; i < n; i++) k = createHmac('sha256', k).update(HMAC_INPUT).digest();
  return k;
}

function x25519(): void {
  const kp = generateKeyPairSync('x25519', { publicKeyEncoding: { format: 'jwk' } } as never) as unknown as { privateKey: KeyObject; publicKey: { x: string } };
  Buffer.from(kp.publicKey.x, 'base64url');
  const peer = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: peerShare }, format: 'jwk' });
  diffieHellman({ privateKey: kp.privateKey, publicKey: peer });
}

function transcript(): void {
  const h = createHash('sha256');
  for (let i = 0; i < MESSAGES.length; i++) {
    h.update(MESSAGES[i]);
    if (i >= 2) h.copy().digest();
  }
}

function handshake(resumed: boolean): void {
  x25519();
  transcript();
  const secret = hmacs(resumed ? 27 : 23, TAG);
  const keys = [0, 1, 2, 3].map(() => createSecretKey(secret.subarray(0, 16)));
  if (!resumed) sign('sha256', SIGN_INPUT, certificateKey);
  seal('aes-128-gcm', keys[0], FLIGHT);
  if (resumed) {
    // The ticket the client offered.
    const d = createDecipheriv('aes-256-gcm', ticketKey, IV, { authTagLength: 16 });
    d.setAAD(AAD);
    d.setAuthTag(TAG);
    d.update(TICKET_STATE);
  }
  for (let t = 0; t < (resumed ? 1 : 2); t++) seal('aes-256-gcm', ticketKey, TICKET_STATE);
  seal('aes-128-gcm', keys[2], NST_RECORD);
  const d = createDecipheriv('aes-128-gcm', keys[1], IV, { authTagLength: 16 });
  d.setAAD(AAD);
  d.setAuthTag(TAG);
  d.update(MESSAGES[6]);
  timingSafeEqual(secret, secret);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

for (const row of which === 'all' ? ['tls13', 'resumed'] : which.split(',')) {
  if (row !== 'tls13' && row !== 'resumed') throw new Error(`unknown row ${row} (tls13 resumed)`);
  const results: number[] = [];
  // Round 0 warms V8 up and is not counted.
  for (let r = 0; r <= rounds; r++) {
    const t0 = process.cpuUsage();
    for (let i = 0; i < perRound; i++) handshake(row === 'resumed');
    const t = process.cpuUsage(t0);
    if (r > 0) results.push((t.user + t.system) / perRound);
  }
  const sorted = [...results].sort((a, b) => a - b);
  console.log(`${row.padEnd(8)} ${median(results).toFixed(1).padStart(7)} µs of node:crypto calls per server handshake (rounds ${sorted[0].toFixed(1)}–${sorted[sorted.length - 1].toFixed(1)}, ${rounds} x ${perRound})`);
}
