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
  const seen = new Map<string, number>();
  const out: { severity: FindingSeverity; message: string; span: [number, number] }[] = [];
  for (const diagnostic of lint(caption)) {
    const count = (seen.get(diagnostic.code) ?? 0) + 1;
    seen.set(diagnostic.code, count);
    if (count > MAX_LINT_FINDINGS_PER_KIND) continue;
    out.push({
      severity: diagnostic.severity === 'info' ? 'info' : 'warning',
      message: `${diagnostic.code}: ${diagnostic.message}`,
      span: diagnostic.span,
    });
  }
  for (const [code, count] of seen) {
    if (count <= MAX_LINT_FINDINGS_PER_KIND) continue;
    const first = out.find((d) => d.message.startsWith(`${code}: `))!;
    out.push({
      severity: first.severity,
      message: `${code}: ${count - MAX_LINT_FINDINGS_PER_KIND} more in this caption (${count} in all; the first ${MAX_LINT_FINDINGS_PER_KIND} are listed)`,
      span: [0, caption.length],
    });
  }
  return out;
}

/**
 * Findings of one lint kind listed per caption: a huge caption with thousands of repeated tags
 * gets a few and a count, not a line per repeat.
 */
export const MAX_LINT_FINDINGS_PER_KIND = 3;

/** Fails now, with a dataset error, on options `augment` would reject at the first batch. */
export function checkCaptionOptions(options: CaptionOptions): void {
  try {
    augment('', options, () => 0);
  } catch (error) {
    throw new DatasetError('E_INVALID_OPTIONS', `Caption options: ${(error as Error).message}`, {
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
