/**
 * The memory a run's step will need, said before the first step: an estimate from the gradients
 * graph (frozen weights as held, the most activations alive at once, LoRA and optimizer state),
 * with and without recomputation, and a warning with the settings that lower it when the CPU's
 * memory would not hold it. onnxruntime-node reports no GPU's memory size, so on a GPU the
 * estimate is said for the user to compare.
 */
import type { LoraConfig, TrainerEvent } from '@lora/config';
import { estimateMemory } from '@lora/engine';
import { type MemoryOptions, memoryOptions } from '../models/memory.ts';
import type { TrainableModel } from './model.ts';
import { buildGradientsGraph, type GradientsGraph, type GradientsGraphHook } from './step-graphs.ts';

/**
 * What the process holds besides the graph's own values: Node.js, onnxruntime and its kernels'
 * workspace (measured on the SD 1.5 and LLaMA benchmarks: 0.5–0.9 GiB above the estimate).
 */
export const RUNTIME_BYTES = 0.75 * 2 ** 30;
/** Per LoRA value beside the value itself: its gradient sum and AdamW's two moments, float32. */
const OPTIMIZER_BYTES_PER_VALUE = 3 * 4;

export interface MemoryNeed {
  weights: number;
  activations: number;
  /** LoRA values, their optimizer state and the fed batch. */
  training: number;
  /** All of it, with `RUNTIME_BYTES`. */
  total: number;
}

/** The estimate for one gradients graph, named dims sized by `dims`. */
export function memoryNeed(built: GradientsGraph, dims: Readonly<Record<string, number>>): MemoryNeed {
  const { weights, inputs, peakActivations } = estimateMemory(built.graph, dims);
  const values = built.parameters.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
  const training = inputs + values * OPTIMIZER_BYTES_PER_VALUE;
  return {
    weights,
    activations: peakActivations,
    training,
    total: weights + peakActivations + training + RUNTIME_BYTES,
  };
}

const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;

/** The config changes that lower a step's memory, of those not made yet. */
export function memorySavers(config: LoraConfig, wideWeights: boolean): string[] {
  const savers: string[] = [];
  if (!config.gradient_checkpointing) savers.push('gradient_checkpointing: true');
  if (config.task === 'sd' && !config.memory_efficient_attention)
    savers.push('memory_efficient_attention: true');
  // LLaMA-family weights are trained in bf16 (fp16's range can overflow them); SD's are fine in fp16.
  if (wideWeights && config.base_precision === undefined)
    savers.push(`base_precision: ${config.task === 'sd' ? 'fp16' : 'bf16'}`);
  if (config.batch_size > 1)
    savers.push('a smaller batch_size (with gradient_accumulation_steps to keep the effective batch)');
  savers.push(config.task === 'sd' ? 'a lower resolution' : 'a lower max_seq_len');
  return savers;
}

/** What the estimate needs from the run's model family. */
export interface MemoryEstimateSource {
  /** Sizes of the gradients graph's named dims in the largest micro-batch (the batch, the sequence). */
  readonly dims: Readonly<Record<string, number>>;
  /** The run's model with other memory options, to estimate the other side of the trade. */
  modelWith(memory: MemoryOptions): TrainableModel<unknown>;
}

/**
 * The memory options on the other side of the trade: the recomputing ones when the config asks
 * for none, none when it asks for some; the held weight type stays.
 */
function otherSide(config: LoraConfig): { memory: MemoryOptions; label: string } {
  const current = memoryOptions(config);
  const base = current.weightDtype === undefined ? {} : { weightDtype: current.weightDtype };
  if (current.checkpointBlocks || current.attentionQueryChunk !== undefined) {
    return { memory: base, label: 'without gradient checkpointing' };
  }
  const sd = config.task === 'sd';
  const keys = sd ? 'gradient_checkpointing and memory_efficient_attention' : 'gradient_checkpointing';
  return {
    memory: memoryOptions({
      ...config,
      gradient_checkpointing: true,
      ...(sd ? { memory_efficient_attention: true } : {}),
    }),
    label: `with ${keys}`,
  };
}

/**
 * Says each gradients graph's estimate once it is built, beside the estimate on the other side of
 * the checkpointing trade. `available` is the CPU's memory, or undefined on a GPU.
 */
export function memoryReporter(
  config: LoraConfig,
  source: MemoryEstimateSource,
  info: (message: string) => void,
  emit: (event: TrainerEvent) => void,
  available: number | undefined,
): GradientsGraphHook {
  const other = otherSide(config);
  return (built, shapeKey, precision) => {
    const need = memoryNeed(built, source.dims);
    const alternative = memoryNeed(
      buildGradientsGraph(source.modelWith(other.memory), precision, shapeKey),
      source.dims,
    );
    const which = shapeKey === undefined ? 'a step' : `a step at latent size ${shapeKey}`;
    info(
      `memory for ${which}: about ${gib(need.total)} (frozen weights ${gib(need.weights)}, ` +
        `activations up to ${gib(need.activations)}${config.gradient_checkpointing ? ' with gradient checkpointing' : ''}, ` +
        `LoRA, optimizer state and batch ${gib(need.training)}, runtime ${gib(RUNTIME_BYTES)}); ` +
        `${other.label}: about ${gib(alternative.total)} (activations up to ${gib(alternative.activations)})`,
    );
    if (available !== undefined && need.total > available) {
      const wideWeights = [...built.graph.initializers].some(
        ([tensor, data]) => data.kind === 'external' && tensor.dtype === 'float32',
      );
      const fits = alternative.total < need.total && alternative.total <= available;
      emit({
        type: 'warning',
        code: 'memory_estimate',
        message:
          `${which} needs about ${gib(need.total)}, more than this machine's ${gib(available)}; ` +
          `to need less, set ${memorySavers(config, wideWeights).join(', or ')}` +
          (fits ? ` (${other.label} it needs about ${gib(alternative.total)})` : ''),
      });
    }
  };
}
