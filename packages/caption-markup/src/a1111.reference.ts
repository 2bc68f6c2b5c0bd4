// Test-only oracle: the regex-driven `parse_prompt_attention` that `a1111.ts` replaced, kept as
// a transliteration of A1111's `re_attention` / `re_break` so the scanner can be checked against it.
import { PY_SPACE_CLASS, type WeightedPiece } from './a1111.ts';
import { CaptionMarkupError, excerpt } from './errors.ts';
import { codePointAt, codePointBefore, isPyWhitespace, isPyWordChar, pythonFloat } from './python.ts';

// `modules/prompt_parser.py` `re_attention`, alternative for alternative; `\d` is Python's Unicode `\d`.
const RE_ATTENTION = new RegExp(
  String.raw`\\\(|\\\)|\\\[|\\\]|\\\\|\\|\(|\[|:${PY_SPACE_CLASS}*([+-]?[.\p{Nd}]+)${PY_SPACE_CLASS}*\)|\)|\]|[^\\()\[\]:]+|:`,
  'gu',
);

export function referenceParsePromptAttention(text: string): WeightedPiece[] {
  const res: WeightedPiece[] = [];
  const roundBrackets: number[] = [];
  const squareBrackets: number[] = [];
  RE_ATTENTION.lastIndex = 0;
  for (let match = RE_ATTENTION.exec(text); match !== null; match = RE_ATTENTION.exec(text)) {
    const piece = match[0];
    const weight = match[1];
    if (piece.startsWith('\\')) {
      res.push([piece.slice(1), 1.0]);
    } else if (piece === '(') {
      roundBrackets.push(res.length);
    } else if (piece === '[') {
      squareBrackets.push(res.length);
    } else if (weight !== undefined && roundBrackets.length > 0) {
      const value = pythonFloat(weight);
      if (value === undefined) {
        throw new CaptionMarkupError(
          'E_INVALID_WEIGHT',
          `A1111 cannot read the weight ${excerpt(weight)} at offset ${match.index + 1} of the prompt: ` +
            `Python's float() raises ValueError on it. Write a number such as 1.2.`,
        );
      }
      multiplyRange(res, roundBrackets.pop()!, value);
    } else if (piece === ')' && roundBrackets.length > 0) {
      multiplyRange(res, roundBrackets.pop()!, 1.1);
    } else if (piece === ']' && squareBrackets.length > 0) {
      multiplyRange(res, squareBrackets.pop()!, 1 / 1.1);
    } else {
      const parts = referenceSplitBreak(piece);
      for (let index = 0; index < parts.length; index += 1) {
        if (index > 0) res.push(['BREAK', -1]);
        res.push([parts[index]!, 1.0]);
      }
    }
  }
  for (const position of roundBrackets) multiplyRange(res, position, 1.1);
  for (const position of squareBrackets) multiplyRange(res, position, 1 / 1.1);
  if (res.length === 0) res.push(['', 1.0]);
  for (let index = 0; index + 1 < res.length; ) {
    const current = res[index]!;
    const next = res[index + 1]!;
    if (current[1] === next[1]) {
      current[0] += next[0];
      res.splice(index + 1, 1);
    } else {
      index += 1;
    }
  }
  return res;
}

function multiplyRange(res: WeightedPiece[], start: number, multiplier: number): void {
  for (let index = start; index < res.length; index += 1) res[index]![1] *= multiplier;
}

/** `re.split(r"\s*\bBREAK\b\s*", text)` with Python's Unicode `\s` and `\b`. */
function referenceSplitBreak(text: string): string[] {
  const parts: string[] = [];
  let last = 0;
  for (let index = text.indexOf('BREAK'); index >= 0; ) {
    const end = index + 5;
    if (!isPyWordChar(codePointBefore(text, index)) && !isPyWordChar(codePointAt(text, end))) {
      let start = index;
      while (start > last && isPyWhitespace(text.charCodeAt(start - 1))) start -= 1;
      let stop = end;
      while (stop < text.length && isPyWhitespace(text.charCodeAt(stop))) stop += 1;
      parts.push(text.slice(last, start));
      last = stop;
      index = text.indexOf('BREAK', stop);
    } else {
      index = text.indexOf('BREAK', index + 1);
    }
  }
  parts.push(text.slice(last));
  return parts;
}
