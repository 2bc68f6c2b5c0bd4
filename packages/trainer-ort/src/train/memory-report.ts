/**
 * The memory a run's step will need, said before the first step: an estimate from the gradients
 * graph (frozen weights as stored, the most activations alive at once, LoRA and optimizer state),
 * and a warning with the settings that lower it when the CPU's memory would not hold it. onnxruntime-node
 * reports no GPU's memory size, so on a GPU the estimate is said for the user to compare.
 */
import type { LoraConfig, TrainerEvent } from '@lora/config';
import { estimateMemory } from '@lora/engine';
import type { GradientsGraph, GradientsGraphHook } from './step-graphs.ts';

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
export function memorySavers(config: LoraConfig): string[] {
  const savers: string[] = [];
  if (!config.gradient_checkpointing) savers.push('gradient_checkpointing: true');
  if (config.task === 'sd' && !config.memory_efficient_attention)
    savers.push('memory_efficient_attention: true');
  if (config.batch_size > 1)
    savers.push('a smaller batch_size (with gradient_accumulation_steps to keep the effective batch)');
  savers.push(config.task === 'sd' ? 'a lower resolution' : 'a lower max_seq_len');
  return savers;
}

/**
 * Says each gradients graph's estimate once it is built; `dims` sizes the graph's named dims
 * (the batch, the sequence). `available` is the CPU's memory, or undefined on a GPU.
 */
export function memoryReporter(
  config: LoraConfig,
  dims: Readonly<Record<string, number>>,
  info: (message: string) => void,
  emit: (event: TrainerEvent) => void,
  available: number | undefined,
): GradientsGraphHook {
  return (built, shapeKey) => {
    const need = memoryNeed(built, dims);
    const which = shapeKey === undefined ? 'a step' : `a step at latent size ${shapeKey}`;
    info(
      `memory for ${which}: about ${gib(need.total)} (frozen weights ${gib(need.weights)} as stored, ` +
        `activations up to ${gib(need.activations)}${config.gradient_checkpointing ? ' with gradient checkpointing' : ''}, ` +
        `LoRA, optimizer state and batch ${gib(need.training)}, runtime ${gib(RUNTIME_BYTES)})`,
    );
    if (available !== undefined && need.total > available) {
      emit({
        type: 'warning',
        code: 'memory_estimate',
        message:
          `${which} needs about ${gib(need.total)}, more than this machine's ${gib(available)}; ` +
          `to need less, set ${memorySavers(config).join(', or ')}`,
      });
    }
  };
}
