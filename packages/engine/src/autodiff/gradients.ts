import { isFloat } from '../graph/dtype.ts';
import type { CheckpointBlock, Node, Tensor } from '../graph/graph.ts';
import { add, cast, mul } from '../graph/ops/elementwise.ts';
import { expandAs, zerosLike } from '../graph/ops/layout.ts';
import { reduceSum } from '../graph/ops/reduce.ts';
import { opKey } from '../graph/opsets.ts';
import { formatShape, isStaticShape, sameShape } from '../graph/shape.ts';
import { VJP, type VjpContext } from './vjp.ts';

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
 * never all live at once). The recomputation takes `x + 0 · Σ(gradient of the output)`: the data
 * dependency runs it in the backward pass, and no graph optimiser can merge it with the forward
 * copy (onnxruntime's common-subexpression elimination would, even at level `basic`). Nodes the
 * block uses from outside it (weights, tables) are read, not recomputed.
 */
export function checkpoint(x: Tensor, build: (x: Tensor) => Tensor): Tensor {
  const graph = x.graph;
  const start = graph.nodes.length;
  const output = build(x);
  const nodes = graph.nodes.slice(start);
  const random = nodes.find((node) => node.opType === 'Dropout');
  if (random) {
    throw graph.error(
      'E_GRADIENT_UNSUPPORTED',
      `checkpoint ${random.name}`,
      'a recomputed Dropout would draw another mask',
    );
  }
  graph.checkpoints.push({ input: x, output, nodes });
  return output;
}

export interface GradientsOptions {
  /** The gradient of `loss` to start from; default ones (d loss / d loss). */
  seed?: Tensor;
}

/**
 * Appends the reverse pass to `loss`'s graph and returns d loss / d t for each tensor in `wrt`,
 * in order. Only ops on a path from a `wrt` tensor to `loss` are differentiated, and only
 * toward their inputs on such a path, so frozen weights get no weight-gradient nodes. A tensor
 * used several times gets the sum of its gradients; one not on any path gets zeros.
 */
export function gradients(loss: Tensor, wrt: readonly Tensor[], options: GradientsOptions = {}): Tensor[] {
  const graph = loss.graph;
  for (const t of wrt) {
    graph.own(t, 'gradients');
    if (!isFloat(t.dtype))
      throw graph.error('E_DTYPE_MISMATCH', 'gradients', `cannot differentiate toward ${t}`);
  }
  const nodes = [...graph.nodes];

  // Tensors that depend on a wrt tensor through floating-point values.
  const dependent = new Set<Tensor>(wrt);
  for (const node of nodes) {
    if (graph.gradientStops.has(node)) continue;
    if (node.inputs.some((i) => i && dependent.has(i))) {
      for (const o of node.outputs) if (isFloat(o.dtype)) dependent.add(o);
    }
  }
  // …and that the loss depends on.
  const onPath = new Set<Tensor>();
  const ancestors = new Set<Tensor>([loss]);
  for (let n = nodes.length - 1; n >= 0; n--) {
    const node = nodes[n]!;
    if (!node.outputs.some((o) => ancestors.has(o))) continue;
    for (const i of node.inputs) if (i) ancestors.add(i);
  }
  for (const t of dependent) if (ancestors.has(t)) onPath.add(t);

  const pending = new Map<Tensor, Tensor[]>();
  const contribute = (t: Tensor, g: Tensor) => {
    const list = pending.get(t);
    if (list) list.push(g);
    else pending.set(t, [g]);
  };
  const total = (t: Tensor): Tensor | undefined => {
    const list = pending.get(t);
    if (!list) return undefined;
    const sum = list.reduce((a, b) => add(a, b));
    pending.set(t, [sum]);
    return sum;
  };

  // Checkpointed blocks: each node's recomputed twin, made when the block's gradient arrives.
  const blockOf = new Map<Node, CheckpointBlock>();
  for (const block of graph.checkpoints) for (const n of block.nodes) blockOf.set(n, block);
  const twins = new Map<Node, Node>();
  const recompute = (block: CheckpointBlock) =>
    graph.scope('recompute', () => {
      const gradient = total(block.output)!;
      const after = mul(cast(reduceSum(gradient), block.input.dtype), 0);
      const copies = new Map<Tensor, Tensor>([[block.input, add(block.input, after)]]);
      for (const original of block.nodes) {
        const outputs = graph.addNode(
          original.opType,
          original.inputs.map((t) => t && (copies.get(t) ?? t)),
          original.outputs.map(({ dtype, shape }) => ({ dtype, shape })),
          original.attributes,
          undefined,
          original.domain,
        );
        for (const [i, o] of original.outputs.entries()) copies.set(o, outputs[i]!);
        twins.set(original, outputs[0]!.producer!);
      }
    });

  if (onPath.has(loss)) contribute(loss, options.seed ?? ones(loss));
  for (let n = nodes.length - 1; n >= 0; n--) {
    const node = nodes[n]!;
    if (!node.outputs.some((o) => pending.has(o))) continue;
    const targets = node.inputs.flatMap((t, i) => (t && onPath.has(t) ? [i] : []));
    if (targets.length === 0) continue;
    const block = blockOf.get(node);
    if (block && !twins.has(node)) recompute(block);
    graph.scope(`grad:${node.name}`, () => {
      // Inside a checkpoint the rule reads the recomputed activations; gradients go to the originals.
      const ctx = context(twins.get(node) ?? node, node.outputs.map(total));
      const rule = VJP[opKey(node)];
      if (!rule) {
        throw graph.error(
          'E_NO_GRADIENT_RULE',
          `${opKey(node)} ${node.name}`,
          'it lies between a trainable tensor and the loss but has no entry in the VJP table',
        );
      }
      for (const i of targets) {
        const input = node.inputs[i]!;
        const vjp = typeof rule === 'function' ? rule(i) : rule[i];
        if (!vjp) {
          throw graph.error(
            'E_GRADIENT_UNSUPPORTED',
            `${node.opType} ${node.name}`,
            `input ${i} (${input}) carries no gradient`,
          );
        }
        const g = vjp(ctx);
        checkGradient(node, input, g);
        contribute(input, g);
      }
    });
  }
  return wrt.map((t) => total(t) ?? graph.scope('grad:zeros', () => zerosLike(t)));
}

function context(node: Node, grads: readonly (Tensor | undefined)[]): VjpContext {
  const memo = new Map<string, unknown>();
  return {
    node,
    inputs: node.inputs,
    outputs: node.outputs,
    grads,
    get grad() {
      const g = grads[0];
      if (!g)
        throw node.outputs[0]!.graph.error(
          'E_GRADIENT_UNSUPPORTED',
          node.name,
          'no gradient reaches output 0',
        );
      return g;
    },
    shared<T>(key: string, make: () => T): T {
      if (!memo.has(key)) memo.set(key, make());
      return memo.get(key) as T;
    },
  };
}

function ones(loss: Tensor): Tensor {
  const one = loss.graph.scalar(1, loss.dtype);
  return loss.rank === 0 ? one : expandAs(one, loss);
}

/** A rule that returns the wrong shape or type is a bug here, not in the caller's graph: say which rule. */
function checkGradient(node: Node, input: Tensor, g: Tensor): void {
  const shapesKnown = isStaticShape(g.shape) && isStaticShape(input.shape);
  if (g.dtype !== input.dtype || (shapesKnown && !sameShape(g.shape, input.shape))) {
    throw input.graph.error(
      'E_SHAPE_MISMATCH',
      `VJP of ${node.opType}`,
      `gradient ${g.dtype}${formatShape(g.shape)} does not match input ${input}`,
    );
  }
}
