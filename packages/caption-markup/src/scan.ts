// The tokenizer shared by `parse` (which builds a tree from the tokens) and `stripMarkup` (which
// renders them straight to text, without allocating nodes, to stay fast). Three passes over flat
// typed arrays: lex, pair brackets, then pair emphasis markers and find `[from:to:when]` / `[a|b]`.

import { PY_SPACE_CLASS } from './a1111.ts';
import { codePointAt, codePointBefore, isPyDigit, isPyWhitespace, isPyWordChar } from './python.ts';
import type { Diagnostic, DiagnosticCode, Severity } from './types.ts';

/**
 * Brackets plus emphasis markers open at once. Real captions use fewer than ten; the bound keeps the
 * recursive tree walkers far from the call-stack limit on hostile input. Deeper openers stay literal.
 */
export const MAX_NESTING_DEPTH = 64;

export const TEXT = 0;
export const SPACE = 1;
export const COMMA = 2;
export const ESCAPE = 3;
export const STAR = 4;
export const UNDERSCORE = 5;
export const OPEN_ROUND = 6;
export const CLOSE_ROUND = 7;
/** `weight)` after a COLON (A1111's `:\s*([+-]?[.\d]+)\s*\)`); when paired, the colon is part of it. */
export const WEIGHT_CLOSE = 8;
export const OPEN_SQUARE = 9;
export const CLOSE_SQUARE = 10;
export const COLON = 11;
export const PIPE = 12;
export const NETWORK = 13;
export const BREAK = 14;

/** Marker runs: may open / may close (from the characters around them). */
export const CAN_OPEN = 1;
export const CAN_CLOSE = 2;
/** WEIGHT_CLOSE whose number Python's `float()` rejects. */
export const INVALID = 4;
/** OPEN_SQUARE resolved as `[from:to:when]` / `[to:when]`. */
export const EDIT = 8;
/** OPEN_SQUARE resolved as `[a|b]`. */
export const ALTERNATION = 16;
/** First token of a `***` run, whose split into `**`+`*` or `*`+`**` is decided when pairing. */
const TRIPLE = 32;

/**
 * Struct-of-arrays token list. `link` pairs an opener with its closer (both ways), points a
 * structural `:`/`|` at its `[`, and is -1 for everything that is literal text.
 * `aux`/`aux2`: WEIGHT_CLOSE number bounds (offsets); EDIT/ALTERNATION first/second separator token.
 */
export interface Tokens {
  count: number;
  kind: Uint8Array;
  flags: Uint8Array;
  start: Int32Array;
  end: Int32Array;
  link: Int32Array;
  aux: Int32Array;
  aux2: Int32Array;
}

/** Buffers reused between calls up to this many tokens, so steady-state scanning allocates nothing. */
const CACHED_TOKEN_CAPACITY = 1 << 16;
let cached: Tokens = allocate(1024);

function allocate(capacity: number): Tokens {
  return {
    count: 0,
    kind: new Uint8Array(capacity),
    flags: new Uint8Array(capacity),
    start: new Int32Array(capacity),
    end: new Int32Array(capacity),
    link: new Int32Array(capacity),
    aux: new Int32Array(capacity),
    aux2: new Int32Array(capacity),
  };
}

// Character classes for ASCII; everything else is text unless it is Python whitespace.
const C_TEXT = 0;
const C_SPACE = 1;
const C_SPECIAL = 2;
const ASCII_CLASS = new Uint8Array(128);
for (let code = 0; code < 128; code += 1) {
  ASCII_CLASS[code] = isPyWhitespace(code)
    ? C_SPACE
    : '\\*_()[]:|,<B'.includes(String.fromCharCode(code))
      ? C_SPECIAL
      : C_TEXT;
}

const WHEN_NUMBER = new RegExp(
  `^${PY_SPACE_CLASS}*[+-]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][+-]?\\d+)?${PY_SPACE_CLASS}*$`,
);

/** Tokenizes and pairs `text`. The result is only valid until the next call. */
export function scan(text: string, diagnostics?: Diagnostic[]): Tokens {
  // At most one token per character, plus one for a `***` run split in two.
  const capacity = text.length + 2;
  let tokens = cached;
  if (tokens.kind.length < capacity) {
    tokens = allocate(Math.max(capacity, tokens.kind.length * 2));
    if (tokens.kind.length <= CACHED_TOKEN_CAPACITY) cached = tokens;
  }
  lex(text, tokens);
  pairBrackets(text, tokens, diagnostics);
  pairEmphasis(text, tokens, diagnostics);
  return tokens;
}

function push(tokens: Tokens, tokenKind: number, from: number, to: number, tokenFlags: number): void {
  const count = tokens.count;
  tokens.kind[count] = tokenKind;
  tokens.flags[count] = tokenFlags;
  tokens.start[count] = from;
  tokens.end[count] = to;
  tokens.link[count] = -1;
  tokens.count = count + 1;
}

/** Literal text, merged into the previous token when that is text too. */
function pushText(tokens: Tokens, from: number, to: number): void {
  const last = tokens.count - 1;
  if (last >= 0 && tokens.kind[last] === TEXT && tokens.end[last] === from) tokens.end[last] = to;
  else push(tokens, TEXT, from, to, 0);
}

function lex(text: string, tokens: Tokens): void {
  const length = text.length;
  tokens.count = 0;
  let nextGreater = -1;

  let index = 0;
  while (index < length) {
    const code = text.charCodeAt(index);
    const charClass = code < 128 ? ASCII_CLASS[code] : isPyWhitespace(code) ? C_SPACE : C_TEXT;
    if (charClass === C_TEXT) {
      let stop = index + 1;
      while (stop < length) {
        const next = text.charCodeAt(stop);
        if (next < 128 ? ASCII_CLASS[next] !== C_TEXT : isPyWhitespace(next)) break;
        stop += 1;
      }
      pushText(tokens, index, stop);
      index = stop;
      continue;
    }
    if (charClass === C_SPACE) {
      let stop = index + 1;
      while (stop < length && isPyWhitespace(text.charCodeAt(stop))) stop += 1;
      push(tokens, SPACE, index, stop, 0);
      index = stop;
      continue;
    }
    switch (code) {
      case 0x2c: // ,
        push(tokens, COMMA, index, index + 1, 0);
        index += 1;
        break;
      case 0x5c: {
        // backslash
        if (isEscapable(text.charCodeAt(index + 1))) {
          push(tokens, ESCAPE, index, index + 2, 0);
          index += 2;
        } else {
          pushText(tokens, index, index + 1);
          index += 1;
        }
        break;
      }
      case 0x2a: {
        // *
        let stop = index + 1;
        while (text.charCodeAt(stop) === 0x2a) stop += 1;
        const runLength = stop - index;
        const before = codePointBefore(text, index);
        const after = codePointAt(text, stop);
        let runFlags = 0;
        if (runLength <= 3) {
          if (after >= 0 && !isPyWhitespace(after)) runFlags |= CAN_OPEN;
          if (before >= 0 && !isPyWhitespace(before)) runFlags |= CAN_CLOSE;
        }
        if (runLength === 3 && runFlags !== 0) {
          push(tokens, STAR, index, index + 2, runFlags | TRIPLE);
          push(tokens, STAR, index + 2, stop, runFlags);
        } else {
          push(tokens, STAR, index, stop, runFlags);
        }
        index = stop;
        break;
      }
      case 0x5f: {
        // _ : an emphasis marker only at the edge of a tag, never inside words like long_hair or ^_^
        let stop = index + 1;
        while (text.charCodeAt(stop) === 0x5f) stop += 1;
        const before = codePointBefore(text, index);
        let after = codePointAt(text, stop);
        // An escaped marker right after counts as that marker: `_a_\)` closes like `_a_)`.
        if (after === 0x5c && isEscapable(text.charCodeAt(stop + 1))) after = text.charCodeAt(stop + 1);
        let runFlags = 0;
        if (stop - index <= 2) {
          if (opensAfter(before) && isContentAfterOpener(after)) runFlags |= CAN_OPEN;
          if (isContentBeforeCloser(before) && closesBefore(after)) runFlags |= CAN_CLOSE;
        }
        if (runFlags === 0) pushText(tokens, index, stop);
        else push(tokens, UNDERSCORE, index, stop, runFlags);
        index = stop;
        break;
      }
      case 0x28:
        push(tokens, OPEN_ROUND, index, index + 1, 0);
        index += 1;
        break;
      case 0x29:
        push(tokens, CLOSE_ROUND, index, index + 1, 0);
        index += 1;
        break;
      case 0x5b:
        push(tokens, OPEN_SQUARE, index, index + 1, 0);
        index += 1;
        break;
      case 0x5d:
        push(tokens, CLOSE_SQUARE, index, index + 1, 0);
        index += 1;
        break;
      case 0x7c:
        push(tokens, PIPE, index, index + 1, 0);
        index += 1;
        break;
      case 0x3a: {
        // `:\s*([+-]?[.\d]+)\s*\)` (A1111's weight) or a plain colon
        let cursor = index + 1;
        while (cursor < length && isPyWhitespace(text.charCodeAt(cursor))) cursor += 1;
        const numberStart = cursor;
        const sign = text.charCodeAt(cursor);
        if (sign === 0x2b || sign === 0x2d) cursor += 1;
        const digitsStart = cursor;
        while (cursor < length) {
          const next = text.codePointAt(cursor)!;
          if (next === 0x2e || isPyDigit(next)) cursor += next > 0xffff ? 2 : 1;
          else break;
        }
        const numberEnd = cursor;
        while (cursor < length && isPyWhitespace(text.charCodeAt(cursor))) cursor += 1;
        push(tokens, COLON, index, index + 1, 0);
        if (numberEnd > digitsStart && text.charCodeAt(cursor) === 0x29) {
          // The colon stays its own token: when this `)` closes nothing, it is an ordinary colon.
          push(tokens, WEIGHT_CLOSE, index + 1, cursor + 1, 0);
          tokens.aux[tokens.count - 1] = numberStart;
          tokens.aux2[tokens.count - 1] = numberEnd;
          index = cursor + 1;
        } else {
          index += 1;
        }
        break;
      }
      case 0x3c: {
        // A1111's `<(\w+):([^>]+)>`
        let cursor = index + 1;
        while (cursor < length) {
          const next = text.codePointAt(cursor)!;
          if (!isPyWordChar(next)) break;
          cursor += next > 0xffff ? 2 : 1;
        }
        let matched = false;
        if (cursor > index + 1 && text.charCodeAt(cursor) === 0x3a) {
          // Scanning moves forward only, so one remembered `>` keeps this linear on hostile input.
          if (nextGreater !== length && nextGreater < cursor + 2) {
            nextGreater = text.indexOf('>', cursor + 2);
            if (nextGreater < 0) nextGreater = length;
          }
          if (nextGreater < length) {
            push(tokens, NETWORK, index, nextGreater + 1, 0);
            index = nextGreater + 1;
            matched = true;
          }
        }
        if (!matched) {
          pushText(tokens, index, index + 1);
          index += 1;
        }
        break;
      }
      default: {
        // B: the BREAK keyword, a whole word in Python's Unicode `\b` sense
        if (
          text.startsWith('BREAK', index) &&
          !isPyWordChar(codePointBefore(text, index)) &&
          !isPyWordChar(codePointAt(text, index + 5))
        ) {
          push(tokens, BREAK, index, index + 5, 0);
          index += 5;
        } else {
          pushText(tokens, index, index + 1);
          index += 1;
        }
      }
    }
  }
}

/**
 * Whether Python's `float()` reads a `[+-]?[.\d]+` weight: with only a sign, dots and digits in it,
 * that is exactly when it has at most one dot and at least one digit.
 */
function isReadableWeight(text: string, from: number, to: number): boolean {
  let dots = 0;
  let digits = 0;
  for (let index = from; index < to; index += 1) {
    const code = text.charCodeAt(index);
    if (code === 0x2e) dots += 1;
    else if (code !== 0x2b && code !== 0x2d) digits += 1;
  }
  return dots <= 1 && digits > 0;
}

/** `( ) [ ] \ * _ |`: the characters a backslash escapes. */
function isEscapable(code: number): boolean {
  return (
    code === 0x28 ||
    code === 0x29 ||
    code === 0x5b ||
    code === 0x5d ||
    code === 0x5c ||
    code === 0x2a ||
    code === 0x5f ||
    code === 0x7c
  );
}

// `_` opens after the start, whitespace or punctuation that begins a tag, before content;
// it closes after content, before the end, whitespace or punctuation that ends a tag.
function opensAfter(code: number): boolean {
  return (
    code < 0 ||
    isPyWhitespace(code) ||
    code === 0x2c ||
    code === 0x28 ||
    code === 0x5b ||
    code === 0x7c ||
    code === 0x3a ||
    code === 0x2a
  );
}
function closesBefore(code: number): boolean {
  return (
    code < 0 ||
    isPyWhitespace(code) ||
    code === 0x2c ||
    code === 0x29 ||
    code === 0x5d ||
    code === 0x7c ||
    code === 0x3a ||
    code === 0x2a
  );
}
function isContentAfterOpener(code: number): boolean {
  return !closesBefore(code) && code !== 0x5f;
}
function isContentBeforeCloser(code: number): boolean {
  return !opensAfter(code) && code !== 0x5f;
}

function pairBrackets(text: string, tokens: Tokens, diagnostics: Diagnostic[] | undefined): void {
  const { count, kind, flags, start, end, link, aux, aux2 } = tokens;
  const open: number[] = [];
  for (let index = 0; index < count; index += 1) {
    const tokenKind = kind[index]!;
    if (tokenKind === OPEN_ROUND || tokenKind === OPEN_SQUARE) {
      if (open.length >= MAX_NESTING_DEPTH) {
        report(
          diagnostics,
          'too-deep',
          'warning',
          start[index]!,
          end[index]!,
          `Bracket at ${start[index]} is nested more than ${MAX_NESTING_DEPTH} levels deep; it is kept as literal text.`,
        );
      } else {
        open.push(index);
      }
    } else if (tokenKind === CLOSE_ROUND || tokenKind === WEIGHT_CLOSE || tokenKind === CLOSE_SQUARE) {
      const top = open.length > 0 ? open[open.length - 1]! : -1;
      const wanted = tokenKind === CLOSE_SQUARE ? OPEN_SQUARE : OPEN_ROUND;
      if (top >= 0 && kind[top] === wanted) {
        open.pop();
        link[top] = index;
        link[index] = top;
        if (tokenKind === WEIGHT_CLOSE && !isReadableWeight(text, aux[index]!, aux2[index]!)) {
          flags[index]! |= INVALID;
          report(
            diagnostics,
            'invalid-weight',
            'error',
            aux[index]!,
            aux2[index]!,
            `Weight "${text.slice(aux[index]!, aux2[index]!)}" at ${aux[index]} is not a number: A1111 fails on it (Python float() raises ValueError). Write a number such as 1.2.`,
          );
        }
      } else {
        const bracket = end[index]! - 1;
        report(
          diagnostics,
          'unbalanced-bracket',
          'warning',
          bracket,
          bracket + 1,
          `"${text[bracket]}" at ${bracket} closes nothing; it is kept as literal text. Remove it or escape it as "\\${text[bracket]}".`,
        );
      }
    }
  }
  for (const index of open) {
    report(
      diagnostics,
      'unbalanced-bracket',
      'warning',
      start[index]!,
      end[index]!,
      `"${text[start[index]!]}" at ${start[index]} is never closed; it is kept as literal text (A1111 would weight everything after it). Close it or escape it as "\\${text[start[index]!]}".`,
    );
  }
}

interface Frame {
  opener: number;
  emphasisBase: number;
  separators: number[];
  lastSeparator: number;
  crossing: boolean;
}

function pairEmphasis(text: string, tokens: Tokens, diagnostics: Diagnostic[] | undefined): void {
  const { count, kind, flags, start, end, link } = tokens;
  const frames: Frame[] = [
    { opener: -1, emphasisBase: 0, separators: [], lastSeparator: -1, crossing: false },
  ];
  const emphasis: number[] = [];
  let tooDeepReported = false;
  let underscoreOpeners = 0; // on the stack or already dropped from it; recounted at each comma

  for (let index = 0; index < count; index += 1) {
    const tokenKind = kind[index]!;
    if (tokenKind === STAR || tokenKind === UNDERSCORE) {
      const tokenFlags = flags[index]!;
      if (tokenFlags === 0) continue;
      const frame = frames[frames.length - 1]!;
      if (tokenFlags & TRIPLE) {
        // `***` right after an open `*…` closes the italic first; otherwise bold comes first (outer
        // when opening, inner when closing `**…`). Only what is open decides, never the spacing.
        const top = emphasis.length > frame.emphasisBase ? emphasis[emphasis.length - 1]! : -1;
        const italicFirst =
          (tokenFlags & CAN_CLOSE) !== 0 && top >= 0 && kind[top] === STAR && end[top]! - start[top]! === 1;
        const split = start[index]! + (italicFirst ? 1 : 2);
        end[index] = split;
        start[index + 1] = split;
      }
      const size = end[index]! - start[index]!;
      let partner = -1;
      if (tokenFlags & CAN_CLOSE) {
        for (let position = emphasis.length - 1; position >= frame.emphasisBase; position -= 1) {
          const candidate = emphasis[position]!;
          if (kind[candidate] === tokenKind && end[candidate]! - start[candidate]! === size) {
            partner = position;
            break;
          }
        }
      }
      if (partner >= 0) {
        const opener = emphasis[partner]!;
        emphasis.length = partner; // openers above the partner stay literal
        link[opener] = index;
        link[index] = opener;
        if (frame.lastSeparator > opener) frame.crossing = true;
      } else if (tokenFlags & CAN_OPEN) {
        if (frames.length - 1 + emphasis.length < MAX_NESTING_DEPTH) {
          emphasis.push(index);
          if (tokenKind === UNDERSCORE) underscoreOpeners += 1;
        } else if (!tooDeepReported) {
          tooDeepReported = true;
          report(
            diagnostics,
            'too-deep',
            'warning',
            start[index]!,
            end[index]!,
            `Marker at ${start[index]} is nested more than ${MAX_NESTING_DEPTH} levels deep; it is kept as literal text.`,
          );
        }
      }
    } else if (tokenKind === COMMA) {
      // `_`/`__` are aliases only where unambiguous: never across a tag boundary (`_private, x_`).
      if (underscoreOpeners > 0) {
        underscoreOpeners = 0;
        for (const frame of frames) {
          let base = 0;
          for (let position = 0; position < frame.emphasisBase; position += 1) {
            if (kind[emphasis[position]!] !== UNDERSCORE) base += 1;
          }
          frame.emphasisBase = base;
        }
        let kept = 0;
        for (const opener of emphasis) if (kind[opener] !== UNDERSCORE) emphasis[kept++] = opener;
        emphasis.length = kept;
      }
    } else if (tokenKind === COLON || tokenKind === PIPE) {
      const frame = frames[frames.length - 1]!;
      if (frame.opener >= 0 && kind[frame.opener] === OPEN_SQUARE) {
        frame.separators.push(index);
        frame.lastSeparator = index;
      }
    } else if (link[index]! > index) {
      // a paired bracket opens
      frames.push({
        opener: index,
        emphasisBase: emphasis.length,
        separators: [],
        lastSeparator: -1,
        crossing: false,
      });
    } else if (
      link[index]! >= 0 &&
      (tokenKind === CLOSE_ROUND || tokenKind === CLOSE_SQUARE || tokenKind === WEIGHT_CLOSE)
    ) {
      const frame = frames.pop()!;
      emphasis.length = frame.emphasisBase;
      if (tokenKind === CLOSE_SQUARE && frame.separators.length > 0) {
        classifySquare(text, tokens, frame, index, diagnostics);
      }
    }
  }

  if (diagnostics !== undefined) {
    for (let index = 0; index < count; index += 1) {
      if (kind[index] === STAR && link[index] === -1) {
        const marker = text.slice(start[index]!, end[index]!);
        report(
          diagnostics,
          'unbalanced-emphasis',
          'warning',
          start[index]!,
          end[index]!,
          `"${marker}" at ${start[index]} has no partner; it is kept as literal text. Close the emphasis or escape it as "${'\\*'.repeat(marker.length)}".`,
        );
      }
    }
  }
}

/** Decides whether a `[…]` with top-level `:` or `|` is prompt editing, alternation or plain `[x]`. */
function classifySquare(
  text: string,
  tokens: Tokens,
  frame: Frame,
  close: number,
  diagnostics: Diagnostic[] | undefined,
): void {
  const { kind, flags, start, end, link, aux, aux2 } = tokens;
  const separators = frame.separators;
  let colons = 0;
  for (const separator of separators) if (kind[separator] === COLON) colons += 1;
  const pipes = separators.length - colons;
  let resolved = 0;
  if (!frame.crossing) {
    if (colons === 0) resolved = ALTERNATION;
    else if (
      pipes === 0 &&
      colons <= 2 &&
      WHEN_NUMBER.test(text.slice(end[separators[colons - 1]!]!, start[close]!))
    )
      resolved = EDIT;
  }
  if (resolved === 0) {
    report(
      diagnostics,
      'ambiguous-brackets',
      'warning',
      start[frame.opener]!,
      end[close]!,
      `"[…]" at ${start[frame.opener]} holds ":" or "|" but is neither [from:to:when] nor [a|b]; A1111 reads it as de-emphasised text. Escape "|" as "\\|" or fix the syntax.`,
    );
    return;
  }
  flags[frame.opener]! |= resolved;
  aux[frame.opener] = separators[0]!;
  aux2[frame.opener] = separators.length > 1 ? separators[1]! : -1;
  for (const separator of separators) link[separator] = frame.opener;
}

function report(
  diagnostics: Diagnostic[] | undefined,
  code: DiagnosticCode,
  severity: Severity,
  from: number,
  to: number,
  message: string,
): void {
  diagnostics?.push({ code, severity, message, span: [from, to] });
}

/** A COLON that belongs to the paired, readable `:weight)` after it rather than to the text. */
export function isWeightColon(tokens: Tokens, index: number): boolean {
  const next = index + 1;
  return (
    next < tokens.count &&
    tokens.kind[next] === WEIGHT_CLOSE &&
    tokens.link[next]! >= 0 &&
    !(tokens.flags[next]! & INVALID)
  );
}
