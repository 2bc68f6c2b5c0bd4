import { readFile, stat } from 'node:fs/promises';
import { LabelError } from './label-error.ts';

/** Candidate phrases by category; CLIP ranks each category's phrases against every image. */
export type ClipVocabulary = Readonly<Record<string, readonly string[]>>;

/** Categories whose phrases describe atmosphere rather than content: captions mark them `*mood*`. */
export const MOOD_CATEGORIES: ReadonlySet<string> = new Set(['lighting', 'mood']);

/**
 * The bundled vocabulary: short, common style, medium, lighting and mood phrases in the manner
 * of CLIP Interrogator's `mediums.txt`/`movements.txt`/`flavors.txt`, small enough to encode in
 * seconds on a CPU.
 */
export const CLIP_VOCABULARY: ClipVocabulary = {
  style: [
    'anime',
    'manga',
    'cartoon',
    'comic book',
    'photorealistic',
    'hyperrealistic',
    'impressionism',
    'expressionism',
    'art nouveau',
    'art deco',
    'baroque',
    'surrealism',
    'minimalism',
    'pop art',
    'cyberpunk',
    'steampunk',
    'vaporwave',
    'synthwave',
    'fantasy art',
    'concept art',
    'pixel art',
    'low poly',
    'ukiyo-e',
    'gothic',
    'retro',
    'flat design',
  ],
  medium: [
    'photograph',
    'digital painting',
    'oil painting',
    'watercolor painting',
    'acrylic painting',
    'pencil sketch',
    'charcoal drawing',
    'ink drawing',
    'pastel drawing',
    '3d render',
    'vector illustration',
    'digital illustration',
    'linocut print',
    'screen print',
    'film photograph',
    'polaroid photograph',
    'studio portrait',
    'matte painting',
    'collage',
    'mosaic',
  ],
  lighting: [
    'bright daylight',
    'golden hour',
    'blue hour',
    'soft lighting',
    'dramatic lighting',
    'cinematic lighting',
    'studio lighting',
    'rim lighting',
    'backlighting',
    'neon lighting',
    'candlelight',
    'moonlight',
    'volumetric lighting',
    'harsh shadows',
    'low key lighting',
    'high key lighting',
    'warm light',
    'cool light',
    'dim lighting',
    'overcast light',
  ],
  mood: [
    'serene',
    'peaceful',
    'melancholic',
    'nostalgic',
    'dreamy',
    'mysterious',
    'ominous',
    'dark and moody',
    'whimsical',
    'joyful',
    'romantic',
    'lonely',
    'epic',
    'tense',
    'cozy',
    'ethereal',
    'gloomy',
    'vibrant',
    'calm',
    'eerie',
  ],
};

/**
 * Largest vocabulary file read. CLIP Interrogator's biggest list (flavors, 100k phrases) is about
 * 2 MB; each phrase costs one text-encoder pass, so far bigger files are mistakes.
 */
export const MAX_VOCABULARY_BYTES = 8 * 1024 * 1024;

/** Most phrases in one vocabulary: 100k phrases already take minutes to encode on a CPU. */
export const MAX_VOCABULARY_PHRASES = 100_000;

/**
 * Reads a vocabulary file: one phrase per line under `[category]` headers (phrases before the
 * first header go to `general`); blank lines and lines starting with `#` are skipped.
 *
 * ```text
 * [style]
 * anime
 * [lighting]
 * neon lighting
 * ```
 */
export async function readVocabulary(path: string): Promise<ClipVocabulary> {
  const info = await stat(path).catch((error: unknown) => {
    throw new LabelError('E_LABEL_FILE_NOT_FOUND', `vocabulary ${path} not found; check the path.`, {
      path,
      cause: error,
    });
  });
  if (info.size > MAX_VOCABULARY_BYTES) {
    throw new LabelError(
      'E_LABEL_VOCABULARY_INVALID',
      `${path} is ${info.size} bytes, above MAX_VOCABULARY_BYTES (${MAX_VOCABULARY_BYTES}); split it or keep the phrases that matter.`,
      { path },
    );
  }
  const categories = new Map<string, Set<string>>();
  let category = 'general';
  let count = 0;
  for (const [index, raw] of (await readFile(path, 'utf8')).split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      category = header[1]!.trim().toLowerCase();
      continue;
    }
    if (++count > MAX_VOCABULARY_PHRASES) {
      throw new LabelError(
        'E_LABEL_VOCABULARY_INVALID',
        `${path}:${index + 1}: more than MAX_VOCABULARY_PHRASES (${MAX_VOCABULARY_PHRASES}) phrases.`,
        { path },
      );
    }
    const phrases = categories.get(category) ?? new Set();
    categories.set(category, phrases.add(line));
  }
  if (count === 0) {
    throw new LabelError(
      'E_LABEL_VOCABULARY_INVALID',
      `${path} lists no phrases; write one per line under [category] headers, e.g. "[style]" then "anime".`,
      { path },
    );
  }
  return Object.fromEntries([...categories].map(([name, phrases]) => [name, [...phrases]]));
}
