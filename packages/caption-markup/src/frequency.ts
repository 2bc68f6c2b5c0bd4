import { extractTags } from './tags.ts';
import type { TagRole } from './types.ts';

export interface TagFrequency {
  /** Occurrences of each tag over all captions, in first-seen order: kohya's `ss_tag_frequency` for one folder. */
  counts: Record<string, number>;
  /** The same counts split by the role each occurrence had. */
  byRole: Record<TagRole, Record<string, number>>;
}

export interface TagFrequencyOptions {
  /** Count tags lower-cased, as kohya does. Default true. */
  lowercase?: boolean;
}

/**
 * Counts tags over many captions: every occurrence counts (kohya's `set_tag_frequency`: comma tags,
 * stripped, lower-cased, empty ones skipped), with markup removed first. The records have no
 * prototype, so tags such as `constructor` or `__proto__` are plain keys.
 *
 * @example
 * tagFrequency(['**Cat**, sky', 'cat, *sky*']).counts // { cat: 2, sky: 2 }
 */
export function tagFrequency(captions: Iterable<string>, options: TagFrequencyOptions = {}): TagFrequency {
  const lowercase = options.lowercase ?? true;
  const counts: Record<string, number> = Object.create(null);
  const byRole: Record<TagRole, Record<string, number>> = {
    core: Object.create(null),
    mood: Object.create(null),
    plain: Object.create(null),
  };
  for (const caption of captions) {
    for (const tag of extractTags(caption, { lowercase })) {
      counts[tag.text] = (counts[tag.text] ?? 0) + 1;
      const roleCounts = byRole[tag.role];
      roleCounts[tag.text] = (roleCounts[tag.text] ?? 0) + 1;
    }
  }
  return { counts, byRole };
}
