/**
 * A strict RFC 8259 JSON parser for safetensors headers. `JSON.parse` cannot be used: it
 * silently keeps the last of duplicate keys, rounds integers above 2^53 (offsets and shapes are
 * u64), and turns a `__proto__` key into a prototype. Objects therefore keep every entry in
 * order, and numbers keep their source text.
 */

/** serde_json's default recursion limit: deeper input is an error there too. */
export const MAX_JSON_DEPTH = 128;

export class JsonObject {
  constructor(readonly entries: ReadonlyArray<readonly [string, JsonValue]>) {}
}

export class JsonNumber {
  constructor(readonly raw: string) {}
}

export type JsonValue = JsonObject | JsonNumber | JsonValue[] | string | boolean | null;

export class JsonSyntaxError extends Error {
  constructor(
    message: string,
    readonly position: number,
  ) {
    super(`${message} at character ${position}`);
  }
}

/** Parses one JSON value surrounded by optional whitespace, as serde_json's `from_str` does. */
export function parseJson(text: string): JsonValue {
  const parser = new Parser(text);
  parser.skipWhitespace();
  const value = parser.value(0);
  parser.skipWhitespace();
  if (parser.position !== text.length) parser.fail('trailing characters');
  return value;
}

const ESCAPES: Readonly<Record<string, string>> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};

class Parser {
  position = 0;
  constructor(private readonly text: string) {}

  fail(message: string): never {
    throw new JsonSyntaxError(message, this.position);
  }

  skipWhitespace(): void {
    const text = this.text;
    let i = this.position;
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
    this.position = i;
  }

  value(depth: number): JsonValue {
    const c = this.text[this.position];
    switch (c) {
      case '{':
        return this.object(depth + 1);
      case '[':
        return this.array(depth + 1);
      case '"':
        return this.string();
      case 't':
        return this.literal('true', true);
      case 'f':
        return this.literal('false', false);
      case 'n':
        return this.literal('null', null);
      default:
        if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.number();
        return this.fail(c === undefined ? 'unexpected end of input' : `unexpected ${JSON.stringify(c)}`);
    }
  }

  private literal<T>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.position)) this.fail('invalid literal');
    this.position += word.length;
    return value;
  }

  private object(depth: number): JsonObject {
    if (depth > MAX_JSON_DEPTH) this.fail(`nesting deeper than ${MAX_JSON_DEPTH}`);
    this.position++;
    const entries: Array<readonly [string, JsonValue]> = [];
    this.skipWhitespace();
    if (this.text[this.position] === '}') {
      this.position++;
      return new JsonObject(entries);
    }
    for (;;) {
      if (this.text[this.position] !== '"') this.fail('expected a string key');
      const key = this.string();
      this.skipWhitespace();
      if (this.text[this.position] !== ':') this.fail("expected ':'");
      this.position++;
      this.skipWhitespace();
      entries.push([key, this.value(depth)]);
      this.skipWhitespace();
      const next = this.text[this.position];
      this.position++;
      if (next === '}') return new JsonObject(entries);
      if (next !== ',') {
        this.position--;
        this.fail("expected ',' or '}'");
      }
      this.skipWhitespace();
    }
  }

  private array(depth: number): JsonValue[] {
    if (depth > MAX_JSON_DEPTH) this.fail(`nesting deeper than ${MAX_JSON_DEPTH}`);
    this.position++;
    const items: JsonValue[] = [];
    this.skipWhitespace();
    if (this.text[this.position] === ']') {
      this.position++;
      return items;
    }
    for (;;) {
      items.push(this.value(depth));
      this.skipWhitespace();
      const next = this.text[this.position];
      this.position++;
      if (next === ']') return items;
      if (next !== ',') {
        this.position--;
        this.fail("expected ',' or ']'");
      }
      this.skipWhitespace();
    }
  }

  private string(): string {
    const text = this.text;
    let i = this.position + 1;
    let out = '';
    let chunkStart = i;
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 0x22) break;
      if (Number.isNaN(c)) {
        this.position = i;
        this.fail('unterminated string');
      }
      if (c < 0x20) {
        this.position = i;
        this.fail('control character in string');
      }
      if (c === 0x5c) {
        out += text.slice(chunkStart, i);
        i = this.escape(i, (piece) => {
          out += piece;
        });
        chunkStart = i;
        continue;
      }
      i++;
    }
    out += text.slice(chunkStart, i);
    this.position = i + 1;
    return out;
  }

  /** Decodes the escape at `i` (the backslash); returns the index after it. */
  private escape(i: number, emit: (piece: string) => void): number {
    const kind = this.text[i + 1];
    if (kind === 'u') {
      const unit = this.hex4(i + 2);
      if (unit >= 0xd800 && unit <= 0xdbff) {
        // A high surrogate must be followed by an escaped low one; serde_json rejects lone halves.
        if (this.text[i + 6] !== '\\' || this.text[i + 7] !== 'u') this.failAt(i, 'lone surrogate escape');
        const low = this.hex4(i + 8);
        if (low < 0xdc00 || low > 0xdfff) this.failAt(i, 'lone surrogate escape');
        emit(String.fromCharCode(unit, low));
        return i + 12;
      }
      if (unit >= 0xdc00 && unit <= 0xdfff) this.failAt(i, 'lone surrogate escape');
      emit(String.fromCharCode(unit));
      return i + 6;
    }
    const decoded = kind === undefined ? undefined : ESCAPES[kind];
    if (decoded === undefined) this.failAt(i, 'invalid escape');
    emit(decoded);
    return i + 2;
  }

  private hex4(at: number): number {
    const digits = this.text.slice(at, at + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(digits)) this.failAt(at, 'invalid \\u escape');
    return Number.parseInt(digits, 16);
  }

  private failAt(position: number, message: string): never {
    this.position = position;
    return this.fail(message);
  }

  private number(): JsonNumber {
    const match = NUMBER.exec(this.text.slice(this.position, this.position + MAX_NUMBER_LENGTH));
    if (match === null) this.fail('invalid number');
    const raw = match[0];
    if (raw.length === MAX_NUMBER_LENGTH) this.fail(`number longer than ${MAX_NUMBER_LENGTH} characters`);
    this.position += raw.length;
    return new JsonNumber(raw);
  }
}

/** Longer than any u64 or f64 needs; caps the regex's work on a hostile run of digits. */
const MAX_NUMBER_LENGTH = 400;

const NUMBER = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/;
