import { extractTags, type TagRole } from '@lora/caption-markup';
import type { ImageEntry } from './api.ts';

/** `any`, a tag role, or `none`: images without a caption. */
export type RoleFilter = 'any' | TagRole | 'none';

export interface TagCount {
  tag: string;
  count: number;
  /** The role it has most often. */
  role: TagRole;
}

/** Tags of a caption as the filter compares them: lower-cased words, with their role. */
export const tagsOf = (caption: string | null) =>
  caption === null ? [] : extractTags(caption, { lowercase: true });

/**
 * Whether an image passes the filters: with a tag, it has that tag (in that role, unless `any`);
 * without one, it has any tag of the role; `none` keeps the images with no caption.
 */
export function matches(image: ImageEntry, tag: string, role: RoleFilter): boolean {
  if (role === 'none') return image.caption === null || image.caption.trim() === '';
  if (tag === '' && role === 'any') return true;
  const wanted = tag.trim().toLowerCase();
  return tagsOf(image.caption).some(
    (candidate) =>
      (wanted === '' || candidate.text === wanted) && (role === 'any' || candidate.role === role),
  );
}

/** How many images use each tag (once per image), most used first, with the role it mostly has. */
export function countTags(images: readonly ImageEntry[]): TagCount[] {
  const counts = new Map<string, { count: number; roles: Record<TagRole, number> }>();
  for (const image of images) {
    const seen = new Set<string>();
    for (const { text, role } of tagsOf(image.caption)) {
      const entry = counts.get(text) ?? { count: 0, roles: { core: 0, mood: 0, plain: 0 } };
      entry.roles[role] += 1;
      if (!seen.has(text)) entry.count += 1;
      seen.add(text);
      counts.set(text, entry);
    }
  }
  return [...counts]
    .map(([tag, { count, roles }]) => ({
      tag,
      count,
      role: (Object.keys(roles) as TagRole[]).reduce((best, role) =>
        roles[role] > roles[best] ? role : best,
      ),
    }))
    .sort((a, b) => b.count - a.count || (a.tag < b.tag ? -1 : 1));
}
