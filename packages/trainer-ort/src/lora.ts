/**
 * LoRA injection: `y = x·Wᵀ + (alpha/r)·(dropout(x)·Aᵀ)·Bᵀ` around a frozen weight `W`, with
 * trainable `A` (kaiming-uniform, bound 1/√fan_in, as kohya and PEFT initialise it) and `B`
 * (zeros, so training starts from the base model). `A` and `B` are graph inputs: the trainer
 * feeds them each step in float32 (master weights) and the graph casts them to the compute type.
 */
import { createRng } from '@lora/dataset';
import {
  add,
  attr,
  type ConvOptions,
  cast,
  conv,
  less,
  matmul,
  mul,
  not,
  reshapeWith,
  shapeOf,
  type Tensor,
  transpose,
  where,
} from '@lora/engine';

export interface LoraOptions {
  rank: number;
  alpha: number;
  /**
   * Probability of zeroing an input element on the LoRA path; default 0. The masks are a hash of
   * the element index, the layer name and the `LORA_DROPOUT_SEED` graph input (fed per
   * micro-batch), so a resumed run draws exactly the masks an uninterrupted one would.
   */
  dropout?: number;
  /** The run's seed; `A`'s initial values come from the stream keyed by it and the layer name. Default 0. */
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

/** int64 scalar graph input that seeds every LoRA dropout mask of a micro-batch (any value in [0, 2³²]). */
export const LORA_DROPOUT_SEED = 'lora_dropout_seed';

/** Stream key of LoRA initialisation in `createRng(seed, LORA_INIT_STREAM, nameKey(name))`. */
const LORA_INIT_STREAM = 0x4c6f5241; // 'LoRA'
const GROUP_PATTERN = /^[A-Za-z0-9_-]+$/;

export interface LoraLayer {
  readonly output: Tensor;
  /** `A` (kohya `lora_down`, PEFT `lora_A`): `[r, in]`, or `[r, in, kh, kw]` for conv. */
  readonly down: LoraParameter;
  /** `B` (kohya `lora_up`, PEFT `lora_B`): `[out, r]`, or `[out, r, 1, 1]` for conv. */
  readonly up: LoraParameter;
  /** alpha / rank. */
  readonly scale: number;
}

/** FNV-1a over the UTF-16 code units: a stable 32-bit key for a layer name. */
function nameKey(name: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) hash = Math.imul(hash ^ name.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}

/**
 * Kaiming-uniform with a = √5, which is uniform in ±1/√fan_in (PyTorch's Linear default), drawn
 * from a stream keyed by the layer's name: layers get distinct values whatever order they are built in.
 */
function kaimingUniform(shape: readonly number[], fanIn: number, seed: number, name: string): Float32Array {
  const rng = createRng(seed, LORA_INIT_STREAM, nameKey(name));
  const bound = 1 / Math.sqrt(fanIn);
  return Float32Array.from(
    { length: shape.reduce((a, b) => a * b, 1) },
    () => -bound + 2 * bound * rng.next(),
  );
}

function parameter(
  x: Tensor,
  name: string,
  shape: readonly number[],
  initial: Float32Array,
  group: string | undefined,
): LoraParameter {
  const tensor = x.graph.input(name, 'float32', shape);
  return group === undefined ? { name, tensor, shape, initial } : { name, tensor, shape, initial, group };
}

function checkOptions(x: Tensor, name: string, options: LoraOptions): void {
  const fail = (message: string) => x.graph.error('E_INVALID_ARGUMENT', `LoRA '${name}'`, message);
  if (!Number.isInteger(options.rank) || options.rank < 1) {
    throw fail(`rank must be a positive integer, got ${options.rank}`);
  }
  const p = options.dropout ?? 0;
  if (!(p >= 0 && p < 1)) throw fail(`dropout must be in [0, 1), got ${p}`);
  if (options.group !== undefined && !GROUP_PATTERN.test(options.group)) {
    throw fail(`group must be letters, digits, '_' or '-', got '${options.group}'`);
  }
}

/** The hash below works modulo the Mersenne prime 2³¹ − 1, so every product stays below 2⁶² in int64. */
const PRIME = 2 ** 31 - 1;
const HASH_MULTIPLIER = 0x5bd1e995 % PRIME;
const HASH_OFFSET = 0x9e3779b9;

function modPrime(x: Tensor): Tensor {
  const p = x.graph.scalar(PRIME, 'int64');
  return x.graph.addNode('Mod', [x, p], [{ dtype: 'int64', shape: x.shape }], { fmod: attr.int(0) })[0]!;
}

/**
 * An integer hash into [0, 2³¹ − 1): a multiply, then two rounds of v ↦ v² + c (mod p), whose
 * squaring is what breaks up runs of consecutive inputs. Only Add, Mul and Mod on int64: every
 * provider has them (bitwise ops are missing from some), and the results are exact everywhere.
 */
function hash(x: Tensor): Tensor {
  let v = modPrime(mul(modPrime(x), HASH_MULTIPLIER));
  for (const round of [0, 1]) v = modPrime(add(mul(v, v), HASH_OFFSET + round));
  return v;
}

/**
 * `x` with each element zeroed with probability `p` and the rest scaled by 1/(1 − p) (as
 * `nn.Dropout` in PEFT's LoRA layers). The mask is a hash of (element index, `salt`, the fed
 * `LORA_DROPOUT_SEED`), so it is a pure function of the seed the loop feeds: no generator state
 * lives in the session (ONNX Dropout's would, and could not be restored on resume).
 */
export function loraDropout(x: Tensor, p: number, salt: number): Tensor {
  const graph = x.graph;
  const seed =
    graph.inputs.find((t) => t.name === LORA_DROPOUT_SEED) ?? graph.input(LORA_DROPOUT_SEED, 'int64', []);
  return graph.scope('lora_dropout', () => {
    const keyA = hash(add(seed, salt));
    const keyB = hash(add(keyA, HASH_OFFSET));
    const count = graph.addNode('ReduceProd', [shapeOf(x)], [{ dtype: 'int64', shape: [] }], {
      keepdims: attr.int(0),
    })[0]!;
    // One dim name per layer: the element counts of two layers' inputs need not be equal.
    const flat = graph.addNode(
      'Range',
      [graph.scalar(0, 'int64'), count, graph.scalar(1, 'int64')],
      [{ dtype: 'int64', shape: [`lora_dropout_elements_${salt}`] }],
    )[0]!;
    const index = reshapeWith(flat, shapeOf(x), x.shape);
    const bits = hash(add(hash(add(index, keyA)), keyB));
    const keep = not(less(bits, Math.round(p * PRIME)));
    return mul(x, where(keep, graph.scalar(1 / (1 - p), x.dtype), 0));
  });
}

function maybeDropout(x: Tensor, name: string, options: LoraOptions): Tensor {
  return options.dropout ? loraDropout(x, options.dropout, nameKey(name)) : x;
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
    throw x.graph.error(
      'E_SHAPE_MISMATCH',
      `LoRA '${name}'`,
      `weight must be static [out, in], got ${weight}`,
    );
  }
  const { rank } = options;
  const down = parameter(
    x,
    `${name}.lora_A.weight`,
    [rank, inFeatures],
    kaimingUniform([rank, inFeatures], inFeatures, options.seed ?? 0, name),
    options.group,
  );
  const up = parameter(
    x,
    `${name}.lora_B.weight`,
    [outFeatures, rank],
    new Float32Array(outFeatures * rank),
    options.group,
  );
  const scale = options.alpha / rank;
  return x.graph.scope(name, () => {
    let base = matmul(x, transpose(cast(weight, x.dtype)));
    if (bias) base = add(base, cast(bias, x.dtype));
    const hidden = matmul(maybeDropout(x, name, options), transpose(cast(down.tensor, x.dtype)));
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
      'E_SHAPE_MISMATCH',
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
    kaimingUniform(downShape, fanIn, options.seed ?? 0, name),
    options.group,
  );
  const upShape = [outChannels as number, rank, ...k.map(() => 1)];
  const up = parameter(
    x,
    `${name}.lora_B.weight`,
    upShape,
    new Float32Array((outChannels as number) * rank),
    options.group,
  );
  const scale = options.alpha / rank;
  return x.graph.scope(name, () => {
    const base = conv(x, cast(weight, x.dtype), bias && cast(bias, x.dtype), convOptions);
    const hidden = conv(maybeDropout(x, name, options), cast(down.tensor, x.dtype), undefined, convOptions);
    const delta = conv(hidden, cast(up.tensor, x.dtype));
    return { output: add(base, mul(delta, scale)), down, up, scale };
  });
}
