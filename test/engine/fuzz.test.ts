import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TlsServerConnection } from '../../src/tls/engine/serverConnection.js';
import { TlsAlertError } from '../../src/tls/wire/errors.js';
import { parseClientHello } from '../../src/tls/wire/clientHello.js';
import { clientHelloBody, clientHelloRecord, defaultExtensions, ext } from '../support/clientHelloBuilder.js';
import { feed, harness } from '../support/engineHarness.js';
import { MiniClient } from '../support/miniClient.js';
import { prng } from '../support/prng.js';

function mutate(input: Uint8Array, rnd: (n: number) => number): Buffer {
  const b = Buffer.from(input);
  switch (rnd(6)) {
    case 0: // flip bits
      for (let i = rnd(4) + 1; i > 0; i--) b[rnd(b.length)] ^= 1 << rnd(8);
      return b;
    case 1: // truncate
      return b.subarray(0, rnd(b.length));
    case 2: // overwrite a length-looking pair with an extreme
      {
        const at = rnd(b.length - 1);
        b.writeUInt16BE([0, 0xffff, b.length, 1][rnd(4)], at);
      }
      return b;
    case 3: // insert random bytes
      {
        const at = rnd(b.length);
        const ins = Buffer.from(Array.from({ length: rnd(8) + 1 }, () => rnd(256)));
        return Buffer.concat([b.subarray(0, at), ins, b.subarray(at)]);
      }
    case 4: // duplicate a slice
      {
        const at = rnd(b.length);
        const len = rnd(32);
        return Buffer.concat([b.subarray(0, at), b.subarray(at, at + len), b.subarray(at)]);
      }
    default: // set a byte
      b[rnd(b.length)] = rnd(256);
      return b;
  }
}

test('parser: 20000 mutated ClientHello bodies never throw anything but TlsAlertError', () => {
  const rnd = prng(0x5eed);
  const base = clientHelloBody({ extensions: [...defaultExtensions(), ext.alpn(['h2', 'http/1.1']), ext.recordSizeLimit(16385)] });
  let ok = 0;
  let rejected = 0;
  for (let i = 0; i < 20000; i++) {
    const m = mutate(base, rnd);
    try {
      parseClientHello(m);
      ok++;
    } catch (err) {
      assert.ok(err instanceof TlsAlertError, `iteration ${i}: ${(err as Error).stack}`);
      rejected++;
    }
  }
  assert.ok(ok > 0 && rejected > 0, `both outcomes occur (ok ${ok}, rejected ${rejected})`);
});

test('engine: 3000 mutated ClientHello records end in an alert or a server flight, never a throw or a hang', async () => {
  const h = await harness();
  const rnd = prng(0xc0ffee);
  const outcomes = { alert: 0, flight: 0, waiting: 0 };
  for (let i = 0; i < 3000; i++) {
    const input = mutate(clientHelloRecord(), rnd);
    const conn = new TlsServerConnection(h.config);
    // Split at a random point too: fragmentation must not change the outcome class.
    const cut = rnd(input.length + 1);
    const step = feed(conn, [input.subarray(0, cut), input.subarray(cut)], h.privateKey);
    if (step.events.some((e) => e.type === 'error')) {
      outcomes.alert++;
      assert.ok(conn.isClosed);
    } else if (step.out.length > 0) outcomes.flight++;
    else outcomes.waiting++;
  }
  assert.ok(outcomes.alert > 1000, JSON.stringify(outcomes));
});

test('engine: 2000 mutated protected records after the handshake never throw', async () => {
  const h = await harness();
  const rnd = prng(0xbeef);
  let alerts = 0;
  for (let i = 0; i < 2000; i++) {
    const conn = new TlsServerConnection(h.config);
    const c = new MiniClient();
    c.receive(feed(conn, c.clientHelloRecord(), h.privateKey).out);
    feed(conn, c.finishedRecord(), h.privateKey);
    const kinds = [
      () => c.protect(23, Buffer.from('data')),
      () => c.protect(22, Buffer.from([24, 0, 0, 1, rnd(3)])),
      () => c.protect(21, Buffer.from([rnd(3), rnd(256)])),
      () => c.protect(rnd(256), Buffer.alloc(rnd(40))),
    ];
    const rec = kinds[rnd(kinds.length)]();
    const input = rnd(2) === 0 ? mutate(rec, rnd) : Buffer.from(rec);
    const step = feed(conn, input, h.privateKey);
    if (step.events.some((e) => e.type === 'error')) alerts++;
  }
  assert.ok(alerts > 0);
});
