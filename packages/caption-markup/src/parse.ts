import { pythonFloat, trimPy } from './python.ts';
import {
  ALTERNATION,
  BREAK,
  COMMA,
  EDIT,
  ESCAPE,
  INVALID,
  NETWORK,
  OPEN_ROUND,
  STAR,
  scan,
  type Tokens,
  UNDERSCORE,
  WEIGHT_CLOSE,
} from './scan.ts';
import type { Diagnostic, Document, EmphasisNode, ExtraNetworkNode, InlineNode, Span } from './types.ts';

const ROUND_MULTIPLIER = 1.1;
const SQUARE_MULTIPLIER = 1 / 1.1;

/**
 * Parses a caption or prompt into a tree with source spans. Never throws: malformed markup becomes
 * literal text plus an entry in `diagnostics`.
 *
 * @example
 * parse('**city at night**, (rain:1.2)').children.map((node) => node.type)
 * // ['emphasis', 'comma', 'text', 'attention']
 */
export function parse(text: string): Document {
  const diagnostics: Diagnostic[] = [];
  const tokens = scan(text, diagnostics);
  const children = new TreeBuilder(text, tokens, diagnostics).build(0, tokens.count);
  diagnostics.sort((a, b) => a.span[0] - b.span[0] || a.span[1] - b.span[1]);
  return { type: 'document', source: text, span: [0, text.length], children, diagnostics };
}

class TreeBuilder {
  constructor(
    private readonly text: string,
    private readonly tokens: Tokens,
    private readonly diagnostics: Diagnostic[],
  ) {}

  /** Nodes for tokens `[from, to)`, which hold no half of a pair. */
  build(from: number, to: number): InlineNode[] {
    const { kind, start, end, link } = this.tokens;
    const nodes: InlineNode[] = [];
    let textStart = -1;
    const flush = (offset: number): void => {
      if (textStart >= 0) {
        nodes.push({ type: 'text', span: [textStart, offset], value: this.text.slice(textStart, offset) });
        textStart = -1;
      }
    };
    let index = from;
    while (index < to) {
      const tokenKind = kind[index]!;
      const partner = link[index]!;
      const isStructural =
        tokenKind === COMMA ||
        tokenKind === ESCAPE ||
        tokenKind === NETWORK ||
        tokenKind === BREAK ||
        partner > index;
      if (!isStructural) {
        if (textStart < 0) textStart = start[index]!;
        index += 1;
        continue;
      }
      flush(start[index]!);
      const span: Span = [start[index]!, end[index]!];
      if (tokenKind === COMMA) nodes.push({ type: 'comma', span });
      else if (tokenKind === BREAK) nodes.push({ type: 'break', span });
      else if (tokenKind === ESCAPE) nodes.push({ type: 'escape', span, value: this.text[span[0] + 1]! });
      else if (tokenKind === NETWORK) nodes.push(this.network(span));
      else if (tokenKind === STAR || tokenKind === UNDERSCORE) nodes.push(this.emphasis(index, partner));
      else if (tokenKind === OPEN_ROUND) nodes.push(this.round(index, partner));
      else nodes.push(this.square(index, partner));
      index = partner > index ? partner + 1 : index + 1;
    }
    flush(to > from ? end[to - 1]! : 0);
    return nodes;
  }

  private emphasis(open: number, close: number): EmphasisNode {
    const { kind, start, end } = this.tokens;
    const bold = end[open]! - start[open]! === 2;
    const marker = kind[open] === STAR ? (bold ? '**' : '*') : bold ? '__' : '_';
    return {
      type: 'emphasis',
      role: bold ? 'core' : 'mood',
      marker,
      span: [start[open]!, end[close]!],
      markers: [
        [start[open]!, end[open]!],
        [start[close]!, end[close]!],
      ],
      children: this.build(open + 1, close),
    };
  }

  private round(open: number, close: number): InlineNode {
    const { kind, flags, start, end, aux, aux2 } = this.tokens;
    let weight: number | undefined;
    let weightText: string | undefined;
    let closeStart = start[close]!;
    let children: InlineNode[];
    if (kind[close] === WEIGHT_CLOSE && !(flags[close]! & INVALID)) {
      children = this.build(open + 1, close - 1); // the colon before `weight)` is part of the marker
      closeStart = start[close - 1]!;
      weightText = this.text.slice(aux[close]!, aux2[close]!);
      weight = pythonFloat(weightText)!;
    } else {
      children = this.build(open + 1, close);
      if (kind[close] === WEIGHT_CLOSE) {
        // The unreadable `:weight` stays text (the colon already is); the `)` still closes the group.
        closeStart = end[close]! - 1;
        const last = children[children.length - 1]!;
        if (last.type === 'text') {
          last.span = [last.span[0], closeStart];
          last.value = this.text.slice(last.span[0], closeStart);
        }
      }
    }
    return {
      type: 'attention',
      bracket: 'round',
      weight,
      weightText,
      multiplier: weight ?? ROUND_MULTIPLIER,
      span: [start[open]!, end[close]!],
      markers: [
        [start[open]!, end[open]!],
        [closeStart, end[close]!],
      ],
      children,
    };
  }

  private square(open: number, close: number): InlineNode {
    const { flags, start, end, aux, aux2 } = this.tokens;
    const span: Span = [start[open]!, end[close]!];
    const openMarker: Span = [start[open]!, end[open]!];
    const openFlags = flags[open]!;
    if (openFlags & EDIT) {
      const first = aux[open]!;
      const second = aux2[open]!;
      const last = second >= 0 ? second : first;
      const whenText = trimPy(this.text.slice(end[last]!, start[close]!));
      return {
        type: 'edit',
        from: second >= 0 ? this.build(open + 1, first) : undefined,
        to: second >= 0 ? this.build(first + 1, second) : this.build(open + 1, first),
        when: Number(whenText),
        whenText,
        span,
        markers:
          second >= 0
            ? [openMarker, [start[first]!, end[first]!], [start[second]!, end[close]!]]
            : [openMarker, [start[first]!, end[close]!]],
      };
    }
    if (openFlags & ALTERNATION) {
      const { link } = this.tokens;
      const options: InlineNode[][] = [];
      const markers: Span[] = [openMarker];
      let segmentStart = open + 1;
      for (let index = open + 1; index < close; index += 1) {
        if (link[index] === open) {
          options.push(this.build(segmentStart, index));
          markers.push([start[index]!, end[index]!]);
          segmentStart = index + 1;
        } else if (link[index]! > index) {
          index = link[index]!; // skip a nested pair
        }
      }
      options.push(this.build(segmentStart, close));
      markers.push([start[close]!, end[close]!]);
      return { type: 'alternation', options, span, markers };
    }
    return {
      type: 'attention',
      bracket: 'square',
      weight: undefined,
      weightText: undefined,
      multiplier: SQUARE_MULTIPLIER,
      span,
      markers: [openMarker, [start[close]!, end[close]!]],
      children: this.build(open + 1, close),
    };
  }

  private network(span: Span): ExtraNetworkNode {
    const source = this.text.slice(span[0] + 1, span[1] - 1);
    const colon = source.indexOf(':');
    const kind = source.slice(0, colon);
    const args = source.slice(colon + 1).split(':');
    const positional: string[] = [];
    const named: Record<string, string> = Object.create(null);
    for (const arg of args) {
      // Python's `arg.split('=', 2)` has exactly two parts only when there is exactly one `=`.
      const equals = arg.indexOf('=');
      if (equals >= 0 && arg.indexOf('=', equals + 1) < 0)
        named[arg.slice(0, equals)] = arg.slice(equals + 1);
      else positional.push(arg);
    }
    const weightText =
      kind === 'hypernet'
        ? args[1]
        : kind === 'lora' || kind === 'lyco'
          ? (named['te'] ?? positional[1])
          : positional[1];
    let weight = 1;
    if (weightText !== undefined) {
      const value = pythonFloat(weightText);
      weight = value ?? Number.NaN;
      if (value === undefined) {
        this.diagnostics.push({
          code: 'invalid-weight',
          severity: 'error',
          message: `Multiplier "${weightText}" of <${kind}:…> at ${span[0]} is not a number; A1111 fails on it. Write a number such as 0.7.`,
          span,
        });
      }
    }
    return { type: 'extraNetwork', span, kind, name: positional[0] ?? '', args, positional, named, weight };
  }
}
