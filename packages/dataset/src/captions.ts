import {
  type AugmentOptions,
  augment,
  lint,
  stripMarkup,
  type TagFrequency,
  tagFrequency,
} from '@lora/caption-markup';
import { DatasetError } from './errors.ts';
import type { FindingSeverity } from './findings.ts';
import type { Rng } from './rng.ts';

/** kohya's caption options (shuffle, keep tokens, dropout, prefix / suffix), markup-aware. */
export type CaptionOptions = AugmentOptions;

/**
 * Caption lint from @lora/caption-markup as report findings. A lint "error" (say an unbalanced
 * bracket) does not stop the image being trained, so it is reported as a warning here, where
 * "error" means "skipped".
 */
export function lintCaption(
  caption: string,
): { severity: FindingSeverity; message: string; span: [number, number] }[] {
  return lint(caption).map((diagnostic) => ({
    severity: diagnostic.severity === 'info' ? 'info' : 'warning',
    message: `${diagnostic.code}: ${diagnostic.message}`,
    span: diagnostic.span,
  }));
}

/** Fails now, with a dataset error, on options `augment` would reject at the first batch. */
export function checkCaptionOptions(options: CaptionOptions): void {
  try {
    augment('', options, () => 0);
  } catch (error) {
    throw new DatasetError('INVALID_OPTIONS', `Caption options: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** The text the tokenizer sees for one sample: augmented with `rng` when options are given, markup stripped. */
export function processCaption(caption: string, options: CaptionOptions | undefined, rng: Rng): string {
  return options ? augment(caption, options, () => rng.next()) : stripMarkup(caption);
}

/**
 * Tag counts per dataset folder: kohya's `ss_tag_frequency` (`counts`, one count per image, not
 * per repeat, markup stripped, lower-cased) plus the split by role (core, mood, plain) for `lora tags`.
 */
export function datasetTagFrequency(
  images: Iterable<{ readonly dataset: string; readonly caption: string | null }>,
): Record<string, TagFrequency> {
  const captions = new Map<string, string[]>();
  for (const image of images) {
    if (image.caption === null) continue;
    const list = captions.get(image.dataset) ?? [];
    list.push(image.caption);
    captions.set(image.dataset, list);
  }
  return Object.fromEntries([...captions].map(([dataset, list]) => [dataset, tagFrequency(list)]));
}
