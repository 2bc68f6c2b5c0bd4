import { type Diagnostic, type InlineNode, lint, parse } from '@lora/caption-markup';

/** A run of the caption with the classes that colour it. */
export interface Segment {
  text: string;
  className: string;
}

/**
 * The caption cut into runs by markup role (`core`, `mood`, markers, weights, networks,
 * escapes, BREAK, commas) and by lint finding (`lint-warning`, `lint-error`), for an overlay
 * that shows the markup while the user types. Every character is in exactly one run.
 */
export function highlight(text: string, diagnostics: readonly Diagnostic[] = lint(text)): Segment[] {
  const classes: string[][] = Array.from({ length: text.length }, () => []);
  const mark = (from: number, to: number, name: string) => {
    for (let index = from; index < to; index += 1) classes[index]!.push(name);
  };
  const visit = (nodes: readonly InlineNode[]) => {
    for (const node of nodes) {
      switch (node.type) {
        case 'emphasis':
          mark(node.span[0], node.span[1], node.role);
          for (const [from, to] of node.markers) mark(from, to, 'marker');
          visit(node.children);
          break;
        case 'attention':
          mark(node.span[0], node.span[1], 'weighted');
          for (const [from, to] of node.markers) mark(from, to, 'weight');
          visit(node.children);
          break;
        case 'edit':
        case 'alternation':
          for (const [from, to] of node.markers) mark(from, to, 'weight');
          for (const part of node.type === 'edit' ? [node.from ?? [], node.to] : node.options) visit(part);
          break;
        case 'extraNetwork':
          mark(node.span[0], node.span[1], 'network');
          break;
        case 'escape':
          mark(node.span[0], node.span[1], 'escape');
          break;
        case 'break':
          mark(node.span[0], node.span[1], 'break');
          break;
        case 'comma':
          mark(node.span[0], node.span[1], 'comma');
          break;
      }
    }
  };
  visit(parse(text).children);
  for (const { span, severity } of diagnostics) {
    // An empty span (an empty tag) marks the character after it, so the finding stays visible.
    mark(span[0], Math.max(span[1], Math.min(span[0] + 1, text.length)), `lint-${severity}`);
  }
  const segments: Segment[] = [];
  for (let index = 0; index < text.length; index += 1) {
    const className = [...new Set(classes[index])].join(' ');
    const last = segments[segments.length - 1];
    if (last?.className === className) last.text += text[index];
    else segments.push({ text: text[index]!, className });
  }
  return segments;
}
