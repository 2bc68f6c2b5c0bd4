/** What went wrong with a worker process, as a string a caller can switch on. */
export type WorkerErrorCode =
  /** A worker process exited, was killed, or threw; the run stopped (after a checkpoint, once training had started). */
  | 'E_WORKER_FAILED'
  /** Workers disagree on what they built (parameters, initial values, precision): the recipe is not deterministic. */
  | 'E_WORKER_MISMATCH'
  /** The model recipe's module or factory is missing or returns no model. */
  | 'E_WORKER_RECIPE_INVALID';

const MARKER = Symbol.for('lora.trainer-ort.worker-error');

/** An error of a data-parallel run; `worker` is the index of the worker it concerns, when one does. */
export class WorkerError extends Error {
  readonly code: WorkerErrorCode;
  readonly worker: number | undefined;
  readonly [MARKER] = true;

  constructor(code: WorkerErrorCode, message: string, options?: { worker?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'WorkerError';
    this.code = code;
    this.worker = options?.worker;
  }

  /** True for errors from any copy of this package (`instanceof` fails across duplicate installs). */
  static isInstance(error: unknown): error is WorkerError {
    return typeof error === 'object' && error !== null && MARKER in error;
  }
}
