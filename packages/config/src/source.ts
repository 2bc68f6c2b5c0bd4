import {
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
  visit,
} from 'yaml';
import type { ConfigIssue } from './errors.ts';

/**
 * Aliases may expand exponentially ("billion laughs"); a config needs few, if any. The yaml package
 * refuses to build values past this many alias expansions.
 */
export const MAX_ALIAS_COUNT = 100;

type Path = readonly (string | number)[];

/** Where YAML text came from, able to place a key path in it. */
export interface YamlSource {
  file: string;
  /** 1-based line and column of the value at `path` (or of its key, with `atKey`). */
  locate(path: Path, atKey?: boolean): { line: number; column: number };
}

export interface ParsedYaml {
  source: YamlSource;
  /** The document as plain data; undefined when it could not be built. */
  data: unknown;
  /** Syntax errors, tag and alias problems: with any of them, `data` is not trusted. */
  issues: ConfigIssue[];
}

/**
 * Parses YAML 1.2 (so `2e-4` is a number and `no` is the string "no") keeping node ranges, and
 * reports every syntax problem with its position. `columnOffset` shifts columns for text that sits
 * inside a longer line (a `--set key=value` argument).
 */
export function parseYaml(text: string, file: string, columnOffset = 0): ParsedYaml {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const position = (offset: number) => {
    const { line, col } = lines.linePos(offset);
    return { line, column: col + (line === 1 ? columnOffset : 0) };
  };
  const source: YamlSource = { file, locate: (path, atKey) => position(offsetOf(doc, path, atKey)) };
  const issues: ConfigIssue[] = [...doc.errors, ...doc.warnings].map((error) => ({
    code: 'syntax',
    path: [],
    file,
    ...position(error.pos[0]),
    message: error.message,
  }));
  const syntax = (node: { range?: [number, number, number] | null }, message: string) =>
    issues.push({ code: 'syntax', path: [], file, ...position(node.range?.[0] ?? 0), message });
  visit(doc, {
    Alias: (_, alias) => {
      if (!alias.resolve(doc))
        syntax(alias, `alias *${alias.source} refers to no anchor &${alias.source} before it`);
    },
    Pair: (_, pair) => {
      if (pair.key !== null && !isScalar(pair.key))
        syntax(pair.key as Node, 'keys must be plain names, not lists or mappings');
    },
  });
  if (issues.length > 0) return { source, data: undefined, issues };
  try {
    return { source, data: doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }), issues };
  } catch (error) {
    // The alias limit is the one failure left once the checks above pass.
    syntax({ range: null }, `${(error as Error).message} (more than ${MAX_ALIAS_COUNT} alias expansions)`);
    return { source, data: undefined, issues };
  }
}

/** The source offset of the node at `path`, or of the deepest ancestor present. */
function offsetOf(doc: Document, path: Path, atKey = false): number {
  let node: unknown = doc.contents;
  let offset = rangeStart(node) ?? 0;
  for (const [index, part] of path.entries()) {
    if (isAlias(node)) node = node.resolve(doc);
    let next: unknown;
    if (isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(part));
      if (!pair) break;
      if (atKey && index === path.length - 1) return rangeStart(pair.key) ?? offset;
      next = pair.value;
      offset = rangeStart(pair.value) ?? rangeStart(pair.key) ?? offset;
    } else if (isSeq(node) && typeof part === 'number') {
      next = node.items[part];
      if (next === undefined) break;
      offset = rangeStart(next) ?? offset;
    } else break;
    node = next;
  }
  return offset;
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as { range?: [number, number, number] } | null)?.range;
  return range?.[0];
}
