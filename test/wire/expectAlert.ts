/** Assertions for the wire tests: a parser refuses with exactly the alert the RFC names. */
import assert from 'node:assert/strict';
import { AlertDescription, alertName } from '../../src/tls/wire/alerts.js';
import { TlsAlertError } from '../../src/tls/wire/errors.js';

/** Asserts `fn` throws a TlsAlertError carrying `alert` (and a message matching `message`). */
export function expectAlert(fn: () => unknown, alert: AlertDescription, message?: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof TlsAlertError, `expected ${alertName(alert)}, got ${caught === undefined ? 'no error' : String(caught)}`);
  assert.equal(alertName(caught.alert), alertName(alert), caught.message);
  if (message) assert.match(caught.message, message);
}

export const decodeErr = (fn: () => unknown, message?: RegExp): void => expectAlert(fn, AlertDescription.decode_error, message);
export const illegal = (fn: () => unknown, message?: RegExp): void => expectAlert(fn, AlertDescription.illegal_parameter, message);

/** Every strict prefix of `body` fails to parse with decode_error (a truncated message). */
export function everyPrefixIsDecodeError(body: Uint8Array, parse: (b: Uint8Array) => unknown): void {
  for (let n = 0; n < body.length; n++) decodeErr(() => parse(body.subarray(0, n)));
}

/** `body` followed by one stray byte is decode_error (RFC 8446 4: trailing bytes). */
export function trailingByteIsDecodeError(body: Uint8Array, parse: (b: Uint8Array) => unknown): void {
  decodeErr(() => parse(Buffer.concat([body, Buffer.of(0)])), /trailing/);
}

export function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}
