/**
 * What the UNet was trained to predict, which the loss must match. A diffusers folder says it in
 * `scheduler/scheduler_config.json` (`prediction_type`, epsilon when absent, as diffusers reads
 * it); so does that file beside a single-file checkpoint (the diffusers layout model-files.ts
 * reads sizes from). A single file alone does not: SD 2.x 768-v and 512-base share every shape,
 * so there the config decides, `auto` meaning epsilon, as kohya without --v_parameterization.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PredictionSetting, PredictionType } from '@lora/config';
import { ModelError } from '../model-error.ts';
import type { SdFamily } from './config.ts';
import { modelFolder } from './model-files.ts';

/** Where the model's scheduler says it, relative to the model folder. */
export const SCHEDULER_CONFIG = join('scheduler', 'scheduler_config.json');

/** A scheduler config's `prediction_type` is at most a short word; a larger file is not one. */
const MAX_SCHEDULER_CONFIG_BYTES = 64 * 1024;

export interface SdPrediction {
  readonly type: PredictionType;
  /** Where it came from, for the run log. */
  readonly source: string;
  /** Set when the config names another type than the model's scheduler. */
  readonly mismatch?: string;
}

/** The prediction type of the model at `basePath` (a single file or a diffusers folder) under `setting`. */
export async function sdPrediction(
  setting: PredictionSetting,
  basePath: string,
  family: SdFamily,
): Promise<SdPrediction> {
  const file = join(await modelFolder(basePath), SCHEDULER_CONFIG);
  const stated = await schedulerPrediction(file);
  if (setting === 'auto') {
    if (stated === 'epsilon' || stated === 'v_prediction') return { type: stated, source: file };
    if (stated !== undefined) {
      throw new ModelError(
        'E_MODEL_CONFIG',
        `${file}: prediction_type ${JSON.stringify(stated)} is not one this trainer has (epsilon, v_prediction); set prediction_type in the config if the file is wrong`,
      );
    }
    return {
      type: 'epsilon',
      source:
        family === 'sd2'
          ? 'prediction_type auto: nothing in the model says otherwise; an SD 2.x 768-v model needs prediction_type: v_prediction'
          : 'prediction_type auto: nothing in the model says otherwise',
    };
  }
  const mismatch =
    stated && stated !== setting
      ? `prediction_type is ${setting}, but ${file} says ${stated}; training with ${setting}, which the model was not trained for unless ${file} is wrong (set prediction_type: auto to follow it)`
      : undefined;
  return { type: setting, source: 'prediction_type in the config', ...(mismatch ? { mismatch } : {}) };
}

/** The scheduler's `prediction_type` as written (diffusers' default when absent); `undefined` without the file. */
async function schedulerPrediction(file: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  let json: unknown;
  try {
    if (text.length > MAX_SCHEDULER_CONFIG_BYTES)
      throw new Error(`more than ${MAX_SCHEDULER_CONFIG_BYTES} bytes`);
    json = JSON.parse(text);
  } catch (error) {
    throw new ModelError('E_MODEL_CONFIG', `${file} is not a scheduler config: ${(error as Error).message}`);
  }
  const value = (json as { prediction_type?: unknown } | null)?.prediction_type ?? 'epsilon';
  return typeof value === 'string' ? value : JSON.stringify(value);
}
