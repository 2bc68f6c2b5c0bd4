/**
 * What running a graph once holds in memory, from the graph alone: its weights, its fed inputs,
 * and the most intermediate bytes alive at once when the nodes run in order, each value freed after
 * its last reader (as onnxruntime's allocation planner does). Views (Reshape, Squeeze, Unsqueeze,
 * Identity) share their input's bytes. A Cast or view of constants is folded into a new constant
 * when the session loads (onnxruntime's constant folding), and a constant only such nodes read is
 * dropped. A runtime adds its own workspace and allocator slack.
 */
import { BYTES_PER_ELEMENT } from './dtype.ts';
import type { Graph, Node, Tensor } from './graph.ts';
import type { Dim } from './shape.ts';

export interface MemoryEstimate {
  /** Constants as the session holds them (the frozen weights), after folding. */
  readonly weights: number;
  /** Fed inputs (batch, LoRA parameters). */
  readonly inputs: number;
  /** The most intermediate bytes alive at once. */
  readonly peakActivations: number;
}

const VIEW_OPS = new Set(['Reshape', 'Squeeze', 'Unsqueeze', 'Identity', 'Flatten']);

/** `dims` gives named dims a size (e.g. `{ batch: 4, seq: 512 }`); an unnamed one is an error. */
export function estimateMemory(graph: Graph, dims: Readonly<Record<string, number>> = {}): MemoryEstimate {
  const bytes = (t: Tensor): number =>
    t.shape.reduce<number>((n, d) => n * dimSize(d, t), BYTES_PER_ELEMENT[t.dtype]);
  // A named dim, or a product of them and numbers (`batch*seq`, from a reshape).
  const dimSize = (d: Dim, t: Tensor): number =>
    typeof d === 'number'
      ? d
      : d.split('*').reduce((n, part) => {
          const size = /^\d+$/.test(part) ? Number(part) : dims[part];
          if (size === undefined) {
            throw graph.error('E_SHAPE_MISMATCH', 'estimateMemory', `no size for dim '${part}' of ${t}`);
          }
          return n * size;
        }, 1);
  const sum = (ts: Iterable<Tensor>) => [...ts].reduce((n, t) => n + bytes(t), 0);

  const constants = new Set<Tensor>(graph.initializers.keys());
  const folded = new Set<Node>();
  for (const node of graph.nodes) {
    const foldable = node.opType === 'Cast' || VIEW_OPS.has(node.opType);
    if (foldable && node.inputs.every((t) => !t || constants.has(t))) {
      folded.add(node);
      for (const o of node.outputs) constants.add(o);
    }
  }
  const kept = new Set<Tensor>(
    graph.outputs.flatMap(({ tensor }) => (constants.has(tensor) ? [tensor] : [])),
  );
  for (const node of graph.nodes) {
    if (!folded.has(node)) for (const t of node.inputs) if (t && constants.has(t)) kept.add(t);
  }

  const held = new Set<Tensor>([...constants, ...graph.inputs]);
  // Each intermediate's storage (a view's is its source's) and the index of its storage's last reader.
  const storage = new Map<Tensor, Tensor>();
  const lastUse = new Map<Tensor, number>();
  const end = graph.nodes.length;
  for (const [i, node] of graph.nodes.entries()) {
    if (folded.has(node)) continue;
    for (const t of node.inputs) {
      const s = t && storage.get(t);
      if (s) lastUse.set(s, i);
    }
    const source = node.inputs[0];
    const isView = VIEW_OPS.has(node.opType) && source !== undefined;
    if (isView && held.has(source)) {
      for (const o of node.outputs) held.add(o);
      continue;
    }
    const view = isView ? storage.get(source) : undefined;
    for (const o of node.outputs) {
      storage.set(o, view ?? o);
      if (!view) lastUse.set(o, i);
    }
  }
  for (const { tensor } of graph.outputs) {
    const s = storage.get(tensor);
    if (s) lastUse.set(s, end);
  }

  const freedAt = new Map<number, Tensor[]>();
  for (const [s, i] of lastUse) freedAt.set(i, [...(freedAt.get(i) ?? []), s]);
  let live = 0;
  let peak = 0;
  for (const [i, node] of graph.nodes.entries()) {
    for (const o of node.outputs) if (storage.get(o) === o && !held.has(o)) live += bytes(o);
    peak = Math.max(peak, live);
    for (const s of freedAt.get(i) ?? []) live -= bytes(s);
  }
  return { weights: sum(kept), inputs: sum(graph.inputs), peakActivations: peak };
}
