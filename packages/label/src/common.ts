import { stat } from 'node:fs/promises';
import { DatasetError, type DatasetErrorCode } from '@lora/dataset';
import { type ConcreteDevice, chooseDevice, type Device, describeDevice, Session } from '@lora/trainer-ort';
import { LabelError } from './label-error.ts';

/** An image the labeller could not read; the rest of the batch goes on without it. */
export interface LabelFailure {
  readonly path: string;
  /** What failed and what to do, from the image decoder. */
  readonly error: string;
}

export const isLabelFailure = (result: { readonly path: string }): result is LabelFailure =>
  'error' in result;

/**
 * Largest batch accepted. A 448² tagger input is 2.4 MB per image, so 256 images is already
 * 600 MB of input; more is a typo.
 */
export const MAX_LABEL_BATCH = 256;

export function checkBatchSize(batchSize: number): number {
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_LABEL_BATCH) {
    throw new LabelError(
      'E_LABEL_OPTIONS_INVALID',
      `batchSize must be a whole number from 1 to ${MAX_LABEL_BATCH} (MAX_LABEL_BATCH), got ${batchSize}.`,
    );
  }
  return batchSize;
}

/** Failures of one image (the next may be fine); anything else, such as a bad size, stops the run. */
const IMAGE_PROBLEMS: ReadonlySet<DatasetErrorCode> = new Set([
  'E_IMAGE_DECODE',
  'E_NOT_FOUND',
  'E_LIMIT_EXCEEDED',
]);

/**
 * Decodes a batch concurrently (sharp works off the main thread), in order. An image that cannot
 * be decoded becomes a failure instead of ending the run.
 */
export async function prepareAll<T>(
  paths: readonly string[],
  prepare: (path: string) => Promise<T>,
): Promise<({ readonly path: string; readonly data: T } | LabelFailure)[]> {
  return Promise.all(
    paths.map(async (path) => {
      try {
        return { path, data: await prepare(path) };
      } catch (error) {
        if (!DatasetError.isInstance(error) || !IMAGE_PROBLEMS.has(error.code)) throw error;
        return { path, error: error.message };
      }
    }),
  );
}

export interface LoadOptions {
  /** Default `auto`: CUDA, then a real WebGPU adapter, then the CPU (see `chooseDevice`). */
  device?: Device;
  threads?: number;
  /** Receives the one line that says which device the labeller runs on, and why. */
  onNotice?: (message: string) => void;
}

/** The labeller's device, decided once and announced through `onNotice`. */
export async function labelDevice(options: LoadOptions): Promise<ConcreteDevice> {
  const choice = await chooseDevice(options.device ?? 'auto');
  options.onNotice?.(`labelling on ${describeDevice(choice)}`);
  return choice.device;
}

/** Says which labelling model is missing before onnxruntime's generic message would. */
export async function checkModelFile(modelPath: string, what: string): Promise<void> {
  const found = await stat(modelPath).catch(() => undefined);
  if (!found?.isFile()) {
    throw new LabelError(
      'E_LABEL_FILE_NOT_FOUND',
      `${what} model ${modelPath} ${found ? 'is not a file' : 'not found'}; check the path.`,
      { path: modelPath },
    );
  }
}

/** Opens a labelling model (checked with `checkModelFile` first) on `device`. */
export function loadSession(modelPath: string, device: ConcreteDevice, threads?: number): Promise<Session> {
  return Session.create(modelPath, { device, ...(threads === undefined ? {} : { threads }) });
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
