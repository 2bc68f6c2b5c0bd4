import { CaptionMarkupError } from './errors.ts';
import { parse } from './parse.ts';
import { writeStripped } from './render.ts';
import { stripMarkup } from './strip.ts';
import { splitTags } from './tags.ts';
import type { TagRole } from './types.ts';
import { CaptionWriter } from './writer.ts';

/** kohya-ss sd-scripts caption options (`shuffle_caption`, `keep_tokens`, …) in camelCase. */
export interface AugmentOptions {
  /** Shuffle the tags that are not fixed (kohya `shuffle_caption`). Default false. */
  shuffle?: boolean;
  /** Keep the first N non-core tags in place (kohya `keep_tokens`; tags, not tokenizer tokens). Default 0. */
  keepTokens?: number;
  /**
   * Text that splits the caption into fixed | shuffled | fixed suffix parts (kohya
   * `keep_tokens_separator`, e.g. `|||`); when the caption contains it, `keepTokens` is ignored.
   */
  keepTokensSeparator?: string;
  /** Probability of dropping each shuffled tag (kohya `caption_tag_dropout_rate`). Default 0. */
  tagDropout?: number;
  /** Probability of returning an empty caption (kohya `caption_dropout_rate`). Default 0. */
  captionDropout?: number;
  /** Prepended with a space, before anything else (kohya `caption_prefix`). */
  prefix?: string;
  /** Appended with a space, before anything else (kohya `caption_suffix`). */
  suffix?: string;
}

interface RenderedTag {
  text: string;
  role: TagRole;
}

/**
 * kohya's `process_caption` for one training step, aware of the markup: core (bold) tags are never
 * shuffled or dropped and lead the caption in their original order; then come the first `keepTokens`
 * other tags (or the part before `keepTokensSeparator`), then the shuffled, dropped-out rest, then the
 * part after a second separator. Returns the text the tokenizer gets (as `stripMarkup` writes it);
 * A1111 attention is kept per tag, so `(a, b:1.2)` becomes `(a:1.2), (b:1.2)` and survives shuffling.
 * Empty tags are dropped. Randomness comes only from `rng` (floats in [0, 1)), in kohya's order:
 * caption dropout, shuffle (Fisher–Yates from the end), then one draw per tag for tag dropout.
 *
 * @throws {CaptionMarkupError} `E_INVALID_OPTION` for rates outside [0, 1] or a bad `keepTokens`.
 * @example
 * augment('**sks dog**, grass, sky, *sunny*', { shuffle: true }, seededRng) // e.g. 'sks dog, sunny, grass, sky'
 */
export function augment(caption: string, options: AugmentOptions, rng: () => number): string {
  const {
    shuffle = false,
    keepTokens = 0,
    keepTokensSeparator = '',
    tagDropout = 0,
    captionDropout = 0,
  } = options;
  checkRate('tagDropout', tagDropout);
  checkRate('captionDropout', captionDropout);
  if (!Number.isInteger(keepTokens) || keepTokens < 0) {
    throw new CaptionMarkupError(
      'E_INVALID_OPTION',
      `augment: keepTokens must be a whole number ≥ 0, got ${keepTokens}.`,
    );
  }

  let text = caption;
  if (options.prefix) text = `${options.prefix} ${text}`;
  if (options.suffix) text = `${text} ${options.suffix}`;
  if (captionDropout > 0 && rng() < captionDropout) return '';
  if (!shuffle && !(tagDropout > 0)) return stripMarkup(text);

  let fixed: RenderedTag[];
  let flex: RenderedTag[];
  let fixedSuffix: RenderedTag[] = [];
  const separatorAt = keepTokensSeparator === '' ? -1 : text.indexOf(keepTokensSeparator);
  if (separatorAt >= 0) {
    fixed = renderTags(text.slice(0, separatorAt));
    let flexPart = text.slice(separatorAt + keepTokensSeparator.length);
    const suffixAt = flexPart.indexOf(keepTokensSeparator);
    if (suffixAt >= 0) {
      fixedSuffix = renderTags(flexPart.slice(suffixAt + keepTokensSeparator.length));
      flexPart = flexPart.slice(0, suffixAt);
    }
    flex = renderTags(flexPart);
  } else {
    flex = renderTags(text);
    fixed = [];
  }

  const core = [...fixed, ...flex, ...fixedSuffix].filter((tag) => tag.role === 'core');
  fixed = fixed.filter((tag) => tag.role !== 'core');
  flex = flex.filter((tag) => tag.role !== 'core');
  fixedSuffix = fixedSuffix.filter((tag) => tag.role !== 'core');
  if (separatorAt < 0 && keepTokens > 0) {
    fixed = flex.slice(0, keepTokens);
    flex = flex.slice(keepTokens);
  }
  if (shuffle) {
    for (let index = flex.length - 1; index > 0; index -= 1) {
      const other = Math.floor(rng() * (index + 1));
      const swap = flex[index]!;
      flex[index] = flex[other]!;
      flex[other] = swap;
    }
  }
  if (tagDropout > 0) flex = flex.filter(() => rng() >= tagDropout);
  return [...core, ...fixed, ...flex, ...fixedSuffix].map((tag) => tag.text).join(', ');
}

function renderTags(text: string): RenderedTag[] {
  const tags: RenderedTag[] = [];
  for (const unit of splitTags(parse(text))) {
    const writer = new CaptionWriter();
    writeStripped(unit.nodes, writer, true);
    const rendered = writer.finish();
    if (rendered !== '') tags.push({ text: rendered, role: unit.role });
  }
  return tags;
}

function checkRate(name: string, value: number): void {
  if (!(value >= 0 && value <= 1)) {
    throw new CaptionMarkupError(
      'E_INVALID_OPTION',
      `augment: ${name} must be a probability between 0 and 1, got ${value}.`,
    );
  }
}
