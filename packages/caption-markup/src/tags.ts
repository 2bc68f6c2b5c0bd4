import { parse } from './parse.ts';
import { isPyWhitespace } from './python.ts';
import { writeStripped } from './render.ts';
import type { BreakNode, CommaNode, Document, InlineNode, Span, TagRole } from './types.ts';
import { CaptionWriter } from './writer.ts';

/** One comma-separated tag of a caption. */
export interface Tag {
  /** The words only: markers, brackets, weights and extra networks removed, escapes resolved. */
  text: string;
  /** The strongest emphasis on any of the tag's words: `core` > `mood` > `plain`. */
  role: TagRole;
  /**
   * A1111's weight for the whole tag: the product of the attention groups that enclose all of it,
   * multiplied innermost first as A1111 does (`((a:1.5))` → 1.6500000000000001).
   */
  weight: number;
  /** Source span of the tag, markup included, surrounding whitespace excluded. */
  span: Span;
}

export interface TagOptions {
  /** Lower-case `text` (as kohya's `ss_tag_frequency` does). Default false. */
  lowercase?: boolean;
}

/**
 * A tag as a self-contained piece of tree: containers that span several tags (`**a, b**`,
 * `(a, b:1.2)`) are cloned around each part, so every unit can be rendered, moved or dropped alone.
 */
export interface TagUnit {
  nodes: InlineNode[];
  span: Span;
  role: TagRole;
  weight: number;
  /** The unit ends at a `BREAK` rather than a comma or the end. */
  endsAtBreak: boolean;
}

/**
 * Splits a document at its commas (at any depth inside emphasis and attention, not inside
 * `[from:to:when]` / `[a|b]`) and at `BREAK`s that are not inside brackets. Empty units are kept.
 */
export function splitTags(document: Document): TagUnit[] {
  const separators: (CommaNode | BreakNode)[] = [];
  const parts = split(document.children, separators, false);
  return parts.map((nodes, index) => {
    let from = index === 0 ? 0 : separators[index - 1]!.span[1];
    let to = index < separators.length ? separators[index]!.span[0] : document.source.length;
    while (from < to && isPyWhitespace(document.source.charCodeAt(from))) from += 1;
    while (to > from && isPyWhitespace(document.source.charCodeAt(to - 1))) to -= 1;
    const endsAtBreak = separators[index]?.type === 'break';
    return { nodes, span: [from, to], role: roleOf(nodes), weight: weightOf(nodes), endsAtBreak };
  });
}

/** The words of a unit as `extractTags` reports them. */
export function unitText(unit: TagUnit): string {
  const writer = new CaptionWriter();
  writeStripped(unit.nodes, writer, false);
  return writer.finish();
}

/**
 * The tags of a caption, in order, with their role, weight and span. Tags with no words (empty, or
 * only `<lora:…>`) are left out.
 *
 * @example
 * extractTags('**city at night**, (rain:1.2), *moody*')
 * // [{ text: 'city at night', role: 'core', weight: 1, span: [0, 17] },
 * //  { text: 'rain', role: 'plain', weight: 1.2, span: [19, 29] },
 * //  { text: 'moody', role: 'mood', weight: 1, span: [31, 38] }]
 */
export function extractTags(text: string, options: TagOptions = {}): Tag[] {
  const tags: Tag[] = [];
  for (const unit of splitTags(parse(text))) {
    const words = unitText(unit);
    if (words === '') continue;
    tags.push({
      text: options.lowercase ? words.toLowerCase() : words,
      role: unit.role,
      weight: unit.weight,
      span: unit.span,
    });
  }
  return tags;
}

/** The `core` (bold) tags of a caption, in order. */
export function coreTags(text: string, options: TagOptions = {}): Tag[] {
  return extractTags(text, options).filter((tag) => tag.role === 'core');
}

function split(
  nodes: readonly InlineNode[],
  separators: (CommaNode | BreakNode)[],
  inAttention: boolean,
): InlineNode[][] {
  const parts: InlineNode[][] = [[]];
  for (const node of nodes) {
    if (node.type === 'comma' || (node.type === 'break' && !inAttention)) {
      separators.push(node);
      parts.push([]);
      continue;
    }
    if (node.type === 'emphasis' || node.type === 'attention') {
      const inner = split(node.children, separators, inAttention || node.type === 'attention');
      if (inner.length > 1) {
        inner.forEach((children, index) => {
          if (index > 0) parts.push([]);
          parts[parts.length - 1]!.push({ ...node, children });
        });
        continue;
      }
    }
    parts[parts.length - 1]!.push(node);
  }
  return parts;
}

const ROLE_RANK: Record<TagRole, number> = { plain: 0, mood: 1, core: 2 };

function roleOf(nodes: readonly InlineNode[]): TagRole {
  let role: TagRole = 'plain';
  const consider = (candidate: TagRole): void => {
    if (ROLE_RANK[candidate] > ROLE_RANK[role]) role = candidate;
  };
  for (const node of nodes) {
    if (node.type === 'emphasis') {
      if (hasWords(node.children)) consider(node.role);
      consider(roleOf(node.children));
    } else if (node.type === 'attention') {
      consider(roleOf(node.children));
    } else if (node.type === 'edit') {
      consider(roleOf(node.to));
      if (node.from !== undefined) consider(roleOf(node.from));
    } else if (node.type === 'alternation') {
      for (const option of node.options) consider(roleOf(option));
    }
  }
  return role;
}

function weightOf(nodes: readonly InlineNode[]): number {
  let only: InlineNode | undefined;
  for (const node of nodes) {
    if (!hasWords([node])) continue;
    if (only !== undefined) return 1;
    only = node;
  }
  if (only?.type === 'attention') return weightOf(only.children) * only.multiplier;
  if (only?.type === 'emphasis') return weightOf(only.children);
  return 1;
}

/** Whether there is anything but whitespace and `*`/`_` (literal or escaped): what emphasis can mark. */
export function hasWords(nodes: readonly InlineNode[]): boolean {
  for (const node of nodes) {
    switch (node.type) {
      case 'text':
        for (let index = 0; index < node.value.length; index += 1) {
          const code = node.value.charCodeAt(index);
          if (code !== 0x2a && code !== 0x5f && !isPyWhitespace(code)) return true;
        }
        break;
      case 'escape':
        if (node.value !== '*' && node.value !== '_') return true;
        break;
      case 'edit':
      case 'alternation':
        return true;
      case 'emphasis':
      case 'attention':
        if (hasWords(node.children)) return true;
        break;
    }
  }
  return false;
}
