import { format } from '@lora/caption-markup';
import { CliError } from '../cli-error.ts';

import { DEFAULT_TEMPLATE } from './default-template.ts';

const PLACEHOLDER = /\{(\w*)\}/g;

/** The placeholders a template may use; more arrive with the tagger and CLIP labellers. */
export type TemplateValues = { caption: string };

/** Fails early, naming the problem, for a template that could not produce useful captions. */
export function checkTemplate(template: string): void {
  const names = [...template.matchAll(PLACEHOLDER)].map((match) => match[1]!);
  const unknown = names.filter((name) => name !== 'caption');
  if (unknown.length > 0) {
    throw new CliError(
      'E_USAGE',
      `--template uses {${unknown[0]}}, which is not a placeholder; the one available is {caption}, e.g. --template "${DEFAULT_TEMPLATE}".`,
    );
  }
  if (names.length === 0) {
    throw new CliError(
      'E_USAGE',
      `--template "${template}" has no {caption}, so every image would get the same caption; e.g. --template "${DEFAULT_TEMPLATE}".`,
    );
  }
}

/**
 * The template filled in, in caption-markup's sorted canonical form: emphasis that spans several
 * tags (`**a, b**`) split per tag, as the markup lint asks, and core tags first, mood tags last.
 */
export function applyTemplate(template: string, values: TemplateValues): string {
  return format(
    template.replace(PLACEHOLDER, () => values.caption),
    { sort: true },
  );
}
