import type * as z from 'zod';
import type { CrossIssueParams } from './cross-check.ts';
import { expectedAt, keySchema, show } from './describe.ts';
import type { ConfigIssueCode } from './errors.ts';
import type { ConfigKey } from './schema.ts';
import { suggestKey, suggestValue } from './suggest.ts';

/** A validation issue before it is placed in the file. */
export interface PendingIssue {
  code: ConfigIssueCode;
  path: (string | number)[];
  message: string;
  /** Point at the key rather than at its value (unknown keys, keys that conflict). */
  atKey?: boolean;
}

type Path = (string | number)[];

/** Turns zod's issues (parsed with `reportInput`) into messages that say what to write instead. */
export function translateIssues(issues: readonly z.core.$ZodIssue[], prefix: Path = []): PendingIssue[] {
  return issues.flatMap((issue) => translate(issue, [...prefix, ...(issue.path as Path)]));
}

function translate(issue: z.core.$ZodIssue, path: Path): PendingIssue[] {
  const key = String(path[0] ?? '');
  const got = `got ${show(issue.input)}`;
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((name) => ({
        code: 'unknown_key',
        path: [...path, name],
        message: `unknown key "${name}"${suggestKey(name)}`,
        atKey: true,
      }));
    case 'invalid_type':
      if (issue.input === undefined && path.length === 1)
        return [
          {
            code: 'missing_key',
            path,
            message: `missing required key ${key} (${lowerFirst(String(keySchema(key as ConfigKey).description))})`,
          },
        ];
      return [
        { code: 'invalid_type', path, message: `expected ${expectedAt(path)}, ${got}${typeHint(issue)}` },
      ];
    case 'too_small':
    case 'too_big':
      return [{ code: 'out_of_range', path, message: rangeMessage(issue, got) }];
    case 'not_multiple_of':
      return [{ code: 'out_of_range', path, message: `must be a multiple of ${issue.divisor}, ${got}` }];
    case 'invalid_value':
      return [
        {
          code: 'invalid_value',
          path,
          message: `expected ${issue.values.join(' | ')}, ${got}${suggestValue(key, issue.input, issue.values.map(String))}`,
        },
      ];
    case 'invalid_format':
      return [
        { code: 'invalid_value', path, message: `${FORMAT_MESSAGES[key] ?? 'has the wrong form'}, ${got}` },
      ];
    case 'invalid_union':
      return translateUnion(issue, path, got);
    case 'custom': {
      const params = issue.params as CrossIssueParams;
      return [{ code: params.code, path, message: issue.message, atKey: params.atKey }];
    }
    default:
      return [{ code: 'invalid_value', path, message: issue.message }];
  }
}

/** Union keys (`target_modules`, `resolution`, …): explain within the branch whose type matched. */
function translateUnion(issue: z.core.$ZodIssueInvalidUnion, path: Path, got: string): PendingIssue[] {
  const key = String(path[0]);
  // A branch of the wrong type fails at its root; of the others, one failing deeper fits best.
  const typed = issue.errors.filter(
    (branch) => !branch.every((inner) => inner.code === 'invalid_type' && inner.path.length === 0),
  );
  const deeper = typed.filter((branch) => branch.every((inner) => inner.path.length > 0));
  const matched = deeper.length === 1 ? deeper : typed;
  if (matched.length !== 1)
    return [{ code: 'invalid_type', path, message: `expected ${expectedAt(path)}, ${got}` }];
  return matched[0]!.flatMap((inner) => {
    if (inner.code !== 'invalid_value' || inner.path.length > 0)
      return translate(inner, [...path, ...(inner.path as Path)]);
    const values = inner.values.map(String);
    return [
      {
        code: 'invalid_value',
        path,
        message: `expected ${expectedAt(path)}, ${got}${suggestValue(key, issue.input, values)}`,
      },
    ];
  });
}

function rangeMessage(issue: z.core.$ZodIssueTooSmall | z.core.$ZodIssueTooBig, got: string): string {
  if (issue.origin === 'array') {
    const count = Array.isArray(issue.input) ? issue.input.length : 0;
    return issue.code === 'too_small'
      ? `needs at least ${issue.minimum} ${issue.minimum === 1 ? 'entry' : 'entries'}, got ${count}`
      : `allows at most ${issue.maximum} entries, got ${count}`;
  }
  if (issue.origin === 'string') return 'must not be empty';
  const [bound, inclusive] =
    issue.code === 'too_small' ? [issue.minimum, issue.inclusive] : [issue.maximum, issue.inclusive];
  const relation =
    issue.code === 'too_small' ? (inclusive ? 'at least' : 'above') : inclusive ? 'at most' : 'below';
  return `must be ${relation} ${bound}, ${got}`;
}

/** The YAML gotchas behind most type errors. */
function typeHint(issue: z.core.$ZodIssueInvalidType): string {
  const value = issue.input;
  if ((issue.expected === 'number' || issue.expected === 'int') && typeof value === 'string') {
    if (value.trim() !== '' && Number.isFinite(Number(value)))
      return ' (the quotes make it text: remove them)';
  }
  if (issue.expected === 'int' && typeof value === 'number') return ' (it must be a whole number)';
  if (issue.expected === 'boolean' && typeof value === 'string' && /^(yes|no|on|off|y|n)$/i.test(value))
    return ' (YAML 1.2 reads only true and false as booleans)';
  return '';
}

const FORMAT_MESSAGES: Record<string, string> = {
  backend: 'must be `ort` or an npm package name',
  output_name:
    'must be a file name without extension: 1–200 characters, no / \\ or control characters (NUL, newline), not . or ..',
  caption_extension: 'must start with a dot, like ".txt"',
};

const lowerFirst = (text: string) => (text.charAt(0).toLowerCase() + text.slice(1)).replace(/\.$/, '');
