/**
 * The two graphs a run executes, written to `<outputDir>/graphs/` and loaded once:
 * - `gradients.onnx`: the model's micro-batch loss, differentiated toward the LoRA parameters
 *   after multiplying by the fed `loss_scale`; outputs the loss sum, its weight and one float32
 *   gradient per parameter (each worker process of a parallel run loads its own copy, from
 *   `graphs/worker-<k>/`); a multi-shape model has one `gradients-<shape key>.onnx` per key;
 * - `update.onnx`: the optimizer step (see `optimizer.ts`): on the CPU where the LoRA state lives
 *   on the host (CPU and CUDA runs, data-parallel runs), on the device for the WebGPU engine
 *   (`device-engine.ts`), which keeps the state in GPU memory.
 */

import { LORA_DROPOUT_SEED } from '@lora/adapters';
import type { MixedPrecision } from '@lora/config';
import { Graph, gradients, mul, writeModel } from '@lora/engine';
import { type ConcreteDevice, chooseDevice, type Device } from '../device.ts';
import { TrainerOrtError } from '../errors.ts';
import { DEFAULT_PARAMETER_GROUP, type LoraParameter } from '../lora.ts';
import { Session } from '../session.ts';
import type { TrainableModel } from './model.ts';
import { buildUpdateGraph, gradName, type OptimizerOptions } from './optimizer.ts';
import { COMPUTE_DTYPE, type Precision, precisionOn } from './precision.ts';

export const LOSS_SCALE = 'loss_scale';
export const LOSS_SUM = 'loss_sum';
export const LOSS_WEIGHT = 'loss_weight';
export const GRAPHS_FOLDER = 'graphs';

export interface GradientsGraph {
  graph: Graph;
  parameters: readonly LoraParameter[];
}

function contractError(message: string): TrainerOrtError {
  return new TrainerOrtError('E_INVALID_ARGUMENT', `TrainableModel.build: ${message}`);
}

/** The model's loss graph plus `loss_scale`, the outputs, and the gradients toward every LoRA parameter. */
export function buildGradientsGraph<Batch>(
  model: TrainableModel<Batch>,
  precision: Precision,
  shapeKey?: string,
): GradientsGraph {
  const graph = new Graph('gradients');
  const { lossSum, weight, parameters } = model.build(graph, {
    computeDtype: COMPUTE_DTYPE[precision],
    ...(shapeKey === undefined ? {} : { shapeKey }),
  });
  for (const [what, t] of [
    ['lossSum', lossSum],
    ['weight', weight],
  ] as const) {
    if (t.dtype !== 'float32' || t.rank !== 0)
      throw contractError(`${what} must be a float32 scalar, got ${t}`);
  }
  if (parameters.length === 0) throw contractError('the model declares no LoRA parameters to train');
  const names = new Set<string>();
  for (const p of parameters) {
    if (names.has(p.name)) throw contractError(`parameter '${p.name}' is listed twice`);
    names.add(p.name);
    if (!graph.inputs.includes(p.tensor) || p.tensor.dtype !== 'float32') {
      throw contractError(`parameter '${p.name}' must be a float32 input of the graph (see loraLayer)`);
    }
  }
  const scale = graph.input(LOSS_SCALE, 'float32', []);
  const grads = gradients(
    mul(lossSum, scale),
    parameters.map((p) => p.tensor),
  );
  graph.output(lossSum, LOSS_SUM);
  graph.output(weight, LOSS_WEIGHT);
  parameters.forEach((p, i) => {
    graph.output(grads[i]!, gradName(p.name));
  });
  return { graph, parameters };
}

export interface SessionSettings {
  outputDir: string;
  device: Device;
  mixedPrecision: MixedPrecision;
  threads?: number;
  copyExternalData?: boolean;
  /** The gradients stay on the device (`DeviceTensor`s; WebGPU only), for the device engine. */
  gradientsOnDevice?: boolean;
  onNotice: (message: string) => void;
  /** Sees each gradients graph once it is built (the run's memory estimate reads it). */
  onGradientsGraph?: GradientsGraphHook;
}

export type GradientsGraphHook = (
  built: GradientsGraph,
  shapeKey: string | undefined,
  precision: Precision,
) => void;

/** A LoRA parameter as the loop keeps it: no graph tensor, so it can come from a worker process. */
export type TrainedParameter = Pick<LoraParameter, 'name' | 'shape' | 'initial' | 'group'>;

export interface GradientsSession {
  session: Session;
  parameters: readonly LoraParameter[];
  precision: Precision;
  /** True when some LoRA layer has dropout, so the gradients graph reads `LORA_DROPOUT_SEED`. */
  dropout: boolean;
}

export const groupOf = (p: Pick<LoraParameter, 'group'>): string => p.group ?? DEFAULT_PARAMETER_GROUP;

/** `gradients.onnx`, or `gradients-<key>.onnx` for the graph of one shape key. */
export const gradientsFileName = (shapeKey?: string): string =>
  shapeKey === undefined ? 'gradients.onnx' : `gradients-${shapeKey}.onnx`;

/**
 * Builds, writes (into `folder`) and loads the gradients graph (of one shape key, for a
 * multi-shape model) on the device `settings.device` resolves to, in the precision that device
 * computes (`precisionOn`).
 */
export async function openGradientsSession<Batch>(
  model: TrainableModel<Batch>,
  folder: string,
  settings: Omit<SessionSettings, 'outputDir'>,
  shapeKey?: string,
): Promise<GradientsSession> {
  const choice = await chooseDevice(settings.device);
  const { precision } = precisionOn(settings.mixedPrecision, choice);
  const built = buildGradientsGraph(model, precision, shapeKey);
  settings.onGradientsGraph?.(built, shapeKey, precision);
  const session = await loadStepGraph(built.graph, gradientsFileName(shapeKey), folder, choice.device, {
    ...settings,
    ...(settings.gradientsOnDevice ? { deviceOutputs: built.parameters.map((p) => gradName(p.name)) } : {}),
  });
  return {
    session,
    parameters: built.parameters,
    precision,
    dropout: built.graph.inputs.some((t) => t.name === LORA_DROPOUT_SEED),
  };
}

/**
 * Writes a graph of the training step (gradients, validation loss) into `folder` as `fileName`
 * and loads it on `device`, with the run's threads; `deviceOutputs` stay on the device.
 */
export async function loadStepGraph(
  graph: Graph,
  fileName: string,
  folder: string,
  device: ConcreteDevice,
  settings: Pick<SessionSettings, 'threads' | 'copyExternalData' | 'onNotice'> & { deviceOutputs?: string[] },
): Promise<Session> {
  const path = await writeModel(graph, folder, {
    fileName,
    copyExternalData: settings.copyExternalData ?? false,
    onNotice: settings.onNotice,
  });
  return Session.create(path, {
    device,
    ...(settings.threads === undefined ? {} : { threads: settings.threads }),
    ...(settings.deviceOutputs === undefined ? {} : { deviceOutputs: settings.deviceOutputs }),
  });
}

/** Writes `update.onnx` into `folder` and loads it on the CPU (for the host state). */
export async function openUpdateSession(
  parameters: readonly TrainedParameter[],
  optimizer: OptimizerOptions,
  folder: string,
  threads: number | undefined,
): Promise<Session> {
  const graph = buildUpdateGraph(
    parameters.map((p) => ({ name: p.name, shape: p.shape, group: groupOf(p) })),
    optimizer,
  );
  return Session.create(await writeModel(graph, folder, { fileName: 'update.onnx' }), {
    device: 'cpu',
    ...(threads === undefined ? {} : { threads }),
  });
}
