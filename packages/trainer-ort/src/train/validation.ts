/**
 * The validation loss: the model's loss over held-out data with the LoRA values of a moment,
 * through a forward-only graph (`loss.onnx`, one per shape key). onnxruntime runs every node of a
 * graph whatever outputs are fetched, so the gradients graph cannot serve: evaluating through it
 * would cost a backward pass per micro-batch. The loss sessions are opened for an evaluation and
 * closed after it, so between evaluations they hold no memory.
 */
import { LORA_DROPOUT_SEED } from '@lora/adapters';
import { type DType, Graph, type HostTensor } from '@lora/engine';
import { chooseDevice } from '../device.ts';
import { TrainerOrtError } from '../errors.ts';
import type { LoraParameter } from '../lora.ts';
import type { Session } from '../session.ts';
import type { BatchSource } from './data.ts';
import { parameterFeeds } from './engine.ts';
import { shapeKeyOf } from './gradient-sessions.ts';
import type { TrainableModel } from './model.ts';
import { COMPUTE_DTYPE, precisionOn } from './precision.ts';
import { LOSS_SUM, LOSS_WEIGHT, loadStepGraph, type SessionSettings } from './step-graphs.ts';

/** Held-out data and the model that scores it: the trained model without LoRA dropout. */
export interface ValidationSet<Batch> {
  model: TrainableModel<Batch>;
  /** Epoch 0 is the validation data, every micro-batch once. */
  data: BatchSource<Batch>;
  /** What the data is, for the log (e.g. `3 images × 5 timesteps`). */
  description: string;
}

/** `loss.onnx`, or `loss-<key>.onnx` for the graph of one shape key. */
const lossFileName = (shapeKey?: string): string =>
  shapeKey === undefined ? 'loss.onnx' : `loss-${shapeKey}.onnx`;

/** The model's loss graph alone: the LoRA parameters in, the loss sum and its weight out. */
export function buildLossGraph<Batch>(
  model: TrainableModel<Batch>,
  computeDtype: DType,
  shapeKey?: string,
): { graph: Graph; parameters: readonly LoraParameter[] } {
  const graph = new Graph('loss');
  const { lossSum, weight, parameters } = model.build(graph, {
    computeDtype,
    ...(shapeKey === undefined ? {} : { shapeKey }),
  });
  if (graph.inputs.some((t) => t.name === LORA_DROPOUT_SEED)) {
    throw new TrainerOrtError(
      'E_INVALID_ARGUMENT',
      'the validation model applies LoRA dropout; build it without dropout, so the validation loss does not depend on random masks',
    );
  }
  graph.output(lossSum, LOSS_SUM);
  graph.output(weight, LOSS_WEIGHT);
  return { graph, parameters };
}

/**
 * The mean loss of `set` (the sum of every micro-batch's loss over the sum of their weights) with
 * the LoRA parameters at `values`, computed on the device and in the precision training uses.
 */
export async function validationLoss<Batch>(
  set: ValidationSet<Batch>,
  values: ReadonlyMap<string, Float32Array>,
  folder: string,
  settings: Omit<SessionSettings, 'outputDir'>,
): Promise<number> {
  const choice = await chooseDevice(settings.device);
  const { precision } = precisionOn(settings.mixedPrecision, choice);
  const sessions = new Map<string | undefined, { session: Session; feeds: Record<string, HostTensor> }>();
  const open = async (key: string | undefined) => {
    const { graph, parameters } = buildLossGraph(set.model, COMPUTE_DTYPE[precision], key);
    const session = await loadStepGraph(graph, lossFileName(key), folder, choice.device, settings);
    return { session, feeds: parameterFeeds(parameters, values) };
  };
  try {
    let lossSum = 0;
    let weight = 0;
    for (let index = 0; index < set.data.microBatchesPerEpoch; index++) {
      const batch = await set.data.batch(0, index);
      const key = shapeKeyOf(set.model, batch);
      let entry = sessions.get(key);
      if (!entry) {
        entry = await open(key);
        sessions.set(key, entry);
      }
      const out = await entry.session.run({ ...set.model.feeds(batch), ...entry.feeds }, [
        LOSS_SUM,
        LOSS_WEIGHT,
      ]);
      lossSum += (out[LOSS_SUM]!.data as Float32Array)[0]!;
      weight += (out[LOSS_WEIGHT]!.data as Float32Array)[0]!;
    }
    return lossSum / weight;
  } finally {
    await Promise.all([...sessions.values()].map(({ session }) => session.dispose()));
  }
}

/**
 * Evaluations a validation loss may rise in a row before the run says the LoRA is likely
 * overfitting: one or two rises are noise of a small validation set; three are a trend.
 */
export const OVERFITTING_PATIENCE = 3;

/** The lowest validation loss of a run, its step, and where that step's adapter was written. */
export interface BestValidation {
  step: number;
  loss: number;
  adapter?: string;
}

/** What one evaluation adds to the history. */
export interface ValidationRecord {
  /** The history's own record: setting its `adapter` records where a new best step's adapter went. */
  best: BestValidation;
  /** This evaluation is the lowest so far. */
  improved: boolean;
  /** Set once per streak: the loss has now risen `OVERFITTING_PATIENCE` times in a row. */
  overfitting: boolean;
}

/** The validation losses of a run: the best so far, and rises in a row. */
export class ValidationHistory {
  private last: number | undefined;
  private rises = 0;

  /** `best`: the lowest loss of the run this one resumes, if it recorded one. */
  constructor(private best?: BestValidation) {}

  record(step: number, loss: number): ValidationRecord {
    const improved = this.best === undefined || loss < this.best.loss;
    if (improved) this.best = { step, loss };
    this.rises = this.last !== undefined && loss > this.last ? this.rises + 1 : 0;
    this.last = loss;
    // The caller fills in the adapter of a new best; the history keeps that object.
    return { best: this.best!, improved, overfitting: this.rises === OVERFITTING_PATIENCE };
  }
}
