import { stat } from 'node:fs/promises';
import { DatasetError, readCsvRecords } from '@lora/dataset';
import { LabelError } from './label-error.ts';

/**
 * Most tags read from a `selected_tags.csv`. WD14 lists hold about 10,000; a file far larger is
 * not a tag list, and every tag costs a score per image.
 */
export const MAX_TAGGER_TAGS = 100_000;

export type TagCategory = 'rating' | 'general' | 'character';

export interface TaggerTag {
  /** As the model's list spells it (`long_hair`, `^_^`). */
  readonly name: string;
  readonly category: TagCategory;
}

/** Danbooru category numbers used by WD14 lists; other categories count as general tags. */
const CATEGORIES: Readonly<Record<string, TagCategory>> = { '9': 'rating', '4': 'character' };

/** Tags whose underscores are part of the face (SmilingWolf's list); every other `_` is a space. */
const KAOMOJI = new Set([
  '0_0',
  '(o)_(o)',
  '+_+',
  '+_-',
  '._.',
  '<o>_<o>',
  '<|>_<|>',
  '=_=',
  '>_<',
  '3_3',
  '6_9',
  '>_o',
  '@_@',
  '^_^',
  'o_o',
  'u_u',
  'x_x',
  '|_|',
  '||_||',
]);

/** A tag as captions write it: `long_hair` → `long hair`, kaomoji such as `^_^` unchanged. */
export function tagText(name: string): string {
  return KAOMOJI.has(name) ? name : name.replaceAll('_', ' ');
}

/**
 * Reads a WD14 `selected_tags.csv` (`tag_id,name,category,count`; the `name` and `category`
 * columns are required, in any order). Category 9 is a rating, 4 a character, the rest general.
 * Row order is kept: it is the order of the model's output scores.
 */
export async function readTaggerTags(path: string): Promise<TaggerTag[]> {
  await stat(path).catch((error: unknown) => {
    throw new LabelError(
      'E_LABEL_FILE_NOT_FOUND',
      `tag list ${path} not found; pass the selected_tags.csv that came with the tagger model.`,
      { path, cause: error },
    );
  });
  const tags: TaggerTag[] = [];
  let nameColumn = -1;
  let categoryColumn = -1;
  const invalid = (line: number, why: string) =>
    new LabelError('E_LABEL_TAGS_INVALID', `${path}:${line}: ${why}`, { path });
  try {
    for await (const { fields, line } of readCsvRecords(path)) {
      if (nameColumn < 0) {
        const names = fields.map((field) => field.trim().toLowerCase());
        nameColumn = names.indexOf('name');
        categoryColumn = names.indexOf('category');
        if (nameColumn < 0 || categoryColumn < 0) {
          throw invalid(
            line,
            `the header needs "name" and "category" columns (WD14's is tag_id,name,category,count); found ${fields.join(',')}. Is this the tagger's selected_tags.csv?`,
          );
        }
        continue;
      }
      const name = fields[nameColumn]?.trim() ?? '';
      const category = fields[categoryColumn]?.trim() ?? '';
      if (name === '' || !/^\d+$/.test(category)) {
        throw invalid(line, `expected a tag name and a numeric category, got ${JSON.stringify(fields)}`);
      }
      if (tags.length === MAX_TAGGER_TAGS) {
        throw invalid(line, `more than MAX_TAGGER_TAGS (${MAX_TAGGER_TAGS}) tags; this is not a tag list`);
      }
      tags.push({ name, category: CATEGORIES[category] ?? 'general' });
    }
  } catch (error) {
    if (DatasetError.isInstance(error)) {
      throw new LabelError('E_LABEL_TAGS_INVALID', error.message, { path, cause: error });
    }
    throw error;
  }
  if (tags.length === 0) throw invalid(1, 'no tags listed');
  return tags;
}
