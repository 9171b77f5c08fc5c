import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Transcript, MESSAGE_HASH_TYPE } from '../../src/tls/crypto/transcript.js';
import type { HashName } from '../../src/tls/crypto/hash.js';

const ch1 = Buffer.concat([Buffer.of(1, 0, 0, 6), Buffer.from('hello1')]);
const hrr = Buffer.concat([Buffer.of(2, 0, 0, 3), Buffer.from('hrr')]);
const ch2 = Buffer.concat([Buffer.of(1, 0, 0, 6), Buffer.from('hello2')]);

test('current() hashes everything so far and the transcript continues', () => {
  const t = new Transcript('sha256');
  assert.equal(t.hash, 'sha256');
  assert.deepEqual(t.current(), createHash('sha256').digest());
  t.update(ch1);
  assert.deepEqual(t.current(), createHash('sha256').update(ch1).digest());
  assert.deepEqual(t.current(), createHash('sha256').update(ch1).digest()); // idempotent
  t.update(hrr);
  assert.deepEqual(t.current(), createHash('sha256').update(ch1).update(hrr).digest());
});

test('currentWith() and clone() leave the transcript untouched', () => {
  const t = new Transcript('sha384');
  t.update(ch1);
  assert.deepEqual(t.currentWith(hrr), createHash('sha384').update(ch1).update(hrr).digest());
  assert.deepEqual(t.current(), createHash('sha384').update(ch1).digest());
  const c = t.clone();
  c.update(ch2);
  assert.deepEqual(t.current(), createHash('sha384').update(ch1).digest());
  assert.deepEqual(c.current(), createHash('sha384').update(ch1).update(ch2).digest());
  assert.equal(c.hash, 'sha384');
});

test('RFC 8446 4.4.1: message_hash replaces ClientHello1 after a HelloRetryRequest', () => {
  for (const h of ['sha256', 'sha384'] as const) {
    const t = new Transcript(h);
    t.update(ch1);
    t.replaceWithMessageHash();
    t.update(hrr);
    t.update(ch2);
    const chHash = createHash(h).update(ch1).digest();
    const messageHash = Buffer.concat([Buffer.of(254, 0, 0, chHash.length), chHash]);
    assert.equal(MESSAGE_HASH_TYPE, 254);
    assert.deepEqual(t.current(), createHash(h).update(messageHash).update(hrr).update(ch2).digest());
  }
});

test('replaceWithMessageHash needs exactly one message, once', () => {
  const empty = new Transcript('sha256');
  assert.throws(() => empty.replaceWithMessageHash(), /exactly ClientHello1/);
  const two = new Transcript('sha256');
  two.update(ch1);
  two.update(hrr);
  assert.throws(() => two.replaceWithMessageHash(), /exactly ClientHello1/);
  const once = new Transcript('sha256');
  once.update(ch1);
  once.replaceWithMessageHash();
  assert.throws(() => once.replaceWithMessageHash(), /twice/);
});

test('unknown hash is refused', () => {
  assert.throws(() => new Transcript('md5' as HashName), TypeError);
});
