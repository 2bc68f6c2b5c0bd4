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

function split(
  ranked: readonly { text: string; mood: boolean; core?: boolean }[],
  coreTags: number,
  lead: readonly string[] = [],
): CaptionParts {
  const parts: CaptionParts = { core: [], plain: [...lead], mood: [] };
  const seen = new Set(lead);
  for (const { text, mood, core } of ranked) {
    if (seen.has(text)) continue;
    seen.add(text);
    if (mood) parts.mood.push(text);
    else if (core || parts.core.length < coreTags) parts.core.push(text);
    else parts.plain.push(text);
  }
  return parts;
}

/**
 * Roles for a tagger result: character tags and the `coreTags` most confident other content
 * tags are core, lighting and mood tags are mood, the rest plain; the rating first when asked.
 */
export function taggerCaptionParts(
  image: TaggedImage,
  options: { coreTags?: number; rating?: boolean } = {},
): CaptionParts {
  const characters = image.tags.filter((tag) => tag.category === 'character');
  const others = image.tags.filter((tag) => tag.category !== 'character');
  return split(
    [
      ...characters.map((tag) => ({ text: tag.text, mood: false, core: true })),
      ...others.map((tag) => ({ text: tag.text, mood: isMoodTag(tag.text) })),
    ],
    characters.length + (options.coreTags ?? DEFAULT_CORE_TAGS),
    options.rating && image.rating ? [image.rating.text] : [],
  );
}

/**
 * Roles for a CLIP ranking: phrases of the lighting and mood categories are mood; of the rest,
 * the `coreTags` best scoring are core and the others plain.
 */
export function clipCaptionParts(image: RankedImage, options: { coreTags?: number } = {}): CaptionParts {
  const phrases = Object.entries(image.categories)
    .flatMap(([category, list]) => list.map((entry) => ({ ...entry, mood: MOOD_CATEGORIES.has(category) })))
    .sort((a, b) => b.score - a.score);
  return split(
    phrases.map(({ phrase, mood }) => ({ text: phrase, mood })),
    options.coreTags ?? DEFAULT_CORE_TAGS,
  );
}
