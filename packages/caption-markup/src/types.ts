/** Half-open `[start, end)` range of UTF-16 offsets into the parsed text. */
export type Span = [start: number, end: number];

/** `core` = `**bold**` / `__bold__` tags, `mood` = `*italic*` / `_italic_` tags, `plain` = the rest. */
export type TagRole = 'core' | 'mood' | 'plain';

export type Severity = 'error' | 'warning' | 'info';

export type DiagnosticCode =
  /** A `(`, `)`, `[` or `]` without a partner; it is kept as literal text. */
  | 'unbalanced-bracket'
  /** A `*` / `**` marker without a partner; it is kept as literal text. */
  | 'unbalanced-emphasis'
  /** A weight that Python's `float()` rejects (A1111 raises on it) or an unreadable network weight. */
  | 'invalid-weight'
  /** Nesting beyond `MAX_NESTING_DEPTH`; the deeper markers are kept as literal text. */
  | 'too-deep'
  /** `[…]` with `:` or `|` that is neither `[from:to:when]` nor `[a|b]`: A1111 reads it as `[plain]`. */
  | 'ambiguous-brackets'
  /** Nothing between two commas. */
  | 'empty-tag'
  /** The same tag (case-insensitive) appears again. */
  | 'duplicate-tag'
  /** An emphasis that contains a comma, so it marks several tags at once. */
  | 'emphasis-spans-comma'
  /** `BREAK` inside brackets: A1111 weights the marker, so it no longer starts a new chunk. */
  | 'break-in-brackets'
  /** A backslash that escapes nothing: A1111 drops it, ComfyUI keeps it. */
  | 'stray-backslash'
  /** `name_(series)`: A1111 reads the parentheses as emphasis; escape them as `\(` `\)`. */
  | 'unescaped-parentheses'
  /** An effective tag weight or network multiplier outside the range that models handle well. */
  | 'weight-out-of-range';

export interface Diagnostic {
  code: DiagnosticCode;
  severity: Severity;
  /** What is wrong, where, and what to do about it. */
  message: string;
  span: Span;
}

/** Literal text, exactly as written (whitespace included, markers that failed to pair included). */
export interface TextNode {
  type: 'text';
  span: Span;
  value: string;
}

/** `\(` `\)` `\[` `\]` `\\` `\*` `\_` `\|`: `value` is the escaped character. */
export interface EscapeNode {
  type: 'escape';
  span: Span;
  value: string;
}

/** The `,` that separates tags. */
export interface CommaNode {
  type: 'comma';
  span: Span;
}

/** A1111's `BREAK` keyword (a whole word, Python `\b` semantics): starts a new 75-token chunk. */
export interface BreakNode {
  type: 'break';
  span: Span;
}

/**
 * An A1111 extra-network tag such as `<lora:name:0.7>` or `<hypernet:name:1>`, read as A1111's
 * `ExtraNetworkParams` does: `args` is the text after `kind:` split on `:`; an arg with exactly one
 * `=` goes to `named`, any other to `positional` (so `positional[0]` is the network name).
 */
export interface ExtraNetworkNode {
  type: 'extraNetwork';
  span: Span;
  kind: string;
  name: string;
  args: string[];
  positional: string[];
  named: Record<string, string>;
  /**
   * The multiplier A1111 applies: for `lora`/`lyco` `te=` or `positional[1]`, for `hypernet`
   * `args[1]`, for other kinds `positional[1]`; 1 when absent, NaN when Python's `float()` rejects it.
   */
  weight: number;
}

/** `**core**` / `__core__` (role `core`) or `*mood*` / `_mood_` (role `mood`). */
export interface EmphasisNode {
  type: 'emphasis';
  role: 'core' | 'mood';
  marker: '**' | '*' | '__' | '_';
  span: Span;
  /** The opening and closing marker. */
  markers: [Span, Span];
  children: InlineNode[];
}

/** A1111 attention: `(x)` ×1.1, `(x:1.3)` ×1.3, `[x]` ×(1/1.1). */
export interface AttentionNode {
  type: 'attention';
  bracket: 'round' | 'square';
  /** The explicit `:weight`, when written. */
  weight: number | undefined;
  /** The explicit weight as written (for formatting without changing it), when written. */
  weightText: string | undefined;
  /** What this level multiplies by: `weight`, 1.1, or 1/1.1 (A1111's exact constants). */
  multiplier: number;
  span: Span;
  /** The opening bracket and the closing `)`, `]` or `:weight)`. */
  markers: [Span, Span];
  children: InlineNode[];
}

/** A1111 prompt editing `[from:to:when]` / `[to:when]`. */
export interface EditNode {
  type: 'edit';
  /** Absent for `[to:when]`. */
  from: InlineNode[] | undefined;
  to: InlineNode[];
  /** The switch point as written: a step count, or a fraction of the steps when below 1. */
  when: number;
  whenText: string;
  span: Span;
  /** `[`, then each `:` (the last one together with the number and `]`). */
  markers: Span[];
}

/** A1111 alternation `[a|b|c]`: one option per step, in turn. Options may be empty. */
export interface AlternationNode {
  type: 'alternation';
  options: InlineNode[][];
  span: Span;
  /** `[`, each `|`, `]`. */
  markers: Span[];
}

export type InlineNode =
  | TextNode
  | EscapeNode
  | CommaNode
  | BreakNode
  | ExtraNetworkNode
  | EmphasisNode
  | AttentionNode
  | EditNode
  | AlternationNode;

/**
 * The parse tree. Every character of `source` belongs to exactly one leaf (`text`, `escape`,
 * `comma`, `break`, `extraNetwork`) or one entry of a container's `markers`.
 */
export interface Document {
  type: 'document';
  source: string;
  span: Span;
  children: InlineNode[];
  diagnostics: Diagnostic[];
}
