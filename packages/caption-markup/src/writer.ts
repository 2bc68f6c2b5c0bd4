import { isPyWhitespace } from './python.ts';

const NOTHING = 0;
const WORD = 1;
const COMMA = 2;
const OPENER = 3;

/**
 * Builds normalised caption text: whitespace runs become one space, no space before a comma or a
 * closing marker, one space after a comma, none just inside an opening marker, no empty tags, no
 * leading or trailing commas or spaces.
 */
export class CaptionWriter {
  private out = '';
  private pendingSpace = false;
  private last = NOTHING;

  /** Text without whitespace. */
  word(value: string): void {
    if (this.pendingSpace) this.out += ' ';
    this.out += value;
    this.pendingSpace = false;
    this.last = WORD;
  }

  space(): void {
    if (this.last === WORD) this.pendingSpace = true;
  }

  comma(): void {
    if (this.last === NOTHING || this.last === COMMA) return; // an empty tag
    this.out += ',';
    this.pendingSpace = true;
    this.last = COMMA;
  }

  /** An opening marker: spaced like a word, nothing spaced after it. */
  open(marker: string): void {
    this.word(marker);
    this.last = OPENER;
  }

  /** A closing marker: glued to what precedes it. */
  close(marker: string): void {
    this.dropSpace();
    this.out += marker;
    this.last = WORD;
  }

  /** `:` / `|` inside `[…]`: glued on both sides. */
  separator(marker: string): void {
    this.dropSpace();
    this.out += marker;
    this.last = OPENER;
  }

  /** Arbitrary text: split into words and spaces. */
  text(value: string): void {
    let wordStart = -1;
    for (let index = 0; index < value.length; index += 1) {
      if (isPyWhitespace(value.charCodeAt(index))) {
        if (wordStart >= 0) this.word(value.slice(wordStart, index));
        wordStart = -1;
        this.space();
      } else if (wordStart < 0) {
        wordStart = index;
      }
    }
    if (wordStart >= 0) this.word(value.slice(wordStart));
  }

  finish(): string {
    return this.last === COMMA ? this.out.slice(0, -1) : this.out;
  }

  private dropSpace(): void {
    // Keep the space after a trailing backslash: without it `a\ )` would turn into the escape `\)`.
    if (this.pendingSpace && this.last === WORD && this.out.endsWith('\\')) this.out += ' ';
    this.pendingSpace = false;
  }
}
