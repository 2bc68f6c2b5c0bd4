import type { WeightedPiece } from './a1111.ts';
import { CaptionMarkupError, type SafeResult } from './errors.ts';
import { pythonFloat } from './python.ts';

/**
 * ComfyUI recurses once per nesting level and CPython stops at 1000 frames, so deeper prompts
 * never worked there; refusing them also bounds the O(depth × length) cost of the algorithm.
 */
export const MAX_COMFY_NESTING = 900;

/**
 * ComfyUI's `token_weights(escape_important(text), 1.0)` (`comfy/sd1_clip.py`), exactly: an explicit
 * `(x:w)` replaces the inherited weight, the weight is split at the last `:`, Python `float()` decides
 * what is a number, `[]` is literal, nothing is merged. Each piece is returned after
 * `unescape_important`, which is how ComfyUI tokenizes it.
 *
 * @throws {CaptionMarkupError} `E_TOO_DEEP` past `MAX_COMFY_NESTING` levels (ComfyUI hits RecursionError).
 */
export function parseComfyWeights(text: string): WeightedPiece[] {
  const escaped = text.replaceAll('\\)', '\0\x01').replaceAll('\\(', '\0\x02');
  const out: WeightedPiece[] = [];
  tokenWeights(escaped, 1.0, out, 0);
  for (const piece of out) piece[0] = piece[0].replaceAll('\0\x01', ')').replaceAll('\0\x02', '(');
  return out;
}

/** `parseComfyWeights` that returns the error instead of throwing it. */
export function safeParseComfyWeights(text: string): SafeResult<WeightedPiece[]> {
  try {
    return { success: true, value: parseComfyWeights(text) };
  } catch (error) {
    if (CaptionMarkupError.isInstance(error)) return { success: false, error };
    throw error;
  }
}

function tokenWeights(text: string, currentWeight: number, out: WeightedPiece[], depth: number): void {
  for (let item of parseParentheses(text)) {
    if (item.length >= 2 && item.startsWith('(') && item.endsWith(')')) {
      item = item.slice(1, -1);
      let weight = currentWeight * 1.1;
      const colon = item.lastIndexOf(':');
      if (colon > 0) {
        const value = pythonFloat(item.slice(colon + 1));
        if (value !== undefined) {
          weight = value;
          item = item.slice(0, colon);
        }
      }
      if (depth >= MAX_COMFY_NESTING) {
        throw new CaptionMarkupError(
          'E_TOO_DEEP',
          `The prompt nests parentheses more than ${MAX_COMFY_NESTING} levels deep; ComfyUI fails on it ` +
            `with RecursionError. Remove the extra levels and use an explicit (text:weight) instead.`,
        );
      }
      tokenWeights(item, weight, out, depth + 1);
    } else {
      out.push([item, currentWeight]);
    }
  }
}

/** ComfyUI's `parse_parentheses`: top-level `( … )` groups and the text between them. */
function parseParentheses(text: string): string[] {
  const result: string[] = [];
  let itemStart = 0;
  let level = 0;
  for (let index = 0; index < text.length; index += 1) {
    const code = text.charCodeAt(index);
    if (code === 0x28) {
      if (level === 0) {
        if (index > itemStart) result.push(text.slice(itemStart, index));
        itemStart = index;
      }
      level += 1;
    } else if (code === 0x29) {
      level -= 1;
      if (level === 0) {
        result.push(text.slice(itemStart, index + 1));
        itemStart = index + 1;
      }
    }
  }
  if (itemStart < text.length) result.push(text.slice(itemStart));
  return result;
}
