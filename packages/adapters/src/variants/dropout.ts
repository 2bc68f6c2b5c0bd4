/**
 * LoRA dropout: the masks are a hash of the element index, the layer name and the
 * `LORA_DROPOUT_SEED` graph input (fed per micro-batch), so a resumed run draws exactly the masks
 * an uninterrupted one would.
 */
import { add, attr, less, mul, not, shapeOf, squeeze, type Tensor, unsqueeze, where } from '@lora/engine';

/** int64 scalar graph input that seeds every LoRA dropout mask of a micro-batch (any value in [0, 2³²]). */
export const LORA_DROPOUT_SEED = 'lora_dropout_seed';

/** FNV-1a over the UTF-16 code units: a stable 32-bit key for a layer name. */
export function nameKey(name: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) hash = Math.imul(hash ^ name.charCodeAt(i), 0x01000193);
  return hash >>> 0;
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
 * Each element's row-major position in `x` (int64, `x`'s shape): one Range per axis, placed on
 * its axis and scaled by that axis's stride, summed by broadcasting. Every dim of the result is a
 * dim of `x`, so the graph's shapes (and the memory estimate) need no new size.
 */
function elementIndex(x: Tensor): Tensor {
  const graph = x.graph;
  let index: Tensor | undefined;
  let stride: Tensor = graph.scalar(1, 'int64');
  for (let axis = x.rank - 1; axis >= 0; axis--) {
    const size = squeeze(shapeOf(x, axis, axis + 1), [0]);
    const positions = graph.addNode(
      'Range',
      [graph.scalar(0, 'int64'), size, graph.scalar(1, 'int64')],
      [{ dtype: 'int64', shape: [x.shape[axis]!] }],
    )[0]!;
    const others = x.shape.map((_, a) => a).filter((a) => a !== axis);
    const term = mul(others.length > 0 ? unsqueeze(positions, others) : positions, stride);
    index = index === undefined ? term : add(index, term);
    stride = mul(stride, size);
  }
  return index ?? graph.scalar(0, 'int64');
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
    const bits = hash(add(hash(add(elementIndex(x), keyA)), keyB));
    const keep = not(less(bits, Math.round(p * PRIME)));
    return mul(x, where(keep, graph.scalar(1 / (1 - p), x.dtype), 0));
  });
}
