import type { RankedImage } from './clip.ts';
import { MOOD_CATEGORIES } from './vocabulary.ts';
import type { TaggedImage } from './wd14.ts';

/**
 * A caption's tags by role, plain text without markup: `core` tags define the concept (captions
 * write them `**bold**`), `mood` tags the atmosphere (`*italic*`), `plain` the rest.
 */
export interface CaptionParts {
  readonly core: string[];
  readonly plain: string[];
  readonly mood: string[];
}

/** Non-mood tags with the highest confidence that become core tags, unless told otherwise. */
export const DEFAULT_CORE_TAGS = 3;

/** Last words of tags about light, weather or time of day: `neon lights`, `lens flare`, `sunset`. */
const MOOD_LAST_WORDS = new Set([
  'light',
  'lights',
  'lighting',
  'backlighting',
  'sunlight',
  'moonlight',
  'candlelight',
  'rays',
  'glow',
  'shadow',
  'shadows',
  'flare',
  'bokeh',
  'aberration',
  'silhouette',
  'atmosphere',
  'fog',
  'mist',
  'haze',
  'rain',
  'night',
  'sunset',
  'sunrise',
  'dusk',
  'dawn',
  'twilight',
  'evening',
  'darkness',
]);

/** Whole tags that name a mood. */
const MOOD_TAGS = new Set([
  'dark',
  'dramatic',
  'cinematic',
  'moody',
  'serene',
  'gloomy',
  'melancholy',
  'depth of field',
]);

/**
 * Whether a tagger tag describes lighting or mood rather than content. Judged by the tag's last
 * word, because the first is often a colour adjective: `light brown hair` and `dark skin` are
 * content, `neon lights` and `night` are mood.
 */
export function isMoodTag(text: string): boolean {
  const lower = text.toLowerCase();
  return MOOD_TAGS.has(lower) || MOOD_LAST_WORDS.has(lower.split(' ').at(-1) ?? '');
}

/** A tag the labeller proposes, with the role a caption gives it and the model's score. */
export interface ScoredTag {
  readonly text: string;
  readonly role: 'core' | 'mood' | 'plain';
  /** WD14: the tag's confidence, 0–1; CLIP: the phrase's cosine similarity to the image, −1–1. */
  readonly score: number;
}

/**
 * Roles in ranked order: `lead` first (plain), mood tags mood, tags marked core and then the best
 * others up to `coreTags` core, the rest plain; a text seen before is dropped.
 */
function assignRoles(
  ranked: readonly { text: string; score: number; mood: boolean; core?: boolean }[],
  coreTags: number,
  lead: readonly { text: string; score: number }[] = [],
): ScoredTag[] {
  const tags: ScoredTag[] = lead.map(({ text, score }) => ({ text, score, role: 'plain' }));
  const seen = new Set(lead.map(({ text }) => text));
  let core = 0;
  for (const { text, score, mood, core: isCore } of ranked) {
    if (seen.has(text)) continue;
    seen.add(text);
    const role = mood ? 'mood' : isCore || core < coreTags ? 'core' : 'plain';
    if (role === 'core') core++;
    tags.push({ text, score, role });
  }
  return tags;
}

/** A caption's parts from scored tags, each role in the tags' order. */
export function captionParts(tags: readonly ScoredTag[]): CaptionParts {
  const parts: CaptionParts = { core: [], plain: [], mood: [] };
  for (const { text, role } of tags) parts[role].push(text);
  return parts;
}

/**
 * Roles for a tagger result, with its confidences: character tags and the `coreTags` most
 * confident other content tags are core, lighting and mood tags are mood, the rest plain; the
 * rating first when asked.
 */
export function taggerTags(
  image: TaggedImage,
  options: { coreTags?: number; rating?: boolean } = {},
): ScoredTag[] {
  const characters = image.tags.filter((tag) => tag.category === 'character');
  const others = image.tags.filter((tag) => tag.category !== 'character');
  return assignRoles(
    [
      ...characters.map((tag) => ({ text: tag.text, score: tag.confidence, mood: false, core: true })),
      ...others.map((tag) => ({ text: tag.text, score: tag.confidence, mood: isMoodTag(tag.text) })),
    ],
    characters.length + (options.coreTags ?? DEFAULT_CORE_TAGS),
    options.rating && image.rating ? [{ text: image.rating.text, score: image.rating.confidence }] : [],
  );
}

/**
 * Roles for a CLIP ranking, with its similarities: phrases of the lighting and mood categories are
 * mood; of the rest, the `coreTags` best scoring are core and the others plain.
 */
export function clipTags(image: RankedImage, options: { coreTags?: number } = {}): ScoredTag[] {
  const phrases = Object.entries(image.categories)
    .flatMap(([category, list]) => list.map((entry) => ({ ...entry, mood: MOOD_CATEGORIES.has(category) })))
    .sort((a, b) => b.score - a.score);
  return assignRoles(
    phrases.map(({ phrase, score, mood }) => ({ text: phrase, score, mood })),
    options.coreTags ?? DEFAULT_CORE_TAGS,
  );
}
