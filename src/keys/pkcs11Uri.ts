/**
 * RFC 7512 `pkcs11:` URIs: parse, format and redact.
 *
 * The parser is strict about the grammar (attribute names, allowed characters,
 * percent-encoding, duplicates) and about the sizes the PKCS#11 structures impose
 * (a token label is at most 32 bytes, a serial 16, ...), so a typo fails with a message
 * that names the attribute instead of silently matching nothing. Error messages never
 * repeat attribute values: a `pin-value` must not end up in a log through an error.
 */

/** Object classes a URI can name (RFC 7512 `type`). */
export type Pkcs11ObjectType = 'public' | 'private' | 'cert' | 'secret-key' | 'data';

/** A parsed `pkcs11:` URI. Absent attributes are `undefined` and match anything. */
export interface Pkcs11Uri {
  /** CK_TOKEN_INFO.label */
  token?: string;
  /** CK_TOKEN_INFO.manufacturerID */
  manufacturer?: string;
  /** CK_TOKEN_INFO.serialNumber */
  serial?: string;
  /** CK_TOKEN_INFO.model */
  model?: string;
  /** CK_INFO.manufacturerID */
  libraryManufacturer?: string;
  /** CK_INFO.libraryDescription */
  libraryDescription?: string;
  /** CK_INFO.libraryVersion; `minor` is 0 when the URI gives only the major number. */
  libraryVersion?: { major: number; minor: number };
  /** CK_SLOT_INFO.slotDescription */
  slotDescription?: string;
  /** CK_SLOT_INFO.manufacturerID */
  slotManufacturer?: string;
  /** CK_SLOT_ID, decimal in the URI. */
  slotId?: number;
  /** CKA_LABEL of the object. */
  object?: string;
  /** CKA_ID of the object, as bytes. */
  id?: Uint8Array;
  /** Object class. */
  type?: Pkcs11ObjectType;
  /**
   * The PIN from `pin-value`. Non-enumerable on parsed results, so that logging or
   * JSON-serialising a parsed URI does not print it.
   */
  pinValue?: string;
  /** `pin-source`: where to read the PIN (a file path or `file:` URI). */
  pinSource?: string;
  /** `module-name`: a PKCS#11 module name, without directory or suffix. */
  moduleName?: string;
  /** `module-path`: the module file, or a directory to look for `module-name` in. */
  modulePath?: string;
  /**
   * Vendor-specific attributes (any other name made of letters, digits, "-" and "_"),
   * path and query together, decoded as UTF-8. A consumer that does not understand one
   * should refuse the URI rather than ignore a constraint (openPkcs11Key does).
   */
  vendor: Record<string, string>;
}

/** A `pkcs11:` URI that does not parse. The message names the problem, never a value. */
export class Pkcs11UriError extends Error {
  constructor(message: string) {
    super(`invalid pkcs11 URI: ${message}`);
    this.name = 'Pkcs11UriError';
  }
}

/** Longest URI accepted: a bound for the parser, far above any real URI. */
export const MAX_PKCS11_URI_LENGTH = 16 * 1024;

type TextAttr = 'token' | 'manufacturer' | 'serial' | 'model' | 'libraryManufacturer' | 'libraryDescription' | 'slotDescription' | 'slotManufacturer' | 'object';

/** Text path attributes: URI name → field and the byte size of the PKCS#11 field holding it. */
const textPathAttrs: Record<string, { field: TextAttr; maxBytes: number }> = {
  token: { field: 'token', maxBytes: 32 },
  manufacturer: { field: 'manufacturer', maxBytes: 32 },
  serial: { field: 'serial', maxBytes: 16 },
  model: { field: 'model', maxBytes: 16 },
  'library-manufacturer': { field: 'libraryManufacturer', maxBytes: 32 },
  'library-description': { field: 'libraryDescription', maxBytes: 32 },
  'slot-description': { field: 'slotDescription', maxBytes: 64 },
  'slot-manufacturer': { field: 'slotManufacturer', maxBytes: 32 },
  // CKA_LABEL has no fixed size; the bound only keeps the parser's work small.
  object: { field: 'object', maxBytes: 1024 },
};

const MAX_ID_BYTES = 1024;
const MAX_PIN_BYTES = 256;
const MAX_PATH_BYTES = 4096;
const objectTypes: readonly Pkcs11ObjectType[] = ['public', 'private', 'cert', 'secret-key', 'data'];

// RFC 7512 section 2.3 character classes.
const UNRESERVED = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~';
const RES_AVAIL = ":[]@!$'()*+,=";
const PATH_CHARS = new Set(UNRESERVED + RES_AVAIL + '&');
const QUERY_CHARS = new Set(UNRESERVED + RES_AVAIL + '/?|');
/** pk11-v-attr-nm-char: standard names fit it too. */
const NAME_RE = /^[A-Za-z0-9_-]+$/;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes one attribute value: literal characters from `allowed` and `%XX` escapes.
 * `where` is the offset of the value in the whole URI, for messages.
 */
function percentDecode(value: string, allowed: Set<string>, name: string, where: number): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === '%') {
      const hex = value.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) {
        throw new Pkcs11UriError(`bad percent-encoding in attribute "${name}" at offset ${where + i} (expected %XX with two hex digits)`);
      }
      out.push(parseInt(hex, 16));
      i += 2;
    } else if (allowed.has(c)) {
      out.push(c.charCodeAt(0));
    } else {
      // A PIN's characters are never shown, not even the one at fault.
      const code = c.charCodeAt(0);
      const what = name === 'pin-value' ? 'a character' : `character ${code < 0x21 || code > 0x7e ? `U+${code.toString(16).padStart(4, '0')}` : `'${c}'`}`;
      throw new Pkcs11UriError(`${what} at offset ${where + i} in attribute "${name}" must be percent-encoded`);
    }
  }
  return Uint8Array.from(out);
}

function decodeText(bytes: Uint8Array, name: string, maxBytes: number): string {
  if (bytes.length > maxBytes) {
    throw new Pkcs11UriError(`attribute "${name}" is ${bytes.length} bytes long; at most ${maxBytes} allowed`);
  }
  try {
    return utf8.decode(bytes);
  } catch {
    throw new Pkcs11UriError(`attribute "${name}" is not valid UTF-8 after percent-decoding`);
  }
}

function decimal(bytes: Uint8Array, name: string): number {
  const s = String.fromCharCode(...bytes);
  if (!/^[0-9]{1,16}$/.test(s)) throw new Pkcs11UriError(`attribute "${name}" must be a decimal number`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new Pkcs11UriError(`attribute "${name}" is out of range`);
  return n;
}

function libraryVersion(bytes: Uint8Array): { major: number; minor: number } {
  const m = /^([0-9]{1,3})(?:\.([0-9]{1,3}))?$/.exec(String.fromCharCode(...bytes));
  if (!m) throw new Pkcs11UriError('attribute "library-version" must be MAJOR or MAJOR.MINOR (decimal)');
  const major = Number(m[1]);
  const minor = m[2] === undefined ? 0 : Number(m[2]);
  // CK_VERSION holds two bytes.
  if (major > 255 || minor > 255) throw new Pkcs11UriError('attribute "library-version" numbers must be 0..255');
  return { major, minor };
}

/** Own property even for names like `__proto__`, which plain assignment would not create. */
function setVendor(vendor: Record<string, string>, name: string, value: string): void {
  Object.defineProperty(vendor, name, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * Parses an RFC 7512 `pkcs11:` URI.
 *
 * @throws Pkcs11UriError naming the attribute and offset at fault (never a value).
 */
export function parsePkcs11Uri(uri: string): Pkcs11Uri {
  if (typeof uri !== 'string') throw new Pkcs11UriError('not a string');
  if (uri.length > MAX_PKCS11_URI_LENGTH) throw new Pkcs11UriError(`longer than ${MAX_PKCS11_URI_LENGTH} characters`);
  if (uri.slice(0, 7).toLowerCase() !== 'pkcs11:') throw new Pkcs11UriError('must start with "pkcs11:"');
  const rest = uri.slice(7);
  const q = rest.indexOf('?');
  const path = q < 0 ? rest : rest.slice(0, q);
  const query = q < 0 ? undefined : rest.slice(q + 1);
  if (rest.includes('#')) throw new Pkcs11UriError('fragments ("#") are not allowed');

  const result: Pkcs11Uri = { vendor: {} };
  const seen = new Set<string>();

  const each = (part: string, sep: string, base: number, fn: (name: string, value: string, at: number) => void): void => {
    if (part === '') return;
    let at = base;
    for (const item of part.split(sep)) {
      const eq = item.indexOf('=');
      if (eq <= 0) throw new Pkcs11UriError(`expected NAME=VALUE at offset ${at}`);
      const name = item.slice(0, eq);
      if (!NAME_RE.test(name)) throw new Pkcs11UriError(`bad attribute name at offset ${at}`);
      if (seen.has(name)) throw new Pkcs11UriError(`attribute "${name}" appears more than once`);
      seen.add(name);
      fn(name, item.slice(eq + 1), at + eq + 1);
      at += item.length + 1;
    }
  };

  each(path, ';', 7, (name, raw, at) => {
    const bytes = percentDecode(raw, PATH_CHARS, name, at);
    const text = textPathAttrs[name];
    if (text) {
      result[text.field] = decodeText(bytes, name, text.maxBytes);
      return;
    }
    switch (name) {
      case 'id':
        if (bytes.length > MAX_ID_BYTES) throw new Pkcs11UriError(`attribute "id" is ${bytes.length} bytes long; at most ${MAX_ID_BYTES} allowed`);
        result.id = bytes;
        return;
      case 'type': {
        const t = String.fromCharCode(...bytes);
        // The grammar allows an empty type, which constrains nothing.
        if (t === '') return;
        if (!(objectTypes as readonly string[]).includes(t)) throw new Pkcs11UriError(`attribute "type" must be one of ${objectTypes.join(', ')}`);
        result.type = t as Pkcs11ObjectType;
        return;
      }
      case 'slot-id':
        result.slotId = decimal(bytes, name);
        return;
      case 'library-version':
        result.libraryVersion = libraryVersion(bytes);
        return;
      default:
        if (['pin-value', 'pin-source', 'module-name', 'module-path'].includes(name)) {
          throw new Pkcs11UriError(`attribute "${name}" belongs in the query part (after "?")`);
        }
        setVendor(result.vendor, name, decodeText(bytes, name, MAX_PATH_BYTES));
    }
  });

  if (query !== undefined) {
    each(query, '&', 7 + path.length + 1, (name, raw, at) => {
      const bytes = percentDecode(raw, QUERY_CHARS, name, at);
      switch (name) {
        case 'pin-value':
          if (bytes.length > MAX_PIN_BYTES) throw new Pkcs11UriError(`attribute "pin-value" is longer than ${MAX_PIN_BYTES} bytes`);
          Object.defineProperty(result, 'pinValue', { value: decodeText(bytes, name, MAX_PIN_BYTES), enumerable: false, writable: true, configurable: true });
          return;
        case 'pin-source':
          result.pinSource = decodeText(bytes, name, MAX_PATH_BYTES);
          return;
        case 'module-name': {
          const v = decodeText(bytes, name, 255);
          if (v === '' || v.includes('/') || v.includes('\0')) throw new Pkcs11UriError('attribute "module-name" must be a bare module name (no "/")');
          result.moduleName = v;
          return;
        }
        case 'module-path': {
          const v = decodeText(bytes, name, MAX_PATH_BYTES);
          if (v === '' || v.includes('\0')) throw new Pkcs11UriError('attribute "module-path" must be a non-empty path');
          result.modulePath = v;
          return;
        }
        default:
          if (textPathAttrs[name] || ['id', 'type', 'slot-id', 'library-version'].includes(name)) {
            throw new Pkcs11UriError(`attribute "${name}" belongs in the path part (before "?")`);
          }
          setVendor(result.vendor, name, decodeText(bytes, name, MAX_PATH_BYTES));
      }
    });
  }
  // RFC 7512 2.3: a URI carrying both tells two different PIN stories.
  if (seen.has('pin-value') && seen.has('pin-source')) {
    throw new Pkcs11UriError('"pin-value" and "pin-source" must not both be present');
  }
  return result;
}

function encode(bytes: Uint8Array, allowed: Set<string>): string {
  let s = '';
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    // '=' and '&' are legal in values but escaping them keeps the output easy to read back.
    s += b < 0x80 && allowed.has(c) && c !== '=' && c !== '&' ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return s;
}

const enc = new TextEncoder();

/**
 * Formats a URI from its parts, percent-encoding every value as needed.
 * `pinValue` is included only when `includePin` is true.
 */
export function formatPkcs11Uri(u: Omit<Partial<Pkcs11Uri>, 'vendor'> & { vendor?: Record<string, string> }, includePin = false): string {
  const path: string[] = [];
  const text = (name: string, v: string | undefined): void => {
    if (v !== undefined) path.push(`${name}=${encode(enc.encode(v), PATH_CHARS)}`);
  };
  text('token', u.token);
  text('manufacturer', u.manufacturer);
  text('serial', u.serial);
  text('model', u.model);
  text('library-manufacturer', u.libraryManufacturer);
  text('library-description', u.libraryDescription);
  if (u.libraryVersion) path.push(`library-version=${u.libraryVersion.major}.${u.libraryVersion.minor}`);
  text('slot-description', u.slotDescription);
  text('slot-manufacturer', u.slotManufacturer);
  if (u.slotId !== undefined) path.push(`slot-id=${u.slotId}`);
  text('object', u.object);
  if (u.id !== undefined) path.push(`id=${encode(u.id, new Set())}`);
  if (u.type !== undefined) path.push(`type=${u.type}`);
  const query: string[] = [];
  const qtext = (name: string, v: string | undefined): void => {
    if (v !== undefined) query.push(`${name}=${encode(enc.encode(v), QUERY_CHARS)}`);
  };
  if (includePin) qtext('pin-value', u.pinValue);
  qtext('pin-source', u.pinSource);
  qtext('module-name', u.moduleName);
  qtext('module-path', u.modulePath);
  for (const [k, v] of Object.entries(u.vendor ?? {})) {
    if (!NAME_RE.test(k)) throw new Pkcs11UriError(`bad vendor attribute name`);
    path.push(`${k}=${encode(enc.encode(v), PATH_CHARS)}`);
  }
  return `pkcs11:${path.join(';')}${query.length ? `?${query.join('&')}` : ''}`;
}

/**
 * The URI with any `pin-value` replaced by `REDACTED`, for logs and messages. Works on
 * text that does not parse, too.
 */
export function redactPkcs11Uri(uri: string): string {
  return String(uri).replace(/([?&;:]pin-value=)[^&#]*/gi, '$1REDACTED');
}

/** Hex `%XX` form of an id, as it would appear in a URI (ids are not secret). */
export function formatPkcs11Id(id: Uint8Array): string {
  return encode(id, new Set());
}
