/** Every way the UI server can fail on purpose; the page and the CLI switch on `code`. */
export type UiErrorCode =
  /** The folder given to `lora ui` does not exist or is not a folder. */
  | 'E_NOT_FOUND'
  /** `--port` is taken by another program. */
  | 'E_PORT_IN_USE'
  /** A request without the session token, from another host or origin, or of a refused kind. */
  | 'E_FORBIDDEN'
  /** A path that leaves the project folder (`..`, an absolute path, a symbolic link out). */
  | 'E_PATH_OUTSIDE'
  /** A request the API does not understand: bad JSON, missing fields, a body too large. */
  | 'E_BAD_REQUEST'
  /** A caption changed on disk since the page read it; the response carries the current one. */
  | 'E_CAPTION_CONFLICT'
  /** A config changed on disk (or appeared) since the page read it; nothing was written. */
  | 'E_CONFIG_CONFLICT'
  /** `lora train` refused to start: its message and code (E_RUN_LOCKED, E_OUTPUT_NOT_EMPTY, an invalid config, …). */
  | 'E_RUN_REFUSED'
  /** `lora label` failed on a suggestion: its message and code (a missing model, a model of the wrong kind, …). */
  | 'E_LABEL_FAILED'
  /**
   * Stop has nothing it may signal: the run is not running (or still starting), runs on another
   * machine or as another user, or its lock names a pid that is not lora train now.
   */
  | 'E_STOP_REFUSED';

const MARKER = Symbol.for('lora.ui.error');

/** A UI problem: the message says what failed and what to do; `status` is its HTTP status. */
export class UiError extends Error {
  readonly code: UiErrorCode;
  readonly status: number;
  readonly [MARKER] = true;

  constructor(code: UiErrorCode, message: string, status = 400, options?: ErrorOptions) {
    super(message, options);
    this.name = 'UiError';
    this.code = code;
    this.status = status;
  }

  /** Works across duplicate installs of the package, where `instanceof` fails. */
  static isInstance(error: unknown): error is UiError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[MARKER] === true;
  }
}
