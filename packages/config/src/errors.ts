/** What went wrong with one place in a config. */
export type ConfigIssueCode =
  | 'file_not_found'
  | 'unreadable'
  | 'too_large'
  | 'syntax'
  | 'unknown_key'
  | 'missing_key'
  | 'invalid_type'
  | 'invalid_value'
  | 'out_of_range'
  | 'conflict'
  | 'wrong_task';

/** One problem, located in the YAML file (or in a `--set` override). */
export interface ConfigIssue {
  code: ConfigIssueCode;
  /** Key path, e.g. `['target_modules', 1]`; `[]` for the file as a whole. */
  path: (string | number)[];
  /** The config file's absolute path, or `--set key=value` for an override. */
  file: string;
  /** 1-based line (for an override: 1). */
  line: number;
  /** 1-based column (for an override: the column within `key=value`). */
  column: number;
  message: string;
}

/** Why a config could not be loaded; each reason names the first step that failed. */
export type ConfigErrorCode =
  | 'E_CONFIG_NOT_FOUND'
  | 'E_CONFIG_UNREADABLE'
  | 'E_CONFIG_TOO_LARGE'
  | 'E_CONFIG_SYNTAX'
  | 'E_CONFIG_INVALID';

const MARKER = Symbol.for('@lora/config.ConfigError');

/** Thrown by `loadConfig` / `parseConfig` with every issue found, formatted one per line in `message`. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code: ConfigErrorCode;
  readonly file: string;
  readonly issues: ConfigIssue[];
  /** Marks instances from every copy of this package (see `isInstance`). */
  readonly [MARKER] = true;

  constructor(code: ConfigErrorCode, file: string, issues: ConfigIssue[], options?: ErrorOptions) {
    const count = issues.length === 1 ? '1 problem' : `${issues.length} problems`;
    super(`${file}: ${count}\n${issues.map(formatConfigIssue).join('\n')}`, options);
    this.code = code;
    this.file = file;
    this.issues = issues;
  }

  /** True for a ConfigError from any copy of this package (where `instanceof` fails). */
  static isInstance(error: unknown): error is ConfigError {
    return typeof error === 'object' && error !== null && MARKER in error;
  }
}

/** `file:line:column key.path: message`, the form editors and terminals turn into links. */
export function formatConfigIssue(issue: ConfigIssue): string {
  const where = issue.file.startsWith('--set ')
    ? `${issue.file} (column ${issue.column})`
    : `${issue.file}:${issue.line}:${issue.column}`;
  const key = issue.path.length > 0 ? ` ${formatPath(issue.path)}:` : '';
  return `  ${where}${key} ${issue.message}`;
}

/** `target_modules[1]`, `betas[0]`, `lora_rank`. */
export function formatPath(path: readonly (string | number)[]): string {
  return path
    .map((part, index) => (typeof part === 'number' ? `[${part}]` : index ? `.${part}` : part))
    .join('');
}
