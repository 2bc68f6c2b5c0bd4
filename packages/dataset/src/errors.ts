/** Every way this package can fail; callers switch on `code`, never on message text. */
export type DatasetErrorCode =
  | 'E_INVALID_OPTIONS'
  | 'E_NOT_FOUND'
  | 'E_INVALID_CSV'
  | 'E_INVALID_RECORD'
  /** A text file that is not UTF-8 (the message names the line and byte). */
  | 'E_INVALID_ENCODING'
  | 'E_UNKNOWN_FORMAT'
  | 'E_IMAGE_DECODE'
  | 'E_TOKENIZER'
  | 'E_TEMPLATE'
  | 'E_LIMIT_EXCEEDED'
  | 'E_EMPTY_DATASET'
  | 'E_OUT_OF_RANGE'
  | 'E_INVALID_STATE'
  | 'E_WRITE_FAILED'
  /** Stopped by the caller's AbortSignal; `cause` is the signal's reason. */
  | 'E_ABORTED';

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
