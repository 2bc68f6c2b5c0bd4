/** What went wrong, as a string a caller can switch on. */
export type TrainerOrtErrorCode =
  /** An argument is out of range or malformed (session options, feeds, training options). */
  | 'E_INVALID_ARGUMENT'
  /** The requested execution provider is not installed or has no device. */
  | 'E_DEVICE_UNAVAILABLE'
  /** onnxruntime refused the model. */
  | 'E_SESSION_FAILED'
  /** onnxruntime failed while running the model, or the feeds do not match its inputs. */
  | 'E_RUN_FAILED'
  /** Training produced a NaN or infinite loss or gradient (the last good state was saved first). */
  | 'E_NON_FINITE_LOSS'
  /** A checkpoint's files are missing, malformed, or do not fit the model being trained. */
  | 'E_CHECKPOINT_INVALID'
  /** `resume` names a folder that holds no checkpoint. */
  | 'E_CHECKPOINT_NOT_FOUND';

const MARKER = Symbol.for('lora.trainer-ort.error');

/** Every error this package throws on purpose. `code` says what failed; the message says where and what to do. */
export class TrainerOrtError extends Error {
  readonly code: TrainerOrtErrorCode;
  readonly [MARKER] = true;

  constructor(code: TrainerOrtErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TrainerOrtError';
    this.code = code;
  }

  /** True for errors from any copy of this package (`instanceof` fails across duplicate installs). */
  static isInstance(error: unknown): error is TrainerOrtError {
    return typeof error === 'object' && error !== null && MARKER in error;
  }
}
