/**
 * UTF-8 checks for the text files a dataset reads (metadata.csv, JSONL, JSON, caption sidecars).
 * Node's decoder turns invalid bytes into U+FFFD silently, and a caption or an answer with
 * replacement characters would be trained on; a file in Latin-1 or UTF-16 is refused instead,
 * with the line and byte where it stops being UTF-8.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { DatasetError } from './errors.ts';

/** Where the first byte that is not UTF-8 sits: 1-based line, 0-based byte offset in the file. */
export interface Utf8Problem {
  line: number;
  offset: number;
}

/**
 * Length of the valid UTF-8 prefix of `bytes[from..]` that ends on a whole character, and
 * whether what follows is an error (`bad`) or just a character cut by the end of the buffer.
 * Follows the Unicode definition: no overlong forms, no surrogates, nothing above U+10FFFF.
 */
function scan(bytes: Uint8Array, from: number): { end: number; bad: boolean } {
  let i = from;
  while (i < bytes.length) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min = 0x80;
    let max = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) min = 0xa0;
      if (b === 0xed) max = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) min = 0x90;
      if (b === 0xf4) max = 0x8f;
    } else return { end: i, bad: true };
    for (let k = 1; k <= need; k++) {
      if (i + k >= bytes.length) return { end: i, bad: false };
      const c = bytes[i + k]!;
      if (c < (k === 1 ? min : 0x80) || c > (k === 1 ? max : 0xbf)) return { end: i, bad: true };
    }
    i += need + 1;
  }
  return { end: i, bad: false };
}

function countLines(bytes: Uint8Array, end: number): number {
  let lines = 0;
  for (let i = 0; i < end; i++) if (bytes[i] === 0x0a) lines++;
  return lines;
}

/** The first non-UTF-8 byte of a whole file's bytes, or undefined. */
export function findInvalidUtf8(bytes: Uint8Array): Utf8Problem | undefined {
  const { end } = scan(bytes, 0);
  return end === bytes.length ? undefined : { line: countLines(bytes, end) + 1, offset: end };
}

export function invalidUtf8Error(path: string, { line, offset }: Utf8Problem): DatasetError {
  return new DatasetError(
    'E_INVALID_ENCODING',
    `${path}:${line}: not UTF-8 at byte ${offset}. Save the file as UTF-8 (in a spreadsheet: "CSV UTF-8"; with iconv: iconv -f latin1 -t utf-8 <file>), so no character is trained on as "\uFFFD".`,
    { path, line },
  );
}

/**
 * A pass-through stream that fails with `INVALID_ENCODING` (naming line and byte) at the first
 * byte that is not UTF-8; a character split between two chunks waits for the next one.
 */
export function utf8Checked(path: string): Transform {
  let carry: Uint8Array = new Uint8Array(0);
  let offset = 0;
  let line = 1;
  const check = (bytes: Uint8Array, final: boolean): Error | undefined => {
    const { end, bad } = scan(bytes, 0);
    if (bad || (final && end < bytes.length)) {
      return invalidUtf8Error(path, { line: line + countLines(bytes, end), offset: offset + end });
    }
    line += countLines(bytes, end);
    offset += end;
    carry = bytes.subarray(end);
    return undefined;
  };
  return new Transform({
    transform(chunk: Buffer, _encoding, done: TransformCallback) {
      const bytes = carry.length === 0 ? chunk : Buffer.concat([carry, chunk]);
      const problem = check(bytes, false);
      if (problem) return done(problem);
      done(null, chunk);
    },
    flush(done: TransformCallback) {
      done(carry.length > 0 ? check(carry, true) : undefined);
    },
  });
}
