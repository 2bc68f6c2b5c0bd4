export { parsePromptAttention, safeParsePromptAttention, type WeightedPiece } from './a1111.ts';
export { type AugmentOptions, augment } from './augment.ts';
export { MAX_COMFY_NESTING, parseComfyWeights, safeParseComfyWeights } from './comfy.ts';
export { addTag, promoteTag, removeTag, renameTag, type TagEditResult } from './edit.ts';
export { CaptionMarkupError, type CaptionMarkupErrorCode, type SafeResult } from './errors.ts';
export { type FormatOptions, format } from './format.ts';
export { type TagFrequency, type TagFrequencyOptions, tagFrequency } from './frequency.ts';
export { lint, SANE_NETWORK_WEIGHT, SANE_WEIGHT_RANGE } from './lint.ts';
export { parse } from './parse.ts';
export { MAX_NESTING_DEPTH } from './scan.ts';
export { type StripOptions, stripMarkup } from './strip.ts';
export { coreTags, extractTags, type Tag, type TagOptions } from './tags.ts';
export type {
  AlternationNode,
  AttentionNode,
  BreakNode,
  CommaNode,
  Diagnostic,
  DiagnosticCode,
  Document,
  EditNode,
  EmphasisNode,
  EscapeNode,
  ExtraNetworkNode,
  InlineNode,
  Severity,
  Span,
  TagRole,
  TextNode,
} from './types.ts';
