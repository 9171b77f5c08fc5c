/**
 * The front configuration files: a JSON parser that knows each field's line, validation
 * that names file, line and field for every problem at once, relative paths resolved
 * against the file, and flags merged over the file.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JsonSyntaxError, parseJsonWithLines } from '../../src/cli/jsonLines.js';
import { mergeSettings, RoleConfigError, validateRoleConfig, type ProxySettings } from '../../src/cli/roleConfig.js';

test('parseJsonWithLines: values as JSON.parse gives them, each path with its line', () => {
  const text = '{\n  "a": 1,\n  "b": {\n    "c": [true,\n      "x"]\n  },\n  "d": null\n}';
  const r = parseJsonWithLines(text);
  assert.deepEqual(r.value, JSON.parse(text));
  assert.equal(r.lineOf('a'), 2);
  assert.equal(r.lineOf('b'), 3);
  assert.equal(r.lineOf('b.c'), 4);
  assert.equal(r.lineOf('b.c[1]'), 5);
  assert.equal(r.lineOf('d'), 7);
  for (const [bad, where] of [
    ['{"a": 1,}', /line 1, column 9: expected """, found "}"/],
    ['{"a": 1, "a": 2}', /"a" appears twice/],
    ['{\n"a": "x\ny"}', /line 2, column 8: control character in string/],
    ['[1 2]', /expected "]", found "2"/],
    ['{"a": 1} x', /after the end of the document/],
    ['[' .repeat(100), /nested deeper than 64 levels/],
    ['', /the file ended where a value was expected/],
  ] as const) {
    assert.throws(() => parseJsonWithLines(bad), (e: unknown) => e instanceof JsonSyntaxError && where.test(e.message), bad);
  }
  // "__proto__" is an ordinary field, not a prototype.
  const proto = parseJsonWithLines('{"__proto__": {"polluted": true}}').value as Record<string, unknown>;
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.deepEqual(Object.keys(proto), ['__proto__']);
});

test('validateRoleConfig: every problem with its field and line; paths resolved against the folder', () => {
  const text = '{\n  "upstream": "127.0.0.1:0",\n  "routes": { "bad name!": "127.0.0.1:1", "ok.example": "unix:app.sock" },\n  "certificates": [ { "key": "k.pem" } ],\n  "keyd": { "addresses": [] },\n  "tls": { "minVersion": "TLSv1.1" }\n}';
  const p = parseJsonWithLines(text);
  let err: RoleConfigError | undefined;
  try {
    validateRoleConfig('proxy', p.value, 'front.json', '/etc/keyward', p.lineOf);
  } catch (e) {
    err = e as RoleConfigError;
  }
  assert.ok(err instanceof RoleConfigError);
  const lines = err.message.split('\n');
  assert.ok(lines.includes('front.json:2: upstream: port 0 is out of range (1-65535)'), err.message);
  assert.ok(lines.some((l) => l.startsWith('front.json:3: routes.bad name!: expected a server name')), err.message);
  assert.ok(lines.includes('front.json:4: certificates[0].cert: required: the certificate chain file'), err.message);
  assert.ok(lines.includes('front.json:5: keyd.addresses: expected at least one entry'), err.message);
  assert.ok(lines.some((l) => l.startsWith('front.json:6: tls.minVersion: expected one of "TLSv1.2", "TLSv1.3", got "TLSv1.1"')), err.message);
  const ok = validateRoleConfig('proxy', { upstream: 'unix:app.sock', certificates: [{ cert: 'site.pem', key: '/abs/key.pem' }] }, 'f', '/etc/keyward') as ProxySettings;
  assert.equal(ok.upstream, 'unix:/etc/keyward/app.sock');
  assert.deepEqual(ok.certificates, [{ cert: '/etc/keyward/site.pem', key: '/abs/key.pem' }]);
  assert.throws(() => validateRoleConfig('serve', { limits: { idleTimeoutMs: 5 } }, 'serve.json', '/'), /serve\.json: limits\.idleTimeoutMs: unknown field \(known here: handshakeTimeoutMs, maxConnections, maxConnectionsPerSource\)/);
  assert.deepEqual(validateRoleConfig('serve', { clientAuth: { ca: 'ca.pem' } }, 'serve.json', '/etc/keyward').clientAuth, { ca: '/etc/keyward/ca.pem' });
});

test('mergeSettings: flags replace fields, groups merge field by field', () => {
  const file: ProxySettings = { listen: '0.0.0.0:443', upstream: 'a:1', limits: { maxConnections: 5, idleTimeoutMs: 9 }, certificates: [{ cert: 'a.pem' }, { cert: 'b.pem' }] };
  const flags: ProxySettings = { listen: '127.0.0.1:0', limits: { maxConnections: 7, idleTimeoutMs: undefined }, certificates: [{ cert: 'c.pem' }] };
  assert.deepEqual(mergeSettings(file, flags), { listen: '127.0.0.1:0', upstream: 'a:1', limits: { maxConnections: 7, idleTimeoutMs: 9 }, certificates: [{ cert: 'c.pem' }] });
});
