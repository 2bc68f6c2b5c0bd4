/**
 * LoRA variants on a model's layers, for training: `@lora/adapters` builds the variant's graph
 * ops and says how each trainable tensor starts; this module gives them their starting values
 * (down's kaiming-uniform draws from a stream keyed by the run's seed and the layer's name, so
 * layers get distinct values whatever order they are built in; DoRA's magnitude from the frozen
 * weight) and their parameter group. Trainable tensors are float32 graph inputs (master weights)
 * that the graph casts to the compute type.
 */
import {
  type AdaptOptions,
  adaptLayer,
  type Init,
  type NormAxis,
  nameKey,
  type VariantId,
} from '@lora/adapters';
import { createRng } from '@lora/dataset';
import type { ConvOptions, Tensor } from '@lora/engine';
import { frozenValues } from './weights.ts';

export interface LoraOptions {
  /** The variant (`network` in the config); default `lora`. */
  network?: VariantId;
  rank: number;
  alpha: number;
  /** rsLoRA: scale alpha / √rank. */
  rslora?: boolean;
  /** DoRA's norm axis (the file layout decides it); default per output row. */
  normAxis?: NormAxis;
  /**
   * Probability of zeroing an input element on the adapter's path; default 0. The masks are a
   * pure function of the `LORA_DROPOUT_SEED` graph input the loop feeds per micro-batch.
   */
  dropout?: number;
  /** The run's seed: the stream the starting values are drawn from. Default 0. */
  seed?: number;
  /** Parameter group (its own learning rate in the training loop); default `DEFAULT_PARAMETER_GROUP`. */
  group?: string;
}

/** A trainable tensor with its initial value. */
export interface LoraParameter {
  readonly name: string;
  readonly tensor: Tensor;
  readonly shape: readonly number[];
  readonly initial: Float32Array;
  /** Parameter group; absent means `DEFAULT_PARAMETER_GROUP`. */
  readonly group?: string;
}

/** The group of parameters that take the run's main learning rate. */
export const DEFAULT_PARAMETER_GROUP = 'default';

/** Stream key of LoRA initialisation in `createRng(seed, LORA_INIT_STREAM, nameKey(name))`. */
const LORA_INIT_STREAM = 0x4c6f5241; // 'LoRA'
const GROUP_PATTERN = /^[A-Za-z0-9_-]+$/;

export interface LoraLayer {
  readonly output: Tensor;
  /** The variant's trainable tensors in its role order (LoRA: down `A`, up `B`; DoRA adds the magnitude). */
  readonly parameters: readonly LoraParameter[];
  /** alpha / rank (alpha / √rank with rsLoRA). */
  readonly scale: number;
}

/**
 * Starting values of one trainable tensor; random ones come from a stream keyed by the run's seed
 * and the tensor's name, so every tensor gets its own values whatever order layers are built in.
 */
function initialValues(init: Init, shape: readonly number[], weight: Tensor, seed: number, name: string) {
  const size = shape.reduce((a, b) => a * b, 1);
  switch (init.kind) {
    case 'zeros':
      return new Float32Array(size);
    case 'kaiming-uniform': {
      const rng = createRng(seed, LORA_INIT_STREAM, nameKey(name));
      const bound = 1 / Math.sqrt(init.fanIn);
      return Float32Array.from({ length: size }, () => -bound + 2 * bound * rng.next());
    }
    case 'normal': {
      const rng = createRng(seed, LORA_INIT_STREAM, nameKey(name));
      return Float32Array.from({ length: size }, () => init.std * rng.normal());
    }
    case 'weight-norm':
      return weightNorms(frozenValues(weight), weight.shape as number[], init.axis);
  }
}

/** ‖W‖ per output row, or per input column (over the kernel too), in float64 then rounded. */
function weightNorms(values: Float32Array, shape: readonly number[], axis: NormAxis): Float32Array {
  const [out, inputs] = shape as [number, number];
  const inner = values.length / out;
  const perInput = inner / inputs;
  const sums = new Float64Array(axis === 'output' ? out : inputs);
  for (let i = 0; i < values.length; i++) {
    const channel = axis === 'output' ? Math.floor(i / inner) : Math.floor((i % inner) / perInput);
    sums[channel]! += values[i]! * values[i]!;
  }
  return Float32Array.from(sums, Math.sqrt);
}

/**
 * `weight` (`[out, in]` for a linear layer, `[out, in, k…]` with `conv`) in any float type, with
 * the options' variant applied under the name `name` (a module path: parameters are named
 * `<name>.lora_A.weight`, `<name>.lora_B.weight`, …, PEFT's keys).
 */
export function loraLayer(
  x: Tensor,
  weight: Tensor,
  name: string,
  options: LoraOptions,
  base: { bias?: Tensor; conv?: ConvOptions } = {},
): LoraLayer {
  if (options.group !== undefined && !GROUP_PATTERN.test(options.group)) {
    throw x.graph.error(
      'E_INVALID_ARGUMENT',
      `LoRA '${name}'`,
      `group must be letters, digits, '_' or '-', got '${options.group}'`,
    );
  }
  const { network = 'lora', rank, alpha, rslora, normAxis, dropout } = options;
  const adapt: AdaptOptions = {
    network,
    rank,
    alpha,
    ...(rslora ? { rslora } : {}),
    ...(normAxis ? { normAxis } : {}),
    ...(dropout ? { dropout } : {}),
  };
  const layer = adaptLayer(x, weight, name, adapt, base);
  const parameters = layer.parameters.map((p) => ({
    name: p.name,
    tensor: p.tensor,
    shape: p.shape,
    initial: initialValues(p.init, p.shape, weight, options.seed ?? 0, p.name),
    ...(options.group === undefined ? {} : { group: options.group }),
  }));
  return { output: layer.output, parameters, scale: layer.scale };
}
