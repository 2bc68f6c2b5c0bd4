import type { InlineNode } from './types.ts';
import type { CaptionWriter } from './writer.ts';

// Literal markers are escaped when formatting, so that the text parses back to the same tree.
const LITERAL_MARKERS = /[*()[\]]/g;

/** Canonical markup: the tree written back with normalised spacing and every literal marker escaped. */
export function writeMarkup(nodes: readonly InlineNode[], writer: CaptionWriter): void {
  for (let index = 0; index < nodes.length; index += 1) {
    const node = nodes[index]!;
    switch (node.type) {
      case 'text': {
        // Stars left over from a `***` whose `*` opened are written inside that emphasis
        // (` \*\**a*` → ` *\*\*a*`): the opener keeps its outer neighbour, so it cannot close instead.
        const after = index + 1 < nodes.length ? tripleRest(nodes[index + 1]!, node) : 0;
        writer.text(node.value.slice(0, node.value.length - after).replace(LITERAL_MARKERS, '\\$&'));
        break;
      }
      case 'escape':
        writer.word(`\\${node.value}`);
        break;
      case 'comma':
        writer.comma();
        break;
      case 'break':
        writer.word('BREAK');
        break;
      case 'extraNetwork':
        writer.word(`<${node.kind}:${node.args.join(':')}>`);
        break;
      case 'emphasis': {
        const previous = nodes[index - 1];
        writer.open(node.marker + '\\*'.repeat(previous === undefined ? 0 : tripleRest(node, previous)));
        writeMarkup(node.children, writer);
        writer.close(node.marker);
        break;
      }
      case 'attention':
        writer.open(node.bracket === 'round' ? '(' : '[');
        writeMarkup(node.children, writer);
        writer.close(
          node.bracket === 'square' ? ']' : node.weightText === undefined ? ')' : `:${node.weightText})`,
        );
        break;
      case 'edit':
        writer.open('[');
        if (node.from !== undefined) {
          writeMarkup(node.from, writer);
          writer.separator(':');
        }
        writeMarkup(node.to, writer);
        writer.separator(':');
        writer.word(node.whenText);
        writer.close(']');
        break;
      case 'alternation':
        writer.open('[');
        node.options.forEach((option, index) => {
          if (index > 0) writer.separator('|');
          writeMarkup(option, writer);
        });
        writer.close(']');
        break;
    }
  }
}

/** What `stripMarkup` writes, from a tree (used per tag, where the token fast path cannot go). */
export function writeStripped(
  nodes: readonly InlineNode[],
  writer: CaptionWriter,
  keepAttention: boolean,
): void {
  for (const node of nodes) {
    switch (node.type) {
      case 'text':
        writer.text(node.value);
        break;
      case 'escape':
        writer.word(
          keepAttention && node.value !== '*' && node.value !== '_' ? `\\${node.value}` : node.value,
        );
        break;
      case 'comma':
        writer.comma();
        break;
      case 'break':
        if (keepAttention) writer.word('BREAK');
        else writer.comma();
        break;
      case 'extraNetwork':
        break;
      case 'emphasis':
        writeStripped(node.children, writer, keepAttention);
        break;
      case 'attention':
        if (keepAttention) writer.open(node.bracket === 'round' ? '(' : '[');
        else writer.space();
        writeStripped(node.children, writer, keepAttention);
        if (keepAttention) {
          writer.close(
            node.bracket === 'square' ? ']' : node.weightText === undefined ? ')' : `:${node.weightText})`,
          );
        } else {
          writer.space();
        }
        break;
      case 'edit':
        if (!keepAttention) {
          writer.space();
          writeStripped(node.to, writer, false);
          writer.space();
          break;
        }
        writer.open('[');
        if (node.from !== undefined) {
          writeStripped(node.from, writer, true);
          writer.separator(':');
        }
        writeStripped(node.to, writer, true);
        writer.separator(':');
        writer.word(node.whenText);
        writer.close(']');
        break;
      case 'alternation':
        if (!keepAttention) {
          writer.space();
          writeStripped(node.options[0]!, writer, false);
          writer.space();
          break;
        }
        writer.open('[');
        node.options.forEach((option, index) => {
          if (index > 0) writer.separator('|');
          writeStripped(option, writer, true);
        });
        writer.close(']');
        break;
    }
  }
}

/** How many literal stars at the end of `text` complete a `***` run with the opener of `emphasis`. */
function tripleRest(emphasis: InlineNode, text: InlineNode): number {
  if (emphasis.type !== 'emphasis' || text.type !== 'text' || emphasis.marker[0] !== '*') return 0;
  const rest = 3 - emphasis.marker.length;
  const touches = text.span[1] === emphasis.markers[0][0];
  return touches && text.value.endsWith('*'.repeat(rest)) && !text.value.endsWith('*'.repeat(rest + 1))
    ? rest
    : 0;
}
