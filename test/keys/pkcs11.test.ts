/**
 * pkcs11Key against SoftHSM2: keys generated inside a token (never exported) sign every
 * scheme they offer, decrypt TLS 1.2 premasters with implicit rejection, and every
 * failure to open one says what is wrong without showing the PIN.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { constants, publicEncrypt, randomBytes, generateKeyPairSync } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import pkcs11js from 'pkcs11js';
import { SignatureScheme, schemeInfo, schemeName, verifySignature } from '../../src/tls/crypto/signatureSchemes.js';
import { KeyOperationError, type OperationContext } from '../../src/keys/keyOperations.js';
import { keyIdOf } from '../../src/keys/keyId.js';
import { openPkcs11Key, type OpenPkcs11KeyOptions, type Pkcs11Key } from '../../src/keys/pkcs11Key.js';
import { acquirePkcs11Module, ckrName } from '../../src/keys/pkcs11Module.js';
import { Pkcs11UriError, formatPkcs11Uri } from '../../src/keys/pkcs11Uri.js';
import { createSoftHsmToken, type SoftHsmKey, type SoftHsmKeyKind, type SoftHsmToken } from '../support/softhsm.js';

const ctx13: OperationContext = { tlsVersion: 'TLSv1.3', purpose: 'tls13-server-certificate-verify', serverName: 'localhost' };
const ctx12: OperationContext = { tlsVersion: 'TLSv1.2', purpose: 'tls12-server-key-exchange' };
const live = () => new AbortController().signal;

/** RFC 8446 4.4.3: 64 spaces, the context string, a zero byte, the transcript hash. */
function certificateVerifyInput(hashLen = 32): Buffer {
  return Buffer.concat([Buffer.alloc(64, 0x20), Buffer.from('TLS 1.3, server CertificateVerify'), Buffer.from([0]), randomBytes(hashLen)]);
}

/** RFC 5246 7.4.3 / RFC 8422 5.4: client_random, server_random, ECDHE params (named curve x25519). */
function serverKeyExchangeInput(): Buffer {
  return Buffer.concat([randomBytes(64), Buffer.from([3, 0x00, 0x1d, 32]), randomBytes(32)]);
}

const kinds: SoftHsmKeyKind[] = ['ec-p256', 'ec-p384', 'rsa-2048', 'ed25519'];
const expectedSchemes: Record<SoftHsmKeyKind, SignatureScheme[]> = {
  'ec-p256': [SignatureScheme.ecdsa_secp256r1_sha256],
  'ec-p384': [SignatureScheme.ecdsa_secp384r1_sha384],
  ed25519: [SignatureScheme.ed25519],
  'rsa-2048': [
    SignatureScheme.rsa_pss_rsae_sha256,
    SignatureScheme.rsa_pss_rsae_sha384,
    SignatureScheme.rsa_pss_rsae_sha512,
    SignatureScheme.rsa_pkcs1_sha256,
    SignatureScheme.rsa_pkcs1_sha384,
    SignatureScheme.rsa_pkcs1_sha512,
  ],
};

let token: SoftHsmToken;
const keys = {} as Record<SoftHsmKeyKind, SoftHsmKey>;
let dupA: SoftHsmKey;

before(async () => {
  token = await createSoftHsmToken();
  for (const kind of kinds) keys[kind] = await token.generateKey(kind, `key-${kind}`);
  dupA = await token.generateKey('ec-p256', 'duplicate-label');
  await token.generateKey('ec-p256', 'duplicate-label');
});

after(() => token?.cleanup());

function open(kind: SoftHsmKeyKind, extra: Partial<OpenPkcs11KeyOptions> = {}): Promise<Pkcs11Key> {
  return openPkcs11Key({ uri: keys[kind].uri, module: token.module, pin: token.pin, ...extra });
}

async function signAndVerifyAll(key: Pkcs11Key, independentPublicKey: SoftHsmKey['publicKey']): Promise<void> {
  for (const scheme of key.schemes) {
    const tls13 = schemeInfo(scheme)!.tls13;
    const msg = tls13 ? certificateVerifyInput() : serverKeyExchangeInput();
    const sig = await key.sign(scheme, msg, tls13 ? ctx13 : ctx12, live());
    assert.ok(sig instanceof Uint8Array);
    assert.ok(verifySignature(independentPublicKey, scheme, msg, sig), `${schemeName(scheme)} verifies`);
    const tampered = Buffer.from(msg);
    tampered[tampered.length - 1]! ^= 1;
    assert.ok(!verifySignature(independentPublicKey, scheme, tampered, sig), `${schemeName(scheme)} does not verify a changed message`);
  }
}

test('P-256, P-384, RSA-2048 and Ed25519 keys made in the token sign every scheme they offer', async () => {
  for (const kind of kinds) {
    const key = await open(kind);
    try {
      assert.equal(key.keyId, keyIdOf(keys[kind].publicKey), `${kind}: key id from the token's public half`);
      assert.deepEqual([...key.schemes], expectedSchemes[kind], kind);
      await signAndVerifyAll(key, keys[kind].publicKey);
      // A scheme of another key type is refused before reaching the token.
      const foreign = kind === 'rsa-2048' ? SignatureScheme.ecdsa_secp256r1_sha256 : SignatureScheme.rsa_pss_rsae_sha256;
      await assert.rejects(key.sign(foreign, certificateVerifyInput(), ctx13, live()), (e: unknown) => e instanceof KeyOperationError && e.code === 'unsupported');
      assert.equal(key.decryptPremaster !== undefined, kind === 'rsa-2048', `${kind}: decryptPremaster only for RSA`);
      assert.equal(key.info.tokenLabel, token.label);
      assert.equal(key.info.objectLabel, `key-${kind}`);
      assert.equal(key.info.keyType, kind === 'rsa-2048' ? 'rsa' : kind === 'ed25519' ? 'eddsa' : 'ec');
    } finally {
      await key.close();
    }
  }
});

test('hashing here with the raw mechanisms (hashOnToken: false) gives valid signatures too', async () => {
  for (const kind of ['rsa-2048', 'ec-p384'] as const) {
    const key = await open(kind, { hashOnToken: false });
    try {
      assert.deepEqual([...key.schemes], expectedSchemes[kind]);
      await signAndVerifyAll(key, keys[kind].publicKey);
    } finally {
      await key.close();
    }
  }
});

test('the private keys are sensitive and not extractable: the token refuses to reveal them', async () => {
  const mod = acquirePkcs11Module(token.module);
  const lib = mod.lib;
  const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trimEnd() === token.label)!;
  const session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
  try {
    lib.C_Login(session, pkcs11js.CKU_USER, token.pin);
    for (const kind of kinds) {
      lib.C_FindObjectsInit(session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
        { type: pkcs11js.CKA_ID, value: Buffer.from(keys[kind].id) },
      ]);
      const found = lib.C_FindObjects(session, 2);
      lib.C_FindObjectsFinal(session);
      assert.equal(found.length, 1, kind);
      const obj = found[0]!;
      const bool = (t: number): number => lib.C_GetAttributeValue(session, obj, [{ type: t }])[0]!.value[0]!;
      assert.equal(bool(pkcs11js.CKA_SENSITIVE), 1, `${kind} CKA_SENSITIVE`);
      assert.equal(bool(pkcs11js.CKA_EXTRACTABLE), 0, `${kind} CKA_EXTRACTABLE`);
      assert.equal(bool(pkcs11js.CKA_ALWAYS_SENSITIVE), 1, `${kind} CKA_ALWAYS_SENSITIVE`);
      assert.equal(bool(pkcs11js.CKA_NEVER_EXTRACTABLE), 1, `${kind} CKA_NEVER_EXTRACTABLE`);
      const secret = kind === 'rsa-2048' ? [pkcs11js.CKA_PRIVATE_EXPONENT, pkcs11js.CKA_PRIME_1, pkcs11js.CKA_PRIME_2] : [pkcs11js.CKA_VALUE];
      for (const t of secret) {
        assert.throws(() => lib.C_GetAttributeValue(session, obj, [{ type: t }]), (e: unknown) => ckrName(e) === 'CKR_ATTRIBUTE_SENSITIVE', `${kind}: attribute 0x${t.toString(16)} must be refused`);
      }
    }
  } finally {
    lib.C_CloseSession(session);
    mod.release();
  }
  const key = await open('ec-p256');
  try {
    assert.equal(key.info.sensitive, true);
    assert.equal(key.info.extractable, false);
    assert.equal(key.info.neverExtractable, true);
  } finally {
    await key.close();
  }
});

test('decryptPremaster: the right premaster for a good ciphertext, a fresh random 48 bytes for every bad one, never an error', async () => {
  const key = await open('rsa-2048');
  try {
    const decrypt = key.decryptPremaster!;
    const pub = keys['rsa-2048'].publicKey;
    const enc = (plain: Buffer): Buffer => publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_PADDING }, plain);
    const raw = (block: Buffer): Buffer => publicEncrypt({ key: pub, padding: constants.RSA_NO_PADDING }, block);
    const premaster = Buffer.concat([Buffer.from([3, 3]), randomBytes(46)]);
    const good = enc(premaster);
    assert.deepEqual(Buffer.from(await decrypt(good, 0x0303, ctx12, live())), premaster);
    assert.deepEqual(Buffer.from(await decrypt(good, 0x0303, ctx12, live())), premaster, 'the same answer twice');

    const noSeparator = Buffer.alloc(256, 0xa5);
    noSeparator[0] = 0;
    noSeparator[1] = 2;
    const blockType1 = Buffer.concat([Buffer.from([0, 1]), Buffer.alloc(256 - 3 - 48, 0xff), Buffer.from([0]), premaster]);
    const tooBig = Buffer.alloc(256, 0xff);
    const bad: [string, Buffer, number][] = [
      ['wrong padding (no zero separator)', raw(noSeparator), 0x0303],
      ['wrong padding (block type 1)', raw(blockType1), 0x0303],
      ['premaster of 47 bytes', enc(premaster.subarray(0, 47)), 0x0303],
      ['premaster of 49 bytes', enc(Buffer.concat([premaster, Buffer.from([7])])), 0x0303],
      ['wrong version in the premaster', enc(Buffer.concat([Buffer.from([3, 1]), premaster.subarray(2)])), 0x0303],
      ['good ciphertext, other ClientHello version', good, 0x0302],
      ['ciphertext too short', good.subarray(0, 255), 0x0303],
      ['ciphertext too long', Buffer.concat([good, Buffer.from([0])]), 0x0303],
      ['empty ciphertext', Buffer.alloc(0), 0x0303],
      ['ciphertext not below the modulus', tooBig, 0x0303],
    ];
    for (const [name, ct, version] of bad) {
      const a = await decrypt(ct, version, ctx12, live());
      const b = await decrypt(ct, version, ctx12, live());
      assert.ok(a instanceof Uint8Array, name);
      assert.equal(a.length, 48, name);
      assert.equal(b.length, 48, name);
      assert.notDeepEqual(Buffer.from(a), premaster, name);
      assert.notDeepEqual(Buffer.from(a), Buffer.from(b), `${name}: random each time, not a function of the ciphertext`);
    }
    // The token still works after all those failures.
    assert.deepEqual(Buffer.from(await decrypt(good, 0x0303, ctx12, live())), premaster);
    await assert.rejects(decrypt(good, 0x10000, ctx12, live()), (e: unknown) => e instanceof KeyOperationError && e.code === 'bad-request');
  } finally {
    await key.close();
  }
});

test('PIN and module from every source: opts, pinFile, URI pin-value, pin-source (path and file: URI), module-path, module-name', async () => {
  const k = keys['ec-p256'];
  const pinFileUri = `file://${token.pinFile}`;
  const variants: OpenPkcs11KeyOptions[] = [
    { uri: k.uri, module: token.module, pin: token.pin },
    { uri: k.uri, module: token.module, pinFile: token.pinFile },
    { uri: `${k.uri}?pin-value=${encodeURIComponent(token.pin)}&module-path=${token.module}` },
    { uri: `${k.uri}?pin-source=${token.pinFile}`, module: token.module },
    { uri: `${k.uri}?pin-source=${pinFileUri}`, module: token.module },
    { uri: `${k.uri}?pin-source=file:${token.pinFile}`, module: token.module },
    { uri: `${k.uri}?module-name=softhsm2&pin-value=${encodeURIComponent(token.pin)}` },
    // The id alone, and the label alone, select the key too.
    { uri: formatPkcs11Uri({ token: token.label, id: k.id }), module: token.module, pin: token.pin },
    { uri: formatPkcs11Uri({ token: token.label, object: k.label }), module: token.module, pin: token.pin },
    // Explicit options win over the URI's PIN.
    { uri: `${k.uri}?pin-value=not-the-pin`, module: token.module, pin: token.pin },
  ];
  for (const opts of variants) {
    const key = await openPkcs11Key(opts);
    try {
      assert.equal(key.keyId, keyIdOf(k.publicKey));
      await signAndVerifyAll(key, k.publicKey);
    } finally {
      await key.close();
    }
  }
});

test('a public key given by the caller must match the token; without a token public half it is used', async () => {
  const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
  await assert.rejects(open('ec-p256', { publicKey: other }), (e: unknown) => e instanceof KeyOperationError && e.code === 'refused' && /does not match/.test(e.message));
  const key = await open('ec-p256', { publicKey: keys['ec-p256'].publicKey });
  await key.close();
});

test('failures to open say what is wrong and never show the PIN', async () => {
  const wrongPin = `wrong-${randomBytes(4).toString('hex')}`;
  const k = keys['rsa-2048'];
  const missingFile = join(tmpdir(), `keyward-no-such-pin-${randomBytes(4).toString('hex')}`);
  const emptyPinFile = join(tmpdir(), `keyward-empty-pin-${randomBytes(4).toString('hex')}`);
  writeFileSync(emptyPinFile, '\n');
  const cases: [string, OpenPkcs11KeyOptions, (e: unknown) => boolean][] = [
    ['wrong PIN', { uri: k.uri, module: token.module, pin: wrongPin }, (e) => e instanceof KeyOperationError && e.code === 'refused' && /incorrect PIN/.test(e.message)],
    ['wrong PIN in the URI', { uri: `${k.uri}?pin-value=${wrongPin}`, module: token.module }, (e) => e instanceof KeyOperationError && e.code === 'refused' && /incorrect PIN/.test(e.message)],
    ['no PIN', { uri: k.uri, module: token.module }, (e) => e instanceof KeyOperationError && e.code === 'unknown-key' && /no PIN was given/.test(e.message)],
    [
      'unknown object',
      { uri: formatPkcs11Uri({ token: token.label, object: 'no-such-key' }), module: token.module, pin: token.pin },
      (e) => e instanceof KeyOperationError && e.code === 'unknown-key' && /no private key matches object="no-such-key" on PKCS#11 token/.test(e.message),
    ],
    [
      'unknown id',
      { uri: formatPkcs11Uri({ token: token.label, id: Uint8Array.from([0xde, 0xad]) }), module: token.module, pin: token.pin },
      (e) => e instanceof KeyOperationError && e.code === 'unknown-key' && /id=%DE%AD/.test(e.message),
    ],
    [
      'unknown token',
      { uri: 'pkcs11:token=no-such-token;object=x', module: token.module, pin: token.pin },
      (e) => e instanceof KeyOperationError && e.code === 'unknown-key' && e.message.includes('no PKCS#11 token matches token="no-such-token"') && e.message.includes(`"${token.label}"`),
    ],
    [
      'two keys with one label',
      { uri: formatPkcs11Uri({ token: token.label, object: dupA.label }), module: token.module, pin: token.pin },
      (e) => e instanceof KeyOperationError && /several private keys match object="duplicate-label"/.test(e.message),
    ],
    ['malformed URI', { uri: 'pkcs11:token=a b', module: token.module, pin: token.pin }, (e) => e instanceof Pkcs11UriError],
    ['not a pkcs11 URI', { uri: '/etc/key.pem', module: token.module, pin: token.pin }, (e) => e instanceof Pkcs11UriError],
    ['URI naming a certificate', { uri: `pkcs11:token=${token.label};type=cert`, module: token.module, pin: token.pin }, (e) => e instanceof KeyOperationError && e.code === 'bad-request' && /type=cert/.test(e.message)],
    ['unknown vendor attribute', { uri: `${k.uri};x-color=red`, module: token.module, pin: token.pin }, (e) => e instanceof KeyOperationError && e.code === 'bad-request' && /x-color/.test(e.message)],
    ['missing module', { uri: k.uri, module: '/nonexistent/libpkcs11.so', pin: token.pin }, (e) => e instanceof Error && /PKCS#11 module not found: \/nonexistent/.test(e.message)],
    ['no module at all', { uri: k.uri, pin: token.pin }, (e) => e instanceof Error && /no PKCS#11 module given/.test(e.message)],
    ['unknown module-name', { uri: `${k.uri}?module-name=no-such-module`, pin: token.pin }, (e) => e instanceof Error && /module "no-such-module" not found/.test(e.message)],
    ['missing PIN file', { uri: k.uri, module: token.module, pinFile: missingFile }, (e) => e instanceof Error && /cannot read PIN file .*ENOENT/.test(e.message)],
    ['empty PIN file', { uri: k.uri, module: token.module, pinFile: emptyPinFile }, (e) => e instanceof Error && /is empty/.test(e.message)],
    ['pin and pinFile', { uri: k.uri, module: token.module, pin: token.pin, pinFile: token.pinFile }, (e) => e instanceof Error && /either pin or pinFile/.test(e.message)],
    ['pin-source command', { uri: `${k.uri}?pin-source=|/bin/echo%20x`, module: token.module }, (e) => e instanceof Error && /commands .* are not supported/.test(e.message)],
    ['bad sessions count', { uri: k.uri, module: token.module, pin: token.pin, sessions: 0 }, (e) => e instanceof RangeError],
  ];
  try {
    for (const [name, opts, check] of cases) {
      await assert.rejects(openPkcs11Key(opts), (e: unknown) => {
        assert.ok(check(e), `${name}: got ${String(e)}`);
        const text = `${String(e)}\n${(e as Error).stack ?? ''}\n${JSON.stringify(e)}`;
        for (const secret of [token.pin, token.soPin, wrongPin]) assert.ok(!text.includes(secret), `${name}: the error shows a PIN`);
        return true;
      });
    }
  } finally {
    rmSync(emptyPinFile, { force: true });
  }
  // After all those failures a good open still works (no session or module reference leaked).
  const key = await open('rsa-2048');
  await key.close();
});
