import { CaptionMarkupError } from './errors.ts';
import { parse } from './parse.ts';
import { isPyWhitespace } from './python.ts';
import { extractTags, hasWords, splitTags, type TagUnit, unitText } from './tags.ts';
import type { InlineNode, Span, TagRole } from './types.ts';

export interface TagEditResult {
  /** The caption after the edit (the input itself when nothing matched). */
  text: string;
  /** Tags changed. */
  changed: number;
  /**
   * Tags that matched but were left as they are: their words are not one run of text inside
   * their markup (`neon **city**`, `[cat|dog]`, a `<lora:…>` between words), so no edit keeps
   * the markup intact.
   */
  skipped: number;
}

/** Characters that mean markup inside a tag, escaped so a new tag name reads as plain words. */
const MARKUP_CHARACTERS = /[\\()[\]*|]/g;

/** `name (series)` → `name \(series\)`; a `_` at an edge would open emphasis, so it is escaped too. */
function escapeWords(words: string): string {
  return words.replace(MARKUP_CHARACTERS, (character) => `\\${character}`).replace(/^_|_$/g, '\\_');
}

/** A container around a tag's words: emphasis or attention, as the parse tree has it. */
type Container = Extract<InlineNode, { type: 'emphasis' | 'attention' }>;

/**
 * The words of a tag as one run of text and escape leaves, with the emphasis and attention
 * containers around them (outermost first), or undefined when they are not one run.
 */
function wordPath(
  nodes: readonly InlineNode[],
  source: string,
  containers: Container[] = [],
): { run: Span; containers: Container[] } | undefined {
  const indices = nodes.flatMap((node, index) => (hasWords([node]) ? [index] : []));
  if (indices.length === 0) return undefined;
  const first = indices[0]!;
  const last = indices[indices.length - 1]!;
  const only = nodes[first]!;
  if (first === last && (only.type === 'emphasis' || only.type === 'attention')) {
    return wordPath(only.children, source, [...containers, only]);
  }
  const run = nodes.slice(first, last + 1);
  if (!run.every((node) => node.type === 'text' || node.type === 'escape')) return undefined;
  let [start, end] = [run[0]!.span[0], run[run.length - 1]!.span[1]];
  while (start < end && isPyWhitespace(source.charCodeAt(start))) start += 1;
  while (end > start && isPyWhitespace(source.charCodeAt(end - 1))) end -= 1;
  return { run: [start, end], containers };
}

/** A container that holds other tags too (`**a, b**` split into units keeps its whole span). */
const shared = (container: Container, unit: TagUnit) =>
  container.span[0] < unit.span[0] || container.span[1] > unit.span[1];

/** `words` as the text of one tag: trimmed, single-spaced, markup characters escaped; or throws. */
function tagText(words: string): string {
  const tidy = words.trim().replace(/\s+/g, ' ');
  const escaped = escapeWords(tidy);
  const check = parse(escaped);
  const tags = extractTags(escaped);
  if (
    tidy === '' ||
    tags.length !== 1 ||
    tags[0]!.text !== tidy ||
    check.children.some((node) => node.type === 'break' || node.type === 'extraNetwork')
  ) {
    throw new CaptionMarkupError(
      'E_INVALID_OPTION',
      `"${words}" is not one tag: a tag needs words and no comma, BREAK or <…> network.`,
    );
  }
  return escaped;
}

/** Span edits applied from the end, so earlier spans stay valid. */
function applyEdits(text: string, edits: { span: Span; with: string }[]): string {
  let result = text;
  for (const edit of [...edits].sort((a, b) => b.span[0] - a.span[0])) {
    result = result.slice(0, edit.span[0]) + edit.with + result.slice(edit.span[1]);
  }
  return result;
}

/** The tags whose words are `tag` (case-insensitive, as `tagFrequency` counts them), with their words' path. */
function matching(text: string, tag: string) {
  const wanted = tag.trim().replace(/\s+/g, ' ').toLowerCase();
  const units = splitTags(parse(text));
  return {
    units,
    found: units.flatMap((unit, index) =>
      unitText(unit).toLowerCase() === wanted ? [{ unit, index, path: wordPath(unit.nodes, text) }] : [],
    ),
  };
}

/**
 * Renames every tag whose words are `from` (case-insensitive, as `tagFrequency` counts them) to
 * `to`, keeping the markup around it: `**neon city**` → `**neon town**`, `(neon city:1.2)` →
 * `(neon town:1.2)`. `to` is written as plain words (brackets and stars escaped); it must be one
 * tag, so a comma, `BREAK` or `<lora:…>` in it throws `E_INVALID_OPTION`.
 */
export function renameTag(text: string, from: string, to: string): TagEditResult {
  const replacement = tagText(to);
  const { found } = matching(text, from);
  const edits = found.flatMap(({ path }) => (path ? [{ span: path.run, with: replacement }] : []));
  return { text: applyEdits(text, edits), changed: edits.length, skipped: found.length - edits.length };
}

/**
 * Removes every tag whose words are `tag`, with one comma beside it, keeping the markup of the
 * tags around it: `**a, neon city**, b` → `**a**, b`, `neon city, (rain:1.2)` → `(rain:1.2)`. A
 * `<lora:…>` network in the tag's place stays.
 */
export function removeTag(text: string, tag: string): TagEditResult {
  const { units, found } = matching(text, tag);
  const edits: { span: Span; with: string }[] = [];
  const gap = (from: number, to: number) => ({
    span: [units[from]!.span[1], units[to]!.span[0]] as Span,
    comma: text.slice(units[from]!.span[1], units[to]!.span[0]).trim() === ',',
  });
  for (const { unit, index, path } of found) {
    if (!path) continue;
    const before = index > 0 ? gap(index - 1, index) : undefined;
    const after = index < units.length - 1 ? gap(index, index + 1) : undefined;
    const inner = path.containers.filter((container) => shared(container, unit)).at(-1);
    if (inner !== undefined) {
      // Inside `**a, tag**`: the words and the comma on the side that stays inside the container.
      const first = inner.span[0] >= unit.span[0];
      edits.push({ span: first ? [path.run[0], after!.span[1]] : [before!.span[0], path.run[1]], with: '' });
    } else if (containsNetwork(unit.nodes)) {
      edits.push({ span: path.run, with: '' });
    } else if (after?.comma) {
      edits.push({ span: [unit.span[0], after.span[1]], with: '' });
    } else if (before?.comma) {
      edits.push({ span: [before.span[0], unit.span[1]], with: '' });
    } else {
      edits.push({ span: unit.span, with: '' });
    }
  }
  // Neighbouring matches (`rain, rain`) claim the same comma: deleting the union removes it once.
  const merged: { span: Span; with: string }[] = [];
  for (const edit of edits.sort((a, b) => a.span[0] - b.span[0])) {
    const last = merged.at(-1);
    if (last !== undefined && edit.span[0] <= last.span[1])
      last.span = [last.span[0], Math.max(last.span[1], edit.span[1])];
    else merged.push({ span: [...edit.span], with: '' });
  }
  return { text: applyEdits(text, merged), changed: edits.length, skipped: found.length - edits.length };
}

function containsNetwork(nodes: readonly InlineNode[]): boolean {
  return nodes.some(
    (node) =>
      node.type === 'extraNetwork' ||
      ((node.type === 'emphasis' || node.type === 'attention') && containsNetwork(node.children)),
  );
}

/**
 * Adds `tag` to a caption that lacks it (any role counts as having it): a `core` tag first
 * (`**tag**, …`), a `mood` tag last (`…, *tag*`), a plain one before the caption's closing mood
 * tags, as `format` orders them. The words are escaped as `renameTag` escapes them.
 */
export function addTag(text: string, tag: string, role: TagRole = 'plain'): TagEditResult {
  const words = tagText(tag);
  const { units, found } = matching(text, tag);
  if (found.length > 0) return { text, changed: 0, skipped: 0 };
  const written = role === 'core' ? `**${words}**` : role === 'mood' ? `*${words}*` : words;
  const filled = units.filter((unit) => unitText(unit) !== '');
  if (filled.length === 0) return { text: written, changed: 1, skipped: 0 };
  if (role === 'core') {
    return {
      text: applyEdits(text, [{ span: [filled[0]!.span[0], filled[0]!.span[0]], with: `${written}, ` }]),
      changed: 1,
      skipped: 0,
    };
  }
  // A plain tag goes before a closing run of standalone mood tags; a mood tag (or a caption without one) at the end.
  let at = filled.length;
  while (role === 'plain' && at > 0 && filled[at - 1]!.role === 'mood' && standalone(filled[at - 1]!))
    at -= 1;
  if (at < filled.length) {
    const next = filled[at]!.span[0];
    return { text: applyEdits(text, [{ span: [next, next], with: `${written}, ` }]), changed: 1, skipped: 0 };
  }
  const end = filled.at(-1)!.span[1];
  return { text: applyEdits(text, [{ span: [end, end], with: `, ${written}` }]), changed: 1, skipped: 0 };
}

/** A unit whose markup is its own (not part of `*a, b*`). */
const standalone = (unit: TagUnit) =>
  unit.nodes.every(
    (node) =>
      (node.type !== 'emphasis' && node.type !== 'attention') ||
      (node.span[0] >= unit.span[0] && node.span[1] <= unit.span[1]),
  );

/**
 * Makes every tag whose words are `tag` a core tag: `neon city` → `**neon city**`, `*rain*` →
 * `**rain**`, `(rain:1.2)` → `(**rain**:1.2)`. Core tags stay as they are; a tag that shares its
 * mood emphasis with other tags (`*rain, fog*`) or whose words markup splits is skipped.
 */
export function promoteTag(text: string, tag: string): TagEditResult {
  const { found } = matching(text, tag);
  const edits: { span: Span; with: string }[] = [];
  let [changed, skipped] = [0, 0];
  for (const { unit, path } of found) {
    if (unit.role === 'core') continue;
    const mood = path?.containers.find((container) => container.type === 'emphasis');
    if (!path || (mood !== undefined && shared(mood, unit))) {
      skipped += 1;
      continue;
    }
    changed += 1;
    if (mood !== undefined) {
      edits.push({ span: mood.markers[0], with: '**' }, { span: mood.markers[1], with: '**' });
    } else {
      edits.push(
        { span: [path.run[0], path.run[0]], with: '**' },
        { span: [path.run[1], path.run[1]], with: '**' },
      );
    }
  }
  return { text: applyEdits(text, edits), changed, skipped };
}
