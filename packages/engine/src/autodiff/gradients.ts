import { isFloat } from '../graph/dtype.ts';
import type { CheckpointBlock, Graph, Node, Tensor } from '../graph/graph.ts';
import { add, cast, div, mul, sub } from '../graph/ops/elementwise.ts';
import { expandAs, gather, reshape, zerosLike } from '../graph/ops/layout.ts';
import { opKey } from '../graph/opsets.ts';
import { formatShape, isStaticShape, sameShape } from '../graph/shape.ts';
import { VJP, type VjpContext } from './vjp.ts';

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
  const wrtSet = new Set(wrt);

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

  // Checkpointed blocks, innermost first (a block is recorded after the blocks nested in it).
  const innermost = new Map<Node, CheckpointBlock>();
  const parent = new Map<CheckpointBlock, CheckpointBlock>();
  for (const block of graph.checkpoints) {
    for (const n of block.nodes) {
      const inner = innermost.get(n);
      if (!inner) innermost.set(n, block);
      else if (inner !== block && !parent.has(inner)) parent.set(inner, block);
    }
  }
  // The recomputed value of each tensor, and the recomputed twin each rule of a block node reads.
  const copies = new Map<Tensor, Tensor>();
  const twins = new Map<Node, Node>();
  const recomputed = new Set<CheckpointBlock>();
  // The gradients of `wrt` tensors made since the last recomputation: the next one waits for them.
  // onnxruntime may run nodes in any order of their dependencies; without this it computed the
  // LoRA gradients last, keeping every block's recomputed activations alive until the end.
  let finished: Tensor[] = [];
  const recomputation = new Set<Node>();
  const recompute = (block: CheckpointBlock, trigger: Tensor): void => {
    const outer = parent.get(block);
    if (outer && !recomputed.has(outer)) recompute(outer, trigger);
    recomputed.add(block);
    const start = graph.nodes.length;
    graph.scope('recompute', () => {
      const input = copies.get(block.input) ?? block.input;
      // One element of each gradient, times 0: a sum over a gradient could overflow in half precision.
      const zero = [trigger, ...finished]
        .map((g) => mul(cast(gather(reshape(g, [-1]), graph.constant([0], 'int64', [])), input.dtype), 0))
        .reduce((a, b) => add(a, b));
      finished = [];
      const local = new Map([[block.input, add(input, zero)]]);
      for (const original of block.nodes) {
        if (original.opType === 'Dropout') {
          // The forward pass's mask again, not a new draw; the rule reads the original node's mask.
          const [x, ratio] = original.inputs.map((t) => t && (local.get(t) ?? copies.get(t) ?? t));
          const [output, mask] = original.outputs;
          local.set(output!, mul(x!, div(cast(mask!, x!.dtype), sub(1, ratio!))));
          continue;
        }
        const outputs = graph.addNode(
          original.opType,
          original.inputs.map((t) => t && (local.get(t) ?? copies.get(t) ?? t)),
          original.outputs.map(({ dtype, shape }) => ({ dtype, shape })),
          original.attributes,
          undefined,
          original.domain,
        );
        for (const [i, o] of original.outputs.entries()) {
          local.set(o, outputs[i]!);
          const recast = graph.recasts.get(o);
          if (recast) graph.recasts.set(outputs[i]!, recast);
        }
        // A nested block's nodes are copied only to give its output; its rules read its own recomputation.
        if (innermost.get(original) === block) twins.set(original, outputs[0]!.producer!);
      }
      for (const [t, copy] of local) if (t !== block.input) copies.set(t, copy);
    });
    for (const node of graph.nodes.slice(start)) recomputation.add(node);
  };

  // A value read back in the backward pass that is a weight converted at use, or a layout op of one.
  const rematerializable = (t: Tensor): boolean =>
    graph.recasts.has(t) ||
    (t.producer !== undefined &&
      LAYOUT_OPS.has(t.producer.opType) &&
      t.producer.inputs[0] !== undefined &&
      rematerializable(t.producer.inputs[0]));
  const rematerialize = (t: Tensor, anchor: Tensor): Tensor => {
    const recast = graph.recasts.get(t);
    if (recast) return graph.scope('reconvert', () => recast(anchor));
    const producer = t.producer!;
    const [source, ...rest] = producer.inputs;
    const outputs = graph.addNode(
      producer.opType,
      [rematerialize(source!, anchor), ...rest],
      producer.outputs.map(({ dtype, shape }) => ({ dtype, shape })),
      producer.attributes,
      undefined,
      producer.domain,
    );
    return outputs[producer.outputs.indexOf(t)]!;
  };

  if (onPath.has(loss)) contribute(loss, options.seed ?? ones(loss));
  for (let n = nodes.length - 1; n >= 0; n--) {
    const node = nodes[n]!;
    if (!node.outputs.some((o) => pending.has(o))) continue;
    const targets = node.inputs.flatMap((t, i) => (t && onPath.has(t) ? [i] : []));
    if (targets.length === 0) continue;
    const block = innermost.get(node);
    if (block && !recomputed.has(block)) {
      recompute(block, node.outputs.map((o) => pending.get(o)?.[0]).find((g) => g !== undefined)!);
    }
    graph.scope(`grad:${node.name}`, () => {
      // Inside a checkpoint the rule reads the recomputed activations; gradients go to the originals.
      const grads = node.outputs.map(total);
      const ctx = context(twins.get(node) ?? node, grads, (t) => {
        // A frozen weight converted at use is converted again here, after this node's gradient.
        if (onPath.has(t) || !rematerializable(t)) return t;
        return rematerialize(t, grads.find((g) => g !== undefined)!);
      });
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
        if (wrtSet.has(input)) finished.push(g);
      }
    });
  }
  const result = wrt.map((t) => total(t) ?? graph.scope('grad:zeros', () => zerosLike(t)));
  dropUnread(graph, recomputation);
  return result;
}

/**
 * Removes the recomputed nodes no rule read (a block's last op, whose rules read only its inputs):
 * left in, onnxruntime runs them last, keeping what they read (a whole attention block) to the end.
 */
function dropUnread(graph: Graph, candidates: Set<Node>): void {
  const readers = new Map<Tensor, number>();
  for (const node of graph.nodes)
    for (const t of node.inputs) if (t) readers.set(t, (readers.get(t) ?? 0) + 1);
  const unread = (node: Node) => candidates.has(node) && node.outputs.every((o) => !readers.get(o));
  const dropped = new Set<Node>();
  for (let n = graph.nodes.length - 1; n >= 0; n--) {
    const node = graph.nodes[n]!;
    if (!unread(node)) continue;
    dropped.add(node);
    for (const t of node.inputs) if (t) readers.set(t, readers.get(t)! - 1);
  }
  if (dropped.size === 0) return;
  const kept = graph.nodes.filter((node) => !dropped.has(node));
  graph.nodes.splice(0, graph.nodes.length, ...kept);
}

/** Ops that only move or relabel values: a converted weight's layout copies are converted again with it. */
const LAYOUT_OPS = new Set(['Transpose', 'Reshape', 'Squeeze', 'Unsqueeze', 'Identity']);

/** What a rule sees of `node`; `read` gives the value of an input a rule reads (made on first read). */
function context(
  node: Node,
  grads: readonly (Tensor | undefined)[],
  read: (t: Tensor) => Tensor,
): VjpContext {
  const memo = new Map<string, unknown>();
  const inputs: (Tensor | undefined)[] = [];
  for (const [i, t] of node.inputs.entries()) {
    let value: Tensor | undefined;
    const get = () => {
      if (t && !value) value = read(t);
      return value;
    };
    Object.defineProperty(inputs, i, { enumerable: true, get });
  }
  return {
    node,
    inputs,
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
