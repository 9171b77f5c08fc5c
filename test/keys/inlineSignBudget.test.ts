import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InlineSignBudget, inlineSignable } from '../../src/keys/inlineSignBudget.js';

test('inline signing is rationed: a 1 ms burst, then at most half of the time; a long one is paid back first', () => {
  let clock = 1000;
  const b = new InlineSignBudget(() => clock);
  /** An inline signature taking `ms`. */
  const sign = (ms: number): string =>
    b.run(() => {
      clock += ms;
      return 'sig';
    });
  assert.ok(b.allows(), 'a fresh holder may sign inline');
  assert.equal(sign(0.6), 'sig', 'run returns what the signature returns');
  assert.ok(b.allows(), 'within the burst');
  sign(0.6);
  assert.equal(b.allows(), false, 'the burst is spent');
  clock += 0.1;
  assert.equal(b.allows(), false);
  clock += 5;
  assert.ok(b.allows(), 'earned back while not signing, up to the burst');
  sign(0.5);
  sign(0.5);
  assert.equal(b.allows(), false, 'an idle spell earns no more than the burst');

  // Back-to-back requests each 0.3 ms apart: inline signatures take at most half the time.
  let inline = 0;
  const start = clock;
  for (let i = 0; i < 1000; i++) {
    clock += 0.3;
    if (b.allows()) {
      sign(0.3);
      inline += 0.3;
    }
  }
  assert.ok(inline / (clock - start) <= 0.5 + 1e-9, `inline share ${inline / (clock - start)}`);
  assert.ok(inline / (clock - start) > 0.3, 'and they do get their half');

  // A 6 ms signature (a big key on a slow machine) is paid back before the next.
  clock += 10;
  assert.ok(b.allows());
  sign(6);
  clock += 4;
  assert.equal(b.allows(), false, 'still paying back');
  clock += 2.5;
  assert.ok(b.allows(), 'paid back');
});

test('inline signing is never for RSA keys above 3072 bits', () => {
  assert.ok(inlineSignable(undefined), 'EC and EdDSA keys');
  assert.ok(inlineSignable(2048));
  assert.ok(inlineSignable(3072));
  assert.equal(inlineSignable(4096), false);
});
