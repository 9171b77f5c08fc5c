/**
 * JSON.parse that also says on which line each value is, so a configuration error can name
 * the file, the line and the field. A small recursive-descent parser of RFC 8259 JSON
 * (bounded depth); syntax errors name the line and column.
 */

/** A parsed document and the line of each value by path ("tls.alpn[1]"; "" is the root). */
export interface JsonWithLines {
  value: unknown;
  lineOf(path: string): number | undefined;
}

/** The text is not JSON; `line` and `column` are 1-based. */
export class JsonSyntaxError extends Error {
  constructor(
    readonly reason: string,
    readonly line: number,
    readonly column: number,
  ) {
    super(`line ${line}, column ${column}: ${reason}`);
    this.name = 'JsonSyntaxError';
  }
}

const MAX_DEPTH = 64;

/** Joins a path and a key the way error messages show it. */
export function childPath(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path === '' ? key : `${path}.${key}`;
}

export function parseJsonWithLines(text: string): JsonWithLines {
  const lines = new Map<string, number>();
  let i = 0;
  let line = 1;
  let lineStart = 0;

  const fail = (reason: string): never => {
    throw new JsonSyntaxError(reason, line, i - lineStart + 1);
  };
  const ws = () => {
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 0x0a) {
        line++;
        i++;
        lineStart = i;
      } else if (c === 0x20 || c === 0x09 || c === 0x0d) i++;
      else return;
    }
  };
  const expect = (ch: string) => {
    if (text[i] !== ch) fail(i >= text.length ? `expected "${ch}" but the file ended` : `expected "${ch}", found "${text[i]}"`);
    i++;
  };
  const string = (): string => {
    expect('"');
    let out = '';
    for (;;) {
      if (i >= text.length) fail('unterminated string');
      const c = text[i];
      if (c === '"') {
        i++;
        return out;
      }
      if (c === '\\') {
        const e = text[i + 1];
        const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
        if (e !== undefined && e in simple) {
          out += simple[e];
          i += 2;
        } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
          out += String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16));
          i += 6;
        } else fail('bad escape in string');
        continue;
      }
      if (c.charCodeAt(0) < 0x20) fail('control character in string (a line break inside quotes?)');
      out += c;
      i++;
    }
  };
  const value = (path: string, depth: number): unknown => {
    if (depth > MAX_DEPTH) fail(`nested deeper than ${MAX_DEPTH} levels`);
    ws();
    lines.set(path, line);
    const c = text[i];
    if (c === '{') {
      i++;
      const obj: Record<string, unknown> = {};
      ws();
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        const keyLine = line;
        const key = string();
        if (Object.prototype.hasOwnProperty.call(obj, key)) fail(`"${key}" appears twice in one object`);
        ws();
        expect(':');
        const p = childPath(path, key);
        const v = value(p, depth + 1);
        // A field's line is where its name is (for an object or array value, its opening line).
        lines.set(p, keyLine);
        Object.defineProperty(obj, key, { value: v, enumerable: true, writable: true, configurable: true });
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        expect('}');
        return obj;
      }
    }
    if (c === '[') {
      i++;
      const arr: unknown[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value(childPath(path, arr.length), depth + 1));
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        expect(']');
        return arr;
      }
    }
    if (c === '"') return string();
    const m = /^(?:true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(text.slice(i, i + 400));
    if (!m) fail(i >= text.length ? 'the file ended where a value was expected' : `unexpected "${c}"`);
    i += m![0].length;
    const t = m![0];
    return t === 'true' ? true : t === 'false' ? false : t === 'null' ? null : Number(t);
  };

  const v = value('', 0);
  ws();
  if (i < text.length) fail(`unexpected "${text[i]}" after the end of the document`);
  return { value: v, lineOf: (p) => lines.get(p) };
}
