import { parse } from './parse.ts';
import { codePointBefore, isPyWordChar } from './python.ts';
import { hasWords, splitTags, unitText } from './tags.ts';
import type { Diagnostic, InlineNode, Span } from './types.ts';

/** Effective attention weights outside this range usually distort the image (A1111 users stay within). */
export const SANE_WEIGHT_RANGE: readonly [min: number, max: number] = [0, 2];
/** Extra-network multipliers beyond ± this usually overcook the image. */
export const SANE_NETWORK_WEIGHT = 2;

/**
 * Everything worth fixing in a caption or prompt, ordered by position: the parse diagnostics
 * (unbalanced markers and brackets, unreadable weights, ambiguous `[…]`, nesting too deep) plus empty
 * and duplicate tags, emphasis spanning a comma, `BREAK` inside brackets, stray backslashes,
 * `name_(series)` parentheses that A1111 reads as emphasis, and weights outside a sane range.
 *
 * @example
 * lint('**cat, dog**, cat').map((d) => d.code) // ['emphasis-spans-comma', 'duplicate-tag']
 */
export function lint(text: string): Diagnostic[] {
  const document = parse(text);
  const diagnostics = [...document.diagnostics];
  const units = splitTags(document);
  const seen = new Map<string, Span>();
  for (const unit of units) {
    if (unit.nodes.every((node) => node.type === 'text' && !hasWords([node]))) {
      if (units.length > 1) {
        diagnostics.push({
          code: 'empty-tag',
          severity: 'warning',
          message: `Empty tag at ${unit.span[0]}: there is nothing between these separators. Remove the extra comma.`,
          span: unit.span,
        });
      }
      continue;
    }
    const words = unitText(unit).toLowerCase();
    if (words === '') continue;
    const first = seen.get(words);
    if (first !== undefined) {
      diagnostics.push({
        code: 'duplicate-tag',
        severity: 'warning',
        message: `Tag "${words}" at ${unit.span[0]} repeats the one at ${first[0]}. Remove one of them.`,
        span: unit.span,
      });
    } else {
      seen.set(words, unit.span);
    }
    const [min, max] = SANE_WEIGHT_RANGE;
    if (!(unit.weight >= min && unit.weight <= max)) {
      diagnostics.push({
        code: 'weight-out-of-range',
        severity: 'warning',
        message: `Tag "${words}" at ${unit.span[0]} ends up with weight ${unit.weight}, outside ${min}–${max}. Lower the weight or remove brackets.`,
        span: unit.span,
      });
    }
  }
  walk(document.children, document.source, false, diagnostics);
  return diagnostics.sort((a, b) => a.span[0] - b.span[0] || a.span[1] - b.span[1]);
}

function walk(
  nodes: readonly InlineNode[],
  source: string,
  inBrackets: boolean,
  diagnostics: Diagnostic[],
): void {
  for (const node of nodes) {
    switch (node.type) {
      case 'text':
        for (let index = node.value.indexOf('\\'); index >= 0; index = node.value.indexOf('\\', index + 1)) {
          const offset = node.span[0] + index;
          diagnostics.push({
            code: 'stray-backslash',
            severity: 'warning',
            message: `Backslash at ${offset} escapes nothing: A1111 drops it, ComfyUI keeps it. Remove it or write "\\\\" for a backslash.`,
            span: [offset, offset + 1],
          });
        }
        break;
      case 'break':
        if (inBrackets) {
          diagnostics.push({
            code: 'break-in-brackets',
            severity: 'warning',
            message: `BREAK at ${node.span[0]} is inside brackets: A1111 weights it like text, so it does not start a new chunk. Move it out of the brackets.`,
            span: node.span,
          });
        }
        break;
      case 'extraNetwork':
        if (Math.abs(node.weight) > SANE_NETWORK_WEIGHT) {
          diagnostics.push({
            code: 'weight-out-of-range',
            severity: 'warning',
            message: `<${node.kind}:${node.name}> at ${node.span[0]} has multiplier ${node.weight}, beyond ±${SANE_NETWORK_WEIGHT}. Lower it.`,
            span: node.span,
          });
        }
        break;
      case 'emphasis':
        if (containsComma(node.children)) {
          diagnostics.push({
            code: 'emphasis-spans-comma',
            severity: 'warning',
            message: `"${node.marker}" emphasis at ${node.span[0]} spans a comma, so it marks several tags. Close it before the comma and mark each tag on its own.`,
            span: node.span,
          });
        }
        walk(node.children, source, inBrackets, diagnostics);
        break;
      case 'attention':
        if (node.bracket === 'round' && isPyWordChar(codePointBefore(source, node.span[0]))) {
          const inner = source.slice(node.markers[0][1], node.markers[1][0]);
          diagnostics.push({
            code: 'unescaped-parentheses',
            severity: 'warning',
            message: `"(${inner})" at ${node.span[0]} follows a word, so A1111 reads it as emphasis (×${node.multiplier}). If the parentheses belong to the tag, escape them: "\\(${inner}\\)".`,
            span: node.span,
          });
        }
        walk(node.children, source, true, diagnostics);
        break;
      case 'edit':
        if (node.from !== undefined) walk(node.from, source, true, diagnostics);
        walk(node.to, source, true, diagnostics);
        break;
      case 'alternation':
        for (const option of node.options) walk(option, source, true, diagnostics);
        break;
    }
  }
}

function containsComma(nodes: readonly InlineNode[]): boolean {
  return nodes.some(
    (node) =>
      node.type === 'comma' ||
      ((node.type === 'emphasis' || node.type === 'attention') && containsComma(node.children)),
  );
}
