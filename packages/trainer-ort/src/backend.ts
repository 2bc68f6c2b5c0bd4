/**
 * The `ort` backend (`backend: ort` in a config): `@lora/config`'s `TrainerBackend` contract on
 * top of the model families and the training loop. The config's task picks the family
 * (`models/<family>/train.ts`); `runFamily` runs what every family shares.
 */
import type { LoraConfig, TrainerBackend, TrainingResult, TrainingRun } from '@lora/config';
import { llamaFamily } from './models/llama/train.ts';
import { sdFamily } from './models/sd/train.ts';
import { type ModelFamily, runFamily } from './train/run.ts';

/** The model families, by the task they train. */
const FAMILIES: Readonly<Record<LoraConfig['task'], ModelFamily>> = { llm: llamaFamily, sd: sdFamily() };

export const backend: TrainerBackend = {
  name: 'ort',
  train: (run: TrainingRun): Promise<TrainingResult> => runFamily(run, FAMILIES[run.config.task]),
};
