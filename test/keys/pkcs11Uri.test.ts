import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_PKCS11_URI_LENGTH, Pkcs11UriError, formatPkcs11Id, formatPkcs11Uri, parsePkcs11Uri, redactPkcs11Uri } from '../../src/keys/pkcs11Uri.js';

test('RFC 7512 section 3 examples parse', () => {
  assert.deepEqual(parsePkcs11Uri('pkcs11:'), { vendor: {} });
  assert.deepEqual(parsePkcs11Uri('pkcs11:object=my-pubkey;type=public'), { object: 'my-pubkey', type: 'public', vendor: {} });
  assert.deepEqual(parsePkcs11Uri('pkcs11:object=my-key;type=private?pin-source=file:/etc/token'), {
    object: 'my-key',
    type: 'private',
    pinSource: 'file:/etc/token',
    vendor: {},
  });
  const full = parsePkcs11Uri(
    'pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial=?pin-source=file:/etc/token_pin',
  );
  assert.equal(full.token, 'The Software PKCS#11 Softtoken');
  assert.equal(full.manufacturer, 'Snake Oil, Inc.');
  assert.equal(full.model, '1.0');
  assert.equal(full.object, 'my-certificate');
  assert.equal(full.type, 'cert');
  assert.deepEqual(full.id, Uint8Array.from([0x69, 0x95, 0x3e, 0x5c, 0xf4, 0xbd, 0xec, 0x91]));
  assert.equal(full.serial, '');
  assert.equal(full.pinSource, 'file:/etc/token_pin');

  assert.equal(parsePkcs11Uri('pkcs11:object=my-sign-key;type=private?module-name=mypkcs11').moduleName, 'mypkcs11');
  assert.equal(parsePkcs11Uri('pkcs11:object=my-sign-key;type=private?module-path=/mnt/libmypkcs11.so.1').modulePath, '/mnt/libmypkcs11.so.1');
  assert.equal(parsePkcs11Uri('pkcs11:token=Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc.?pin-value=the-pin').pinValue, 'the-pin');
  assert.equal(parsePkcs11Uri('pkcs11:slot-description=Sun%20Metaslot').slotDescription, 'Sun Metaslot');
  const lib = parsePkcs11Uri('pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;library-description=Soft%20Token%20Library;library-version=1.23');
  assert.equal(lib.libraryManufacturer, 'Snake Oil, Inc.');
  assert.equal(lib.libraryDescription, 'Soft Token Library');
  assert.deepEqual(lib.libraryVersion, { major: 1, minor: 23 });
  assert.equal(parsePkcs11Uri('pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=cert').token, 'A name with a substring %;');
  assert.equal(parsePkcs11Uri('pkcs11:object=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;type=cert').object, 'Name with a small A with acute: á');
  // The RFC puts that name in `token`, where it is 34 bytes: no token label (32 bytes at
  // most) can match it, so keyward refuses it rather than search for what cannot exist.
  assert.throws(
    () => parsePkcs11Uri('pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;object=my-certificate;type=cert'),
    /"token" is 34 bytes long; at most 32 allowed/,
  );
  const vendor = parsePkcs11Uri('pkcs11:token=my-token;object=my-certificate;type=cert;vendor-aaa=value-a?pin-source=file:/etc/token_pin&vendor-bbb=value-b');
  assert.deepEqual(vendor.vendor, { 'vendor-aaa': 'value-a', 'vendor-bbb': 'value-b' });
});

test('slot-id, library-version without minor, literal reserved characters, scheme case', () => {
  const u = parsePkcs11Uri('PKCS11:slot-id=1337;slot-manufacturer=ACME;library-version=3;object=a:b@c!$()*+,=&d');
  assert.equal(u.slotId, 1337);
  assert.equal(u.slotManufacturer, 'ACME');
  assert.deepEqual(u.libraryVersion, { major: 3, minor: 0 });
  assert.equal(u.object, 'a:b@c!$()*+,=&d');
  // "/", "?" and "|" may appear unencoded in the query.
  assert.equal(parsePkcs11Uri('pkcs11:?module-path=/usr/lib/a?b|c').modulePath, '/usr/lib/a?b|c');
  assert.equal(parsePkcs11Uri('pkcs11:type=').type, undefined);
});

test('pin-value is kept but not enumerable, so logging a parsed URI does not show it', () => {
  const u = parsePkcs11Uri('pkcs11:token=t?pin-value=s3cr%65t');
  assert.equal(u.pinValue, 's3cret');
  assert.ok(!Object.keys(u).includes('pinValue'));
  assert.ok(!JSON.stringify(u).includes('s3cret'));
});

test('bad URIs fail with clear messages that never repeat values', () => {
  const bad: [string, RegExp][] = [
    ['http://x', /must start with "pkcs11:"/],
    ['pkcs11:token', /expected NAME=VALUE at offset 7/],
    ['pkcs11:=x', /expected NAME=VALUE/],
    ['pkcs11:tok en=x', /bad attribute name/],
    ['pkcs11:token=a b', /character U\+0020 at offset 14 in attribute "token" must be percent-encoded/],
    ['pkcs11:token=a/b', /character '\/' .* must be percent-encoded/],
    ['pkcs11:token=%4', /bad percent-encoding in attribute "token"/],
    ['pkcs11:token=%zz', /bad percent-encoding/],
    ['pkcs11:token=a;token=b', /"token" appears more than once/],
    ['pkcs11:token=' + 'a'.repeat(33), /"token" is 33 bytes long; at most 32/],
    ['pkcs11:serial=' + '1'.repeat(17), /"serial" is 17 bytes long; at most 16/],
    ['pkcs11:model=' + 'm'.repeat(17), /"model" is 17 bytes/],
    ['pkcs11:token=%FF%FE', /"token" is not valid UTF-8/],
    ['pkcs11:type=secret', /"type" must be one of public, private, cert, secret-key, data/],
    ['pkcs11:slot-id=-1', /"slot-id" must be a decimal number/],
    ['pkcs11:slot-id=99999999999999999', /"slot-id" must be a decimal number|out of range/],
    ['pkcs11:library-version=1.2.3', /"library-version" must be MAJOR or MAJOR.MINOR/],
    ['pkcs11:library-version=256', /0..255/],
    ['pkcs11:pin-value=1234', /"pin-value" belongs in the query part/],
    ['pkcs11:?token=x', /"token" belongs in the path part/],
    ['pkcs11:?pin-value=1234&pin-source=/f', /"pin-value" and "pin-source" must not both be present/],
    ['pkcs11:?module-name=a%2Fb', /bare module name/],
    // Not even the offending character of a PIN is shown.
    ['pkcs11:?pin-value=a;b', /: a character at offset \d+ in attribute "pin-value" must be percent-encoded$/],
    ['pkcs11:token=x#frag', /fragments/],
    ['pkcs11:token=x;', /expected NAME=VALUE/],
    ['pkcs11:id=' + '%00'.repeat(1025), /"id" is 1025 bytes long/],
    ['pkcs11:' + 'x'.repeat(MAX_PKCS11_URI_LENGTH), /longer than/],
  ];
  for (const [uri, re] of bad) {
    assert.throws(() => parsePkcs11Uri(uri), (err: unknown) => {
      assert.ok(err instanceof Pkcs11UriError, `${uri}: ${String(err)}`);
      assert.match(err.message, /^invalid pkcs11 URI: /);
      assert.match(err.message, re, uri);
      return true;
    });
  }
  // A malformed PIN never shows up in the message.
  assert.throws(() => parsePkcs11Uri('pkcs11:?pin-value=hunter2%G1'), (err: Error) => !err.message.includes('hunter2'));
  assert.throws(() => parsePkcs11Uri('pkcs11:?pin-value=' + 'p'.repeat(300)), (err: Error) => /longer than 256/.test(err.message) && !err.message.includes('ppp'));
});

test('format percent-encodes and round-trips through parse', () => {
  const id = Uint8Array.from([0, 1, 0x7f, 0x80, 0xff, 0x3b]);
  const uri = formatPkcs11Uri({ token: 'My Token; #1 %', object: 'k=1&2/ä', id, type: 'private', slotId: 5, pinValue: 'p&w;d', modulePath: '/usr/lib/x.so' }, true);
  assert.match(uri, /^pkcs11:token=My%20Token%3B%20%231%20%25;slot-id=5;object=k%3D1%262%2F%C3%A4;id=%00%01%7F%80%FF%3B;type=private\?pin-value=p%26w%3Bd&module-path=\/usr\/lib\/x.so$/);
  const back = parsePkcs11Uri(uri);
  assert.equal(back.token, 'My Token; #1 %');
  assert.equal(back.object, 'k=1&2/ä');
  assert.deepEqual(back.id, id);
  assert.equal(back.slotId, 5);
  assert.equal(back.pinValue, 'p&w;d');
  assert.equal(back.modulePath, '/usr/lib/x.so');
  // Without includePin, the PIN is left out.
  assert.ok(!formatPkcs11Uri({ token: 't', pinValue: 'secret' }).includes('secret'));
  assert.equal(formatPkcs11Id(Uint8Array.from([0xab, 0x01])), '%AB%01');
});

test('redact hides pin-value in any position, even in text that does not parse', () => {
  assert.equal(redactPkcs11Uri('pkcs11:token=t?pin-value=1234&module-name=m'), 'pkcs11:token=t?pin-value=REDACTED&module-name=m');
  assert.equal(redactPkcs11Uri('pkcs11:token=t?module-name=m&pin-value=12%2034'), 'pkcs11:token=t?module-name=m&pin-value=REDACTED');
  assert.equal(redactPkcs11Uri('pkcs11:pin-value=1234;token=t'), 'pkcs11:pin-value=REDACTED');
  assert.equal(redactPkcs11Uri('pkcs11:token=t'), 'pkcs11:token=t');
});
