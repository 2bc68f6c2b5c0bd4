import { CaptionMarkupError, excerpt, type SafeResult } from './errors.ts';
import {
  codePointAt,
  codePointBefore,
  isPyDigit,
  isPyWhitespace,
  isPyWordChar,
  pythonFloat,
} from './python.ts';

/** A piece of prompt text and its attention weight; `["BREAK", -1]` marks a chunk break. */
export type WeightedPiece = [text: string, weight: number];

/** Python's `\s` as a character class (see `isPyWhitespace`). */
export const PY_SPACE_CLASS = String.raw`[\t-\r\x1c- \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]`;

const ROUND_BRACKET_MULTIPLIER = 1.1;
const SQUARE_BRACKET_MULTIPLIER = 1 / 1.1;

const BACKSLASH = 0x5c;
const OPEN_ROUND = 0x28;
const CLOSE_ROUND = 0x29;
const OPEN_SQUARE = 0x5b;
const CLOSE_SQUARE = 0x5d;
const COLON = 0x3a;
const PLUS = 0x2b;
const MINUS = 0x2d;
const DOT = 0x2e;
const DIGIT_0 = 0x30;

/** The characters that end a run of text (`re_attention`'s `[^\\()\[\]:]+`), all up to `]`. */
const ENDS_TEXT = new Uint8Array(CLOSE_SQUARE + 1);
for (const code of [BACKSLASH, OPEN_ROUND, CLOSE_ROUND, OPEN_SQUARE, CLOSE_SQUARE, COLON])
  ENDS_TEXT[code] = 1;

/** Exact powers of ten for the weight fast path. */
const POW10 = [1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];
/** Up to 15 digits the mantissa and 10^k are exact doubles, so one division rounds as `float()` does. */
const MAX_FAST_WEIGHT_DIGITS = 15;

/**
 * Scratch pieces reused between calls, up to this many: one huge prompt must not keep its
 * buffers (16 bytes a piece) alive for the rest of the process.
 */
const MAX_REUSED_PIECES = 1 << 16;

/**
 * A1111's `res` list before merging, as spans of the prompt rather than strings: every piece is a
 * slice of it (an escape is the character after `\`, a lone `\` the empty slice after it, a
 * break marker the word `BREAK`), so text is copied once, when neighbours are merged.
 */
class Pieces {
  starts = new Int32Array(256);
  ends = new Int32Array(256);
  weights = new Float64Array(256);
  length = 0;

  push(start: number, end: number, weight: number): void {
    if (this.length === this.starts.length) this.grow();
    this.starts[this.length] = start;
    this.ends[this.length] = end;
    this.weights[this.length] = weight;
    this.length += 1;
  }

  multiplyFrom(start: number, multiplier: number): void {
    const weights = this.weights;
    for (let index = start; index < this.length; index += 1) weights[index]! *= multiplier;
  }

  private grow(): void {
    const capacity = this.starts.length * 2;
    const starts = new Int32Array(capacity);
    const ends = new Int32Array(capacity);
    const weights = new Float64Array(capacity);
    starts.set(this.starts);
    ends.set(this.ends);
    weights.set(this.weights);
    this.starts = starts;
    this.ends = ends;
    this.weights = weights;
  }
}

let scratch = new Pieces();
const roundBrackets: number[] = [];
const squareBrackets: number[] = [];

/**
 * AUTOMATIC1111's `parse_prompt_attention`, bit for bit: same pieces, same float weights (same
 * multiplication order), `["BREAK", -1]` markers, unbalanced brackets applied at the end, equal
 * neighbours merged. Run it on prompt text after extra networks (`<lora:…>`) are removed, as A1111 does.
 *
 * A single pass over the text that takes, at each position, the alternative of A1111's
 * `re_attention` that Python's `re` would take, with Python's Unicode `\s` and `\d`.
 *
 * @throws {CaptionMarkupError} `E_INVALID_WEIGHT` where A1111 raises `ValueError`, e.g. `(a:1.2.3)`.
 */
export function parsePromptAttention(text: string): WeightedPiece[] {
  const pieces = scratch;
  pieces.length = 0;
  try {
    scanAttention(text, pieces);
    for (const position of roundBrackets) pieces.multiplyFrom(position, ROUND_BRACKET_MULTIPLIER);
    for (const position of squareBrackets) pieces.multiplyFrom(position, SQUARE_BRACKET_MULTIPLIER);
    return mergeEqualNeighbours(text, pieces);
  } finally {
    // Also after E_INVALID_WEIGHT: the stacks start empty at the next call.
    roundBrackets.length = 0;
    squareBrackets.length = 0;
    if (pieces.starts.length > MAX_REUSED_PIECES) scratch = new Pieces();
  }
}

/** `parsePromptAttention` that returns the error instead of throwing it. */
export function safeParsePromptAttention(text: string): SafeResult<WeightedPiece[]> {
  try {
    return { success: true, value: parsePromptAttention(text) };
  } catch (error) {
    if (CaptionMarkupError.isInstance(error)) return { success: false, error };
    throw error;
  }
}

function scanAttention(text: string, pieces: Pieces): void {
  const length = text.length;
  // The next `BREAK` at or after the scan position, searched again only once the scan passes it.
  let nextBreak = -1;
  let index = 0;
  while (index < length) {
    const code = text.charCodeAt(index);
    if (code > CLOSE_SQUARE || ENDS_TEXT[code] === 0) {
      let end = index + 1;
      while (end < length) {
        const next = text.charCodeAt(end);
        if (next <= CLOSE_SQUARE && ENDS_TEXT[next] === 1) break;
        end += 1;
      }
      if (nextBreak < index) {
        nextBreak = text.indexOf('BREAK', index);
        if (nextBreak < 0) nextBreak = length;
      }
      if (nextBreak + 5 <= end) pushSplitAtBreak(pieces, text, index, end, nextBreak);
      else pieces.push(index, end, 1.0);
      index = end;
    } else if (code === BACKSLASH) {
      const next = text.charCodeAt(index + 1);
      const escapes =
        next === OPEN_ROUND ||
        next === CLOSE_ROUND ||
        next === OPEN_SQUARE ||
        next === CLOSE_SQUARE ||
        next === BACKSLASH;
      // `\(` … `\\` keep the escaped character; a lone `\` leaves an empty piece, as in A1111.
      const end = escapes ? index + 2 : index + 1;
      pieces.push(index + 1, end, 1.0);
      index = end;
    } else if (code === OPEN_ROUND) {
      roundBrackets.push(pieces.length);
      index += 1;
    } else if (code === OPEN_SQUARE) {
      squareBrackets.push(pieces.length);
      index += 1;
    } else if (code === CLOSE_ROUND) {
      if (roundBrackets.length > 0) pieces.multiplyFrom(roundBrackets.pop()!, ROUND_BRACKET_MULTIPLIER);
      else pieces.push(index, index + 1, 1.0);
      index += 1;
    } else if (code === CLOSE_SQUARE) {
      if (squareBrackets.length > 0) pieces.multiplyFrom(squareBrackets.pop()!, SQUARE_BRACKET_MULTIPLIER);
      else pieces.push(index, index + 1, 1.0);
      index += 1;
    } else {
      index = scanColon(text, index, pieces);
    }
  }
}

/**
 * At a `:`: the alternative `:\s*([+-]?[.\d]+)\s*\)` or else the lone `:`. The classes are
 * disjoint, so taking each greedily is the only way Python's `re` can match. Returns where the
 * match ends.
 */
function scanColon(text: string, colon: number, pieces: Pieces): number {
  let index = colon + 1;
  while (isPyWhitespace(text.charCodeAt(index))) index += 1;
  const numberStart = index;
  const sign = text.charCodeAt(index);
  if (sign === PLUS || sign === MINUS) index += 1;
  const digitsStart = index;
  for (;;) {
    const code = text.charCodeAt(index);
    if ((code >= DIGIT_0 && code <= DIGIT_0 + 9) || code === DOT) index += 1;
    else if (code >= 0x80 && isPyDigit(codePointAt(text, index)))
      index += code >= 0xd800 && code <= 0xdbff ? 2 : 1;
    else break;
  }
  const numberEnd = index;
  while (isPyWhitespace(text.charCodeAt(index))) index += 1;
  if (numberEnd === digitsStart || text.charCodeAt(index) !== CLOSE_ROUND) {
    pieces.push(colon, colon + 1, 1.0);
    return colon + 1;
  }
  const end = index + 1;
  if (roundBrackets.length > 0) {
    pieces.multiplyFrom(roundBrackets.pop()!, readWeight(text, numberStart, numberEnd, colon));
  } else {
    // Nothing to weigh: the whole match is text, which cannot hold a `BREAK`.
    pieces.push(colon, end, 1.0);
  }
  return end;
}

/** Python's `float()` of `text[start, end)`, which matched `[+-]?[.\d]+`. */
function readWeight(text: string, start: number, end: number, colon: number): number {
  let index = start;
  const sign = text.charCodeAt(index);
  if (sign === PLUS || sign === MINUS) index += 1;
  let mantissa = 0;
  let digits = 0;
  let dots = 0;
  let fractionDigits = 0;
  for (; index < end; index += 1) {
    const code = text.charCodeAt(index);
    if (code === DOT) {
      dots += 1;
    } else if (code < 0x80) {
      mantissa = mantissa * 10 + (code - DIGIT_0);
      digits += 1;
      if (dots > 0) fractionDigits += 1;
    } else {
      digits = -1; // a digit of another script: leave it to `pythonFloat`
      break;
    }
  }
  if (dots <= 1 && digits > 0 && digits <= MAX_FAST_WEIGHT_DIGITS) {
    const value = mantissa / POW10[fractionDigits]!;
    return sign === MINUS ? -value : value;
  }
  const weight = text.slice(start, end);
  const value = pythonFloat(weight);
  if (value === undefined) {
    throw new CaptionMarkupError(
      'E_INVALID_WEIGHT',
      `A1111 cannot read the weight ${excerpt(weight)} at offset ${colon + 1} of the prompt: ` +
        `Python's float() raises ValueError on it. Write a number such as 1.2.`,
    );
  }
  return value;
}

/**
 * `re.split(r"\s*\bBREAK\b\s*", text[from, to])` with Python's Unicode `\s` and `\b`, pushed as
 * text pieces with a `BREAK` marker between them; `first` is the first `BREAK` at or after `from`.
 * The characters just outside the range are ASCII markup or the text's edges, neither a word
 * character nor a space, so `\b` and `\s` read the whole text where Python reads the piece.
 */
function pushSplitAtBreak(pieces: Pieces, text: string, from: number, to: number, first: number): void {
  let last = from;
  for (let index = first; index >= 0 && index + 5 <= to; ) {
    const end = index + 5;
    if (!isPyWordChar(codePointBefore(text, index)) && !isPyWordChar(codePointAt(text, end))) {
      let start = index;
      while (start > last && isPyWhitespace(text.charCodeAt(start - 1))) start -= 1;
      let stop = end;
      while (stop < to && isPyWhitespace(text.charCodeAt(stop))) stop += 1;
      pieces.push(last, start, 1.0);
      pieces.push(index, end, -1);
      last = stop;
      index = text.indexOf('BREAK', stop);
    } else {
      index = text.indexOf('BREAK', index + 1);
    }
  }
  pieces.push(last, to, 1.0);
}

/** A1111's final pass: neighbours with equal weights (`==`, so never NaN) joined into one piece. */
function mergeEqualNeighbours(text: string, pieces: Pieces): WeightedPiece[] {
  if (pieces.length === 0) return [['', 1.0]];
  const { starts, ends, weights } = pieces;
  const result: WeightedPiece[] = [];
  let weight = weights[0]!;
  let head = '';
  let from = starts[0]!;
  let to = ends[0]!;
  for (let index = 1; index < pieces.length; index += 1) {
    const start = starts[index]!;
    if (weights[index] === weight) {
      if (start !== to) {
        head += text.slice(from, to);
        from = start;
      }
    } else {
      result.push([head + text.slice(from, to), weight]);
      weight = weights[index]!;
      head = '';
      from = start;
    }
    to = ends[index]!;
  }
  result.push([head + text.slice(from, to), weight]);
  return result;
}

/** `re.split(r"\s*\bBREAK\b\s*", text)` with Python's Unicode `\s` and `\b`. */
export function splitBreak(text: string): string[] {
  const first = text.indexOf('BREAK');
  if (first < 0) return [text];
  const pieces = new Pieces();
  pushSplitAtBreak(pieces, text, 0, text.length, first);
  const parts: string[] = [];
  for (let index = 0; index < pieces.length; index += 2) {
    parts.push(text.slice(pieces.starts[index]!, pieces.ends[index]!));
  }
  return parts;
}
