import { parse } from './parse.ts';
import { trimPy } from './python.ts';
import { writeMarkup } from './render.ts';
import { splitTags, type TagUnit } from './tags.ts';
import type { Document, TagRole } from './types.ts';
import { CaptionWriter } from './writer.ts';

export interface FormatOptions {
  /**
   * Reorder tags: `core` first, then `plain`, then `mood`, each group in its original order (within
   * each `BREAK`-separated chunk). Emphasis or attention spanning several tags is split per tag.
   */
  sort?: boolean;
  /** Split emphasis or attention spanning several tags per tag, keeping the order (`sort` does too). */
  split?: boolean;
}

const SORT_RANK: Record<TagRole, number> = { core: 0, plain: 1, mood: 2 };

/**
 * Canonical text: one space after each comma, none before, whitespace runs collapsed, empty tags
 * dropped, markers that do not pair escaped (`\*`, `\(`…) so the result parses as it reads.
 * A caption already in this form comes back unchanged.
 *
 * @example
 * format('*moody* ,**city**,,rain') // '*moody*, **city**, rain'
 * format('*moody* ,**city**,,rain', { sort: true }) // '**city**, rain, *moody*'
 * format('**city, rain**, *moody*', { split: true }) // '**city**, **rain**, *moody*'
 */
export function format(input: string | Document, options: FormatOptions = {}): string {
  const document = typeof input === 'string' ? parse(input) : input;
  const writer = new CaptionWriter();
  if (!options.sort && !options.split) {
    writeMarkup(document.children, writer);
    return writer.finish();
  }
  let chunk: TagUnit[] = [];
  let firstChunk = true;
  const flush = (): void => {
    if (!firstChunk) {
      writer.space();
      writer.word('BREAK');
      writer.space();
    }
    firstChunk = false;
    if (options.sort) chunk.sort((a, b) => SORT_RANK[a.role] - SORT_RANK[b.role]);
    chunk.forEach((unit, index) => {
      if (index > 0) writer.comma();
      writeMarkup(unit.nodes, writer);
    });
    chunk = [];
  };
  for (const unit of splitTags(document)) {
    if (!isBlank(unit)) chunk.push(unit);
    if (unit.endsAtBreak) flush();
  }
  flush();
  return writer.finish();
}

function isBlank(unit: TagUnit): boolean {
  return unit.nodes.every((node) => node.type === 'text' && trimPy(node.value) === '');
}
