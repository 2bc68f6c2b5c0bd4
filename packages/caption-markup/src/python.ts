// Python `re` and `float()` semantics that the upstream parsers depend on. Python's `\s`, `\w`
// and `\d` are Unicode-aware, unlike JavaScript's `\s` (which adds U+FEFF and lacks U+001C–U+001F
// and U+0085) and `\b`/`\w` (ASCII only).

const UNICODE_WORD = /[\p{L}\p{N}]/u;
const UNICODE_DIGIT = /\p{Nd}/u;

/** `str.isspace()`, which is also what Python's `\s` matches in a `str` pattern. */
export function isPyWhitespace(code: number): boolean {
  if (code <= 0x20) return code === 0x20 || (code >= 0x09 && code <= 0x0d) || (code >= 0x1c && code <= 0x1f);
  if (code < 0x85) return false;
  return (
    code === 0x85 ||
    code === 0xa0 ||
    code === 0x1680 ||
    (code >= 0x2000 && code <= 0x200a) ||
    code === 0x2028 ||
    code === 0x2029 ||
    code === 0x202f ||
    code === 0x205f ||
    code === 0x3000
  );
}

/** Python's `\w`: letters (L*), numbers (N*) and `_`, identical to CPython for every code point. */
export function isPyWordChar(codePoint: number): boolean {
  if (codePoint < 0x80) {
    return (
      (codePoint >= 0x30 && codePoint <= 0x39) ||
      (codePoint >= 0x41 && codePoint <= 0x5a) ||
      (codePoint >= 0x61 && codePoint <= 0x7a) ||
      codePoint === 0x5f
    );
  }
  return UNICODE_WORD.test(String.fromCodePoint(codePoint));
}

/** Python's `\d`: any Unicode decimal digit (category Nd). */
export function isPyDigit(codePoint: number): boolean {
  if (codePoint < 0x80) return codePoint >= 0x30 && codePoint <= 0x39;
  return UNICODE_DIGIT.test(String.fromCodePoint(codePoint));
}

/**
 * The value of a decimal digit in any script, or -1. Unicode guarantees that Nd characters come in
 * contiguous runs of ten, 0 to 9, so the value is the distance from the start of the run modulo 10.
 */
export function digitValue(codePoint: number): number {
  if (codePoint >= 0x30 && codePoint <= 0x39) return codePoint - 0x30;
  if (!isPyDigit(codePoint)) return -1;
  let start = codePoint;
  while (isPyDigit(start - 1)) start -= 1;
  return (codePoint - start) % 10;
}

/** The code point that ends just before UTF-16 index `index`, or -1 at the start. */
export function codePointBefore(text: string, index: number): number {
  if (index <= 0) return -1;
  const low = text.charCodeAt(index - 1);
  if (low >= 0xdc00 && low <= 0xdfff && index >= 2) {
    const high = text.charCodeAt(index - 2);
    if (high >= 0xd800 && high <= 0xdbff) return (high - 0xd800) * 0x400 + (low - 0xdc00) + 0x10000;
  }
  return low;
}

/** The code point that starts at UTF-16 index `index`, or -1 at the end. */
export function codePointAt(text: string, index: number): number {
  return index < text.length ? text.codePointAt(index)! : -1;
}

const PY_FLOAT = /^[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)$/i;

/**
 * Python's `float(text)`, or `undefined` where Python raises `ValueError`: surrounding whitespace,
 * digits of any script, `_` between digits, exponents, `inf`/`infinity`/`nan` in any case.
 * JavaScript's `Number` rounds decimal strings correctly, as CPython does, so values match bit for bit.
 */
export function pythonFloat(text: string): number | undefined {
  // `_PyUnicode_TransformDecimalAndSpaceToASCII`: ASCII is kept as is, other whitespace becomes a
  // space, other digits become ASCII digits, anything else makes the number invalid.
  let ascii = '';
  for (const char of text) {
    const code = char.codePointAt(0)!;
    if (code < 0x7f) ascii += char;
    else if (isPyWhitespace(code)) ascii += ' ';
    else {
      const digit = digitValue(code);
      if (digit < 0) return undefined;
      ascii += String.fromCharCode(0x30 + digit);
    }
  }
  // Only ASCII whitespace is stripped (`Py_ISSPACE`): U+001C–U+001F are not.
  ascii = ascii.replace(/^[ \t\n\v\f\r]+|[ \t\n\v\f\r]+$/g, '');
  if (ascii.includes('_')) {
    // `_Py_string_to_number_with_underscores`: only single underscores between two digits.
    for (let index = ascii.indexOf('_'); index >= 0; index = ascii.indexOf('_', index + 1)) {
      if (!isAsciiDigit(ascii.charCodeAt(index - 1)) || !isAsciiDigit(ascii.charCodeAt(index + 1)))
        return undefined;
    }
    ascii = ascii.replaceAll('_', '');
  }
  if (!PY_FLOAT.test(ascii)) return undefined;
  const lower = ascii.toLowerCase();
  if (lower.endsWith('nan')) return Number.NaN;
  if (lower.endsWith('inf') || lower.endsWith('infinity')) {
    return ascii.startsWith('-') ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
  }
  return Number(ascii);
}

function isAsciiDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

/** `str.strip()`: removes Python whitespace from both ends. */
export function trimPy(text: string): string {
  let from = 0;
  let to = text.length;
  while (from < to && isPyWhitespace(text.charCodeAt(from))) from += 1;
  while (to > from && isPyWhitespace(text.charCodeAt(to - 1))) to -= 1;
  return text.slice(from, to);
}
