import { CaptionMarkupError } from './errors.ts';
import { parse } from './parse.ts';
import { isPyWhitespace } from './python.ts';
import { extractTags, hasWords, splitTags, unitText } from './tags.ts';
import type { InlineNode, Span } from './types.ts';

export interface TagEditResult {
  /** The caption after the edit (the input itself when nothing matched). */
  text: string;
  /** Tags changed. */
  changed: number;
  /**
   * Tags that matched but were left as they are: their words are not one run of text inside
   * their markup (`neon **city**`, `[cat|dog]`, a `<lora:…>` between words), so no edit keeps
   * the markup intact.
   */
  skipped: number;
}

/** Characters that mean markup inside a tag, escaped so a new tag name reads as plain words. */
const MARKUP_CHARACTERS = /[\\()[\]*|]/g;

/** `name (series)` → `name \(series\)`; a `_` at an edge would open emphasis, so it is escaped too. */
function escapeWords(words: string): string {
  return words.replace(MARKUP_CHARACTERS, (character) => `\\${character}`).replace(/^_|_$/g, '\\_');
}

/**
 * The words of a tag as one run of text and escape leaves inside any emphasis or attention
 * around them, or undefined when they are not one run.
 */
function wordRun(nodes: readonly InlineNode[], source: string): Span | undefined {
  const indices = nodes.flatMap((node, index) => (hasWords([node]) ? [index] : []));
  if (indices.length === 0) return undefined;
  const first = indices[0]!;
  const last = indices[indices.length - 1]!;
  const only = nodes[first]!;
  if (first === last && (only.type === 'emphasis' || only.type === 'attention')) {
    return wordRun(only.children, source);
  }
  const run = nodes.slice(first, last + 1);
  if (!run.every((node) => node.type === 'text' || node.type === 'escape')) return undefined;
  let [start, end] = [run[0]!.span[0], run[run.length - 1]!.span[1]];
  while (start < end && isPyWhitespace(source.charCodeAt(start))) start += 1;
  while (end > start && isPyWhitespace(source.charCodeAt(end - 1))) end -= 1;
  return [start, end];
}

/**
 * Renames every tag whose words are `from` (case-insensitive, as `tagFrequency` counts them) to
 * `to`, keeping the markup around it: `**neon city**` → `**neon town**`, `(neon city:1.2)` →
 * `(neon town:1.2)`. `to` is written as plain words (brackets and stars escaped); it must be one
 * tag, so a comma, `BREAK` or `<lora:…>` in it throws `E_INVALID_OPTION`.
 */
export function renameTag(text: string, from: string, to: string): TagEditResult {
  const words = to.trim().replace(/\s+/g, ' ');
  const replacement = escapeWords(words);
  const check = parse(replacement);
  const tags = extractTags(replacement);
  if (
    words === '' ||
    tags.length !== 1 ||
    tags[0]!.text !== words ||
    check.children.some((node) => node.type === 'break' || node.type === 'extraNetwork')
  ) {
    throw new CaptionMarkupError(
      'E_INVALID_OPTION',
      `"${to}" is not one tag: a new tag name needs words and no comma, BREAK or <…> network.`,
    );
  }
  const wanted = from.trim().toLowerCase();
  const document = parse(text);
  const edits: Span[] = [];
  let skipped = 0;
  for (const unit of splitTags(document)) {
    if (unitText(unit).toLowerCase() !== wanted) continue;
    const run = wordRun(unit.nodes, text);
    if (run === undefined) skipped += 1;
    else edits.push(run);
  }
  let result = text;
  for (const [start, end] of edits.reverse())
    result = result.slice(0, start) + replacement + result.slice(end);
  return { text: result, changed: edits.length, skipped };
}
