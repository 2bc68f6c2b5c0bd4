export type CaptionMarkupErrorCode =
  /** A1111 would raise `ValueError` on this `(text:weight)` number. */
  | 'E_INVALID_WEIGHT'
  /** Nesting deeper than any upstream parser can handle. */
  | 'E_TOO_DEEP'
  /** An option passed to a function is out of its range. */
  | 'E_INVALID_OPTION';

const MARKER = Symbol.for('@lora/caption-markup.error');

/** A failure of a caption-markup function that is not worth retrying with the same input. */
export class CaptionMarkupError extends Error {
  override readonly name = 'CaptionMarkupError';
  readonly [MARKER] = true;

  constructor(
    readonly code: CaptionMarkupErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }

  /** `instanceof` that also works across duplicate installs of this package. */
  static isInstance(error: unknown): error is CaptionMarkupError {
    return typeof error === 'object' && error !== null && MARKER in error;
  }
}

/** Result of the `safe…` twins of the throwing parsers. */
export type SafeResult<T> = { success: true; value: T } | { success: false; error: CaptionMarkupError };

/** Shortens user input echoed in error messages. */
export function excerpt(text: string, max = 60): string {
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text);
}
