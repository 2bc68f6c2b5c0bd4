/** What went wrong while labelling images, as a string a caller can switch on. */
export type LabelErrorCode =
  /** A model file, tag list, tokenizer or vocabulary file is missing. */
  | 'E_LABEL_FILE_NOT_FOUND'
  /** The model's inputs or outputs are not those of the labeller it was loaded as. */
  | 'E_LABEL_MODEL_MISMATCH'
  /** `selected_tags.csv` is malformed or does not fit the model. */
  | 'E_LABEL_TAGS_INVALID'
  /** A candidate vocabulary is empty or malformed. */
  | 'E_LABEL_VOCABULARY_INVALID'
  /** An option is out of range (threshold, batch size, top-k). */
  | 'E_LABEL_OPTIONS_INVALID';

const MARKER = Symbol.for('@lora/label.error');

/** A labelling failure; the message says what failed, which file, and what to do. */
export class LabelError extends Error {
  readonly code: LabelErrorCode;
  /** The file the problem is about, when there is one. */
  readonly path: string | undefined;
  readonly [MARKER] = true;

  constructor(code: LabelErrorCode, message: string, options: { path?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'LabelError';
    this.code = code;
    this.path = options.path;
  }

  /** True for errors from any copy of this package (`instanceof` fails across duplicate installs). */
  static isInstance(error: unknown): error is LabelError {
    return typeof error === 'object' && error !== null && MARKER in error;
  }
}
