/** Every way this package can fail; callers switch on `code`, never on message text. */
export type DatasetErrorCode =
  | 'INVALID_OPTIONS'
  | 'NOT_FOUND'
  | 'INVALID_CSV'
  | 'INVALID_RECORD'
  /** A text file that is not UTF-8 (the message names the line and byte). */
  | 'INVALID_ENCODING'
  | 'UNKNOWN_FORMAT'
  | 'IMAGE_DECODE'
  | 'TOKENIZER'
  | 'TEMPLATE'
  | 'LIMIT_EXCEEDED'
  | 'EMPTY_DATASET'
  | 'OUT_OF_RANGE'
  | 'INVALID_STATE'
  | 'WRITE_FAILED';

const MARKER = Symbol.for('lora.dataset.error');

/** A dataset problem: the message says what failed, where (file, line) and what to do. */
export class DatasetError extends Error {
  readonly code: DatasetErrorCode;
  /** The file the problem is in, when there is one. */
  readonly path: string | undefined;
  /** 1-based line (JSONL/CSV record) when known. */
  readonly line: number | undefined;
  readonly [MARKER] = true;

  constructor(
    code: DatasetErrorCode,
    message: string,
    options: { path?: string; line?: number; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DatasetError';
    this.code = code;
    this.path = options.path;
    this.line = options.line;
  }

  /** Works across duplicate installs of the package, where `instanceof` fails. */
  static isInstance(error: unknown): error is DatasetError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[MARKER] === true;
  }
}
