import {
  ALTERNATION,
  BREAK,
  CLOSE_ROUND,
  CLOSE_SQUARE,
  COLON,
  COMMA,
  EDIT,
  ESCAPE,
  INVALID,
  isWeightColon,
  NETWORK,
  OPEN_ROUND,
  OPEN_SQUARE,
  PIPE,
  SPACE,
  STAR,
  scan,
  TEXT,
  UNDERSCORE,
  WEIGHT_CLOSE,
} from './scan.ts';
import { CaptionWriter } from './writer.ts';

export interface StripOptions {
  /**
   * `'keep'` (default): keep A1111 attention `(x)`, `(x:1.3)`, `[x]`, prompt editing, alternation,
   * `BREAK` and the A1111 escapes, so weighted captions still work. `'drop'`: keep only the words —
   * brackets and weights go (a bracket separates words, as A1111 tokenizes each bracketed piece on
   * its own: `x(y)` → `x y`), escapes are resolved, `[from:to:when]` keeps `to`, `[a|b]` keeps its
   * first option, `BREAK` becomes a comma.
   */
  attention?: 'keep' | 'drop';
}

/**
 * The caption the tokenizer gets: emphasis markers (`**`, `*`, `__`, `_`) removed, `\*` and `\_`
 * resolved, extra networks (`<lora:…>`) removed, whitespace and commas normalised (`a ,  b` →
 * `a, b`, empty tags dropped). Markers that do not pair stay as they are.
 *
 * @example
 * stripMarkup('**city at night**, *moody* ,  (rain:1.2) <lora:x:0.7>') // 'city at night, moody, (rain:1.2)'
 * stripMarkup('(rain:1.2), [fog]', { attention: 'drop' }) // 'rain, fog'
 */
export function stripMarkup(text: string, options: StripOptions = {}): string {
  const keep = options.attention !== 'drop';
  const tokens = scan(text);
  const { count, kind, flags, start, end, link, aux, aux2 } = tokens;
  const writer = new CaptionWriter();
  // Ranges of tokens to render before jumping past a `[from:to:when]` / `[a|b]` (drop mode).
  const stopAt: number[] = [];
  const resumeAt: number[] = [];
  let index = 0;
  while (index < count) {
    if (stopAt.length > 0 && index === stopAt[stopAt.length - 1]) {
      stopAt.pop();
      index = resumeAt.pop()!;
      writer.space();
      continue;
    }
    const tokenKind = kind[index]!;
    const partner = link[index]!;
    switch (tokenKind) {
      case TEXT:
        writer.word(text.slice(start[index]!, end[index]!));
        break;
      case SPACE:
        writer.space();
        break;
      case COMMA:
        writer.comma();
        break;
      case ESCAPE: {
        const escaped = text[start[index]! + 1]!;
        writer.word(
          keep && escaped !== '*' && escaped !== '_' ? text.slice(start[index]!, end[index]!) : escaped,
        );
        break;
      }
      case STAR:
      case UNDERSCORE:
        if (partner < 0) writer.word(text.slice(start[index]!, end[index]!));
        break;
      case NETWORK:
        break;
      case BREAK:
        if (keep) writer.word('BREAK');
        else writer.comma();
        break;
      case OPEN_ROUND:
      case OPEN_SQUARE:
        if (partner < 0) writer.word(text[start[index]!]!);
        else if (keep) writer.open(text[start[index]!]!);
        else if (flags[index]! & (EDIT | ALTERNATION)) {
          // Render only `to` (edit) or the first option (alternation), then continue after `]`.
          const second = aux2[index]!;
          const fromEdit = flags[index]! & EDIT && second >= 0;
          stopAt.push(fromEdit ? second : aux[index]!);
          resumeAt.push(partner + 1);
          index = fromEdit ? aux[index]! + 1 : index + 1;
          writer.space();
          continue;
        } else writer.space(); // A1111 tokenizes each bracketed piece on its own: a word boundary
        break;
      case CLOSE_ROUND:
      case CLOSE_SQUARE:
        if (partner < 0) writer.word(text[start[index]!]!);
        else if (keep) writer.close(text[start[index]!]!);
        else writer.space();
        break;
      case WEIGHT_CLOSE:
        if (partner < 0) writer.text(text.slice(start[index]!, end[index]!));
        else if (flags[index]! & INVALID) {
          writer.text(text.slice(start[index]!, end[index]! - 1)); // after its colon, already written
          if (keep) writer.close(')');
          else writer.space();
        } else if (keep) writer.close(`:${text.slice(aux[index]!, aux2[index]!)})`);
        else writer.space();
        break;
      case COLON:
      case PIPE:
        if (tokenKind === COLON && isWeightColon(tokens, index)) break; // written with its `weight)`
        if (partner >= 0) writer.separator(tokenKind === COLON ? ':' : '|');
        else writer.word(tokenKind === COLON ? ':' : '|');
        break;
    }
    index += 1;
  }
  return writer.finish();
}
