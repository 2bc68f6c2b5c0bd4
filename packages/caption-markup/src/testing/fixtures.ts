// Test helpers: a seeded generator and a compact notation for trees, so tables stay readable.
import type { InlineNode, Span } from '../types.ts';

/** mulberry32: a small seeded generator of floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = state;
    mixed = Math.imul(mixed ^ (mixed >>> 15), mixed | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4294967296;
  };
}

/** Pieces that exercise every rule, joined at random into hostile and near-valid inputs. */
const PIECES = [
  'a',
  'cat',
  'long_hair',
  ' ',
  '  ',
  '\t',
  ',',
  ', ',
  '**',
  '*',
  '***',
  '****',
  '_',
  '__',
  '\\',
  '\\*',
  '\\(',
  '\\\\',
  '\\_',
  '(',
  ')',
  '[',
  ']',
  ':',
  '|',
  ':1.2)',
  ': 0.5 )',
  ':1.2.3)',
  ':3]',
  '<lora:x:0.7>',
  '<lora:',
  '>',
  'BREAK',
  ' BREAK ',
  '^_^',
  'name_(series)',
  'é',
  '😀',
  '\u3000',
  '\u0085',
  '١',
  '[a|b]',
  '[a:b:0.5]',
  '(x:1.1)',
  '**core**',
  '*mood*',
  '_m_',
];

export function randomMarkup(random: () => number, maxPieces = 14): string {
  let text = '';
  const count = Math.floor(random() * maxPieces);
  for (let index = 0; index < count; index += 1) {
    text +=
      random() < 0.05
        ? String.fromCharCode(Math.floor(random() * 0x3000))
        : PIECES[Math.floor(random() * PIECES.length)];
  }
  return text;
}

/** Well-formed, canonical captions: `format` must return them unchanged. */
const WORDS = [
  'city at night',
  'neon signs',
  'rain-soaked streets',
  '1girl',
  'long_hair',
  'smile',
  'ultra-detailed',
  'blue sky',
];
export function randomCaption(random: () => number): string {
  const tags: string[] = [];
  const count = 1 + Math.floor(random() * 6);
  for (let index = 0; index < count; index += 1) {
    const word = WORDS[Math.floor(random() * WORDS.length)]!;
    const roll = random();
    if (roll < 0.15) tags.push(`**${word}**`);
    else if (roll < 0.3) tags.push(`*${word}*`);
    else if (roll < 0.4) tags.push(`(${word}:1.2)`);
    else if (roll < 0.45) tags.push(`[${word}]`);
    else if (roll < 0.5) tags.push(`**(${word}:0.8)**`);
    else if (roll < 0.55) tags.push(`<lora:${word.replaceAll(' ', '_')}:0.7>`);
    else if (roll < 0.6) tags.push(`[${word}|cat]`);
    else if (roll < 0.65) tags.push('\\(o\\)_\\(o\\)');
    else tags.push(word);
  }
  return tags.join(', ');
}

/** `core[**]("a")`-style notation of a node list. */
export function shape(nodes: readonly InlineNode[]): string {
  return nodes.map(shapeNode).join(' ');
}

function shapeNode(node: InlineNode): string {
  switch (node.type) {
    case 'text':
      return JSON.stringify(node.value);
    case 'escape':
      return `\\${node.value}`;
    case 'comma':
      return ',';
    case 'break':
      return 'BREAK';
    case 'extraNetwork':
      return `<${node.kind} ${node.name} ${node.weight}>`;
    case 'emphasis':
      return `${node.role}[${node.marker}](${shape(node.children)})`;
    case 'attention':
      return `${node.bracket}×${node.multiplier}(${shape(node.children)})`;
    case 'edit':
      return `edit(${node.from === undefined ? '-' : shape(node.from)} | ${shape(node.to)} | ${node.when})`;
    case 'alternation':
      return `alt(${node.options.map(shape).join(' | ')})`;
  }
}

/** Every leaf span and marker span of a tree, in document order. */
export function ownedSpans(nodes: readonly InlineNode[]): Span[] {
  const spans: Span[] = [];
  for (const node of nodes) {
    switch (node.type) {
      case 'emphasis':
      case 'attention':
        spans.push(node.markers[0], ...ownedSpans(node.children), node.markers[1]);
        break;
      case 'edit': {
        const [open, ...rest] = node.markers;
        spans.push(open!);
        if (node.from !== undefined) spans.push(...ownedSpans(node.from), rest.shift()!);
        spans.push(...ownedSpans(node.to), rest.shift()!);
        break;
      }
      case 'alternation':
        node.options.forEach((option, index) => {
          spans.push(node.markers[index]!, ...ownedSpans(option));
        });
        spans.push(node.markers[node.markers.length - 1]!);
        break;
      default:
        spans.push(node.span);
    }
  }
  return spans;
}
