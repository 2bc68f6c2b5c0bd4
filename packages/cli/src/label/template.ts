import { extractTags, format } from '@lora/caption-markup';
import { CliError } from '../cli-error.ts';

import { DEFAULT_TEMPLATE } from './default-template.ts';

const PLACEHOLDER = /\{(\w*)\}/g;

/** `{caption}`: the labeller's core tags (or the names); `{tags}`: its other tags; `{mood}`: its mood tags. */
const PLACEHOLDERS = ['caption', 'tags', 'mood'] as const;

/** A labeller's output by role, as plain tag text (no markup). */
export interface TemplateValues {
  /** Core tags (`--model none`: the words of the names). */
  caption: readonly string[];
  /** Other content tags; appended when the template has no `{tags}`. */
  tags?: readonly string[];
  /** Mood and lighting tags, written `*italic*`; appended when the template has no `{mood}`. */
  mood?: readonly string[];
}

/** Fails early, naming the problem, for a template that could not produce useful captions. */
export function checkTemplate(template: string): void {
  const names = [...template.matchAll(PLACEHOLDER)].map((match) => match[1]!);
  const unknown = names.filter((name) => !(PLACEHOLDERS as readonly string[]).includes(name));
  if (unknown.length > 0) {
    throw new CliError(
      'E_USAGE',
      `--template uses {${unknown[0]}}, which is not a placeholder; the ones available are {caption} (core tags), {tags} (other tags) and {mood} (mood tags), e.g. --template "${DEFAULT_TEMPLATE}".`,
    );
  }
  if (!names.includes('caption')) {
    throw new CliError(
      'E_USAGE',
      `--template "${template}" has no {caption}, so every image would get the same caption; e.g. --template "${DEFAULT_TEMPLATE}".`,
    );
  }
}

/**
 * A model's tag as caption text: characters with markup meaning escaped (`name (series)` →
 * `name \(series\)`, which A1111 would otherwise read as emphasis), `_` escaped at the edges
 * only, where caption-markup would read it as emphasis (kaomoji such as `^_^` stay as they are).
 */
export function escapeTag(tag: string): string {
  return tag.replace(/[\\()[\]*|]/g, '\\$&').replace(/^_|_$/g, '\\_');
}

/**
 * The template filled in, in caption-markup's canonical form: emphasis that spans several tags
 * (`**a, b**`) split per tag, as the markup lint asks, in the template's order (the labeller's
 * tags and mood, when the template has no place for them, come last).
 * Tags that the template already writes (`detailed`) are left out rather than repeated; when that
 * leaves `{caption}` empty, the first other tag takes its place, and when there is none, the
 * result is undefined: the image has nothing of its own to say.
 */
export function applyTemplate(template: string, values: TemplateValues): string | undefined {
  const fixed = new Set(
    extractTags(template.replace(PLACEHOLDER, ''), { lowercase: true }).map((tag) => tag.text),
  );
  const fresh = (tags: readonly string[] = []) => tags.filter((tag) => !fixed.has(tag.toLowerCase()));
  const caption = fresh(values.caption);
  const tags = fresh(values.tags);
  if (caption.length === 0) {
    const first = tags.shift();
    if (first === undefined) return undefined;
    caption.push(first);
  }
  const text = {
    caption: caption.map(escapeTag).join(', '),
    tags: tags.map(escapeTag).join(', '),
    mood: fresh(values.mood)
      .map((tag) => `*${escapeTag(tag)}*`)
      .join(', '),
  };
  let filled = template.replace(PLACEHOLDER, (_, name: keyof typeof text) => text[name]);
  for (const name of ['tags', 'mood'] as const) {
    if (!template.includes(`{${name}}`) && text[name] !== '') filled += `, ${text[name]}`;
  }
  return format(filled, { split: true });
}
