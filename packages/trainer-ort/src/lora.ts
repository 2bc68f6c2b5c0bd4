/**
 * LoRA injection: `y = x·Wᵀ + (alpha/r)·(dropout(x)·Aᵀ)·Bᵀ` around a frozen weight `W`, with
 * trainable `A` (kaiming-uniform, bound 1/√fan_in, as kohya and PEFT initialise it) and `B`
 * (zeros, so training starts from the base model). `A` and `B` are graph inputs: the trainer
 * feeds them each step in float32 (master weights) and the graph casts them to the compute type.
 */
import type { Tensor } from './graph/graph.ts';
import { add, cast, mul } from './graph/ops/elementwise.ts';
import { transpose } from './graph/ops/layout.ts';
import { matmul } from './graph/ops/linalg.ts';
import { type ConvOptions, conv, dropout } from './graph/ops/nn.ts';
import { createRng } from './random.ts';

export interface LoraOptions {
  rank: number;
  alpha: number;
  /** Probability of zeroing an input element on the LoRA path; default 0 (no Dropout node). */
  dropout?: number;
  /** Seed of `A`'s initial values; default 0. */
  seed?: number;
}

/** A trainable tensor with its initial value. */
export interface LoraParameter {
  readonly name: string;
  readonly tensor: Tensor;
  readonly shape: readonly number[];
  readonly initial: Float32Array;
}

export interface LoraLayer {
  readonly output: Tensor;
  /** `A` (kohya `lora_down`, PEFT `lora_A`): `[r, in]`, or `[r, in, kh, kw]` for conv. */
  readonly down: LoraParameter;
  /** `B` (kohya `lora_up`, PEFT `lora_B`): `[out, r]`, or `[out, r, 1, 1]` for conv. */
  readonly up: LoraParameter;
  /** alpha / rank. */
  readonly scale: number;
}

/** Kaiming-uniform with a = √5, which is uniform in ±1/√fan_in (PyTorch's Linear default). */
function kaimingUniform(shape: readonly number[], fanIn: number, seed: number): Float32Array {
  const rng = createRng(seed);
  const bound = 1 / Math.sqrt(fanIn);
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.uniform(-bound, bound));
}

function parameter(x: Tensor, name: string, shape: readonly number[], initial: Float32Array): LoraParameter {
  return { name, tensor: x.graph.input(name, 'float32', shape), shape, initial };
}

function checkOptions(x: Tensor, name: string, options: LoraOptions): void {
  if (!Number.isInteger(options.rank) || options.rank < 1) {
    throw x.graph.error(
      'INVALID_ARGUMENT',
      `LoRA '${name}'`,
      `rank must be a positive integer, got ${options.rank}`,
    );
  }
}

function maybeDropout(x: Tensor, options: LoraOptions): Tensor {
  return options.dropout ? dropout(x, options.dropout).output : x;
}

/**
 * A linear layer `x·Wᵀ (+ bias)` with a LoRA branch. `weight` is `[out, in]` (PyTorch layout) in
 * any float type; it is cast to `x`'s type. Parameters are named `<name>.lora_A.weight` and
 * `<name>.lora_B.weight`.
 */
export function loraLinear(
  x: Tensor,
  weight: Tensor,
  name: string,
  options: LoraOptions,
  bias?: Tensor,
): LoraLayer {
  checkOptions(x, name, options);
  const [outFeatures, inFeatures] = weight.shape;
  if (weight.rank !== 2 || typeof outFeatures !== 'number' || typeof inFeatures !== 'number') {
    throw x.graph.error('SHAPE_MISMATCH', `LoRA '${name}'`, `weight must be static [out, in], got ${weight}`);
  }
  const { rank } = options;
  const down = parameter(
    x,
    `${name}.lora_A.weight`,
    [rank, inFeatures],
    kaimingUniform([rank, inFeatures], inFeatures, options.seed ?? 0),
  );
  const up = parameter(x, `${name}.lora_B.weight`, [outFeatures, rank], new Float32Array(outFeatures * rank));
  const scale = options.alpha / rank;
  return x.graph.scope(name, () => {
    let base = matmul(x, transpose(cast(weight, x.dtype)));
    if (bias) base = add(base, cast(bias, x.dtype));
    const hidden = matmul(maybeDropout(x, options), transpose(cast(down.tensor, x.dtype)));
    const delta = matmul(hidden, transpose(cast(up.tensor, x.dtype)));
    return { output: add(base, mul(delta, scale)), down, up, scale };
  });
}

/**
 * A convolution with a LoRA branch, as kohya builds it: `A` is a convolution with the base
 * kernel size, stride, padding and dilation down to `rank` channels, `B` a 1×1 convolution
 * back up. `weight` is `[out, in, k…]`; grouped base convolutions are not supported.
 */
export function loraConv(
  x: Tensor,
  weight: Tensor,
  name: string,
  options: LoraOptions,
  convOptions: ConvOptions = {},
  bias?: Tensor,
): LoraLayer {
  checkOptions(x, name, options);
  const [outChannels, inChannels, ...kernel] = weight.shape;
  if (
    ![outChannels, inChannels, ...kernel].every((d) => typeof d === 'number') ||
    (convOptions.group ?? 1) !== 1
  ) {
    throw x.graph.error(
      'SHAPE_MISMATCH',
      `LoRA '${name}'`,
      `weight must be static [out, in, k…] of an ungrouped conv, got ${weight}`,
    );
  }
  const { rank } = options;
  const k = kernel as number[];
  const downShape = [rank, inChannels as number, ...k];
  const fanIn = (inChannels as number) * k.reduce((a, b) => a * b, 1);
  const down = parameter(
    x,
    `${name}.lora_A.weight`,
    downShape,
    kaimingUniform(downShape, fanIn, options.seed ?? 0),
  );
  const upShape = [outChannels as number, rank, ...k.map(() => 1)];
  const up = parameter(x, `${name}.lora_B.weight`, upShape, new Float32Array((outChannels as number) * rank));
  const scale = options.alpha / rank;
  return x.graph.scope(name, () => {
    const base = conv(x, cast(weight, x.dtype), bias && cast(bias, x.dtype), convOptions);
    const hidden = conv(maybeDropout(x, options), cast(down.tensor, x.dtype), undefined, convOptions);
    const delta = conv(hidden, cast(up.tensor, x.dtype));
    return { output: add(base, mul(delta, scale)), down, up, scale };
  });
}
