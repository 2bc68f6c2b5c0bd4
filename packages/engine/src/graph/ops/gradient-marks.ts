/**
 * Marks that tell autodiff how to treat part of a graph: a constant (`stopGradient`), a recomputed
 * block (`checkpoint`), a weight converted again wherever the backward pass reads it (`castAtUse`).
 */
import { BYTES_PER_ELEMENT, type DType } from '../dtype.ts';
import type { Tensor } from '../graph.ts';
import { isStaticShape } from '../shape.ts';
import { add, cast, mul } from './elementwise.ts';
import { gather, reshape, reshapeWith, slice } from './layout.ts';

/**
 * `x`'s value, as a constant to autodiff: no gradient flows back through it (PyTorch's
 * `detach()`). DoRA uses it for the weight norm, as its paper and PEFT do.
 */
export function stopGradient(x: Tensor): Tensor {
  const [out] = x.graph.addNode('Identity', [x], [{ dtype: x.dtype, shape: x.shape }]);
  x.graph.gradientStops.add(out!.producer!);
  return out!;
}

/**
 * `build(x)` as a gradient checkpoint: the forward pass keeps only the block's input and output,
 * and the backward pass recomputes the block's activations when its gradient arrives (so they
 * never all live at once). The recomputation takes `x + 0 · (an element of the arriving gradient
 * and of each gradient toward a trained tensor made since the last recomputation)`: the data
 * dependencies run it in the backward pass, one block at a time, whatever order a runtime picks
 * among ready nodes, and no graph optimiser can merge it with the forward copy (onnxruntime's
 * common-subexpression elimination would, even at level `basic`).
 * Nodes the block uses from outside it (weights, tables) are read, not recomputed. Blocks nest:
 * an outer block's recomputation runs an inner block forward only, and the inner block is
 * recomputed again when its own gradient arrives. A Dropout in a block keeps its forward mask.
 */
export function checkpoint(x: Tensor, build: (x: Tensor) => Tensor): Tensor {
  const graph = x.graph;
  const start = graph.nodes.length;
  const output = build(x);
  const nodes = graph.nodes.slice(start);
  graph.checkpoints.push({ input: x, output, nodes });
  return output;
}

/**
 * A frozen `weight` stored in a narrower type (F16, BF16) as `dtype`, converted where it is used
 * instead of once for the run, so the weights stay at their stored size between uses; `rows`
 * converts only rows `[start, end)` (a vocabulary projection in parts, so no converted copy of
 * the whole table exists at once). onnxruntime folds a conversion of an initializer into a
 * converted copy when the session loads; this one reshapes (or slices) the weight with a shape
 * (or start) that depends on `anchor` (a value computed just before the use: the layer's input),
 * which no optimiser can fold and which runs only once `anchor` exists. Autodiff converts the
 * weight again, anchored to the arriving gradient, wherever a backward rule reads it (or a
 * transpose or reshape of it), so no converted copy lives from the forward pass to the backward pass.
 */
export function castAtUse(
  weight: Tensor,
  dtype: DType,
  anchor: Tensor,
  rows?: readonly [start: number, end: number],
): Tensor {
  const graph = weight.graph;
  const dims = weight.shape;
  if (!isStaticShape(dims)) {
    throw graph.error('E_SHAPE_MISMATCH', 'castAtUse', `weight ${weight} needs a static shape`);
  }
  const [start, end] = rows ?? [0, dims[0]!];
  if (start < 0 || end > dims[0]! || start >= end) {
    throw graph.error('E_INVALID_ARGUMENT', 'castAtUse', `rows [${start}, ${end}) of ${weight}`);
  }
  const part = rows === undefined ? weight : slice(weight, { starts: [start], ends: [end], axes: [0] });
  // A narrowing conversion (F32 → F16) is better folded once: the result is the smaller copy.
  if (BYTES_PER_ELEMENT[dtype] <= BYTES_PER_ELEMENT[weight.dtype]) return cast(part, dtype);
  const output = graph.scope('cast_at_use', () => {
    // One element of the anchor, as an int64 0 (through bool: a NaN or infinite anchor still gives 0).
    const element = gather(reshape(anchor, [-1]), graph.constant([0], 'int64', []));
    const zero = mul(cast(cast(element, 'bool'), 'int64'), 0);
    if (rows === undefined) {
      const shape = add(graph.constant(dims, 'int64', [dims.length]), zero);
      return cast(reshapeWith(weight, shape, dims), dtype);
    }
    const starts = add(graph.constant([start], 'int64', [1]), zero);
    const [sliced] = graph.addNode(
      'Slice',
      [weight, starts, graph.constant([end], 'int64', [1]), graph.constant([0], 'int64', [1])],
      [{ dtype: weight.dtype, shape: [end - start, ...dims.slice(1)] }],
    );
    return cast(sliced!, dtype);
  });
  graph.recasts.set(output, (again) => castAtUse(weight, dtype, again, rows));
  return output;
}
