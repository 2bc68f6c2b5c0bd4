import { attr, type Tensor } from '../graph.ts';
import { broadcastShapes } from '../shape.ts';
import { describe, dimsEqual, requireFloat, requireRank, requireSameDtype } from './common.ts';

/** Batched matrix product `a @ b` (rank ≥ 2 each; leading dims broadcast). */
export function matmul(a: Tensor, b: Tensor): Tensor {
  const graph = a.graph;
  requireSameDtype(graph, 'MatMul', [a, b]);
  requireFloat(graph, 'MatMul', a);
  requireRank(graph, 'MatMul', a, [2, Number.POSITIVE_INFINITY]);
  requireRank(graph, 'MatMul', b, [2, Number.POSITIVE_INFINITY]);
  const k = a.shape[a.rank - 1];
  if (!dimsEqual(k, b.shape[b.rank - 2])) {
    throw graph.error('E_SHAPE_MISMATCH', 'MatMul', `inner dims differ: ${describe(a, b)}`);
  }
  const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2));
  if (typeof batch === 'string') {
    throw graph.error(
      'E_SHAPE_MISMATCH',
      'MatMul',
      `batch dims do not broadcast: ${describe(a, b)}: ${batch}`,
    );
  }
  const shape = [...batch, a.shape[a.rank - 2]!, b.shape[b.rank - 1]!];
  return graph.addNode('MatMul', [a, b], [{ dtype: a.dtype, shape }])[0]!;
}

export interface GemmOptions {
  alpha?: number;
  beta?: number;
  transA?: boolean;
  transB?: boolean;
}

/** `alpha · op(a) · op(b) + beta · c` on 2-D operands; `c` broadcasts to the result. */
export function gemm(a: Tensor, b: Tensor, c?: Tensor, options: GemmOptions = {}): Tensor {
  const graph = a.graph;
  const { alpha = 1, beta = 1, transA = false, transB = false } = options;
  requireSameDtype(graph, 'Gemm', c ? [a, b, c] : [a, b]);
  requireFloat(graph, 'Gemm', a);
  requireRank(graph, 'Gemm', a, 2);
  requireRank(graph, 'Gemm', b, 2);
  const [m, k] = transA ? [a.shape[1]!, a.shape[0]!] : [a.shape[0]!, a.shape[1]!];
  const [k2, n] = transB ? [b.shape[1]!, b.shape[0]!] : [b.shape[0]!, b.shape[1]!];
  if (!dimsEqual(k, k2)) {
    throw graph.error(
      'E_SHAPE_MISMATCH',
      'Gemm',
      `inner dims differ (transA=${transA}, transB=${transB}): ${describe(a, b)}`,
    );
  }
  if (c) {
    const out = broadcastShapes([m, n], c.shape);
    if (typeof out === 'string' || out.length !== 2 || out[0] !== m || out[1] !== n) {
      throw graph.error('E_SHAPE_MISMATCH', 'Gemm', `c must broadcast to [${m}, ${n}]: ${describe(c)}`);
    }
  }
  const attributes = {
    alpha: attr.float(alpha),
    beta: attr.float(beta),
    transA: attr.int(transA ? 1 : 0),
    transB: attr.int(transB ? 1 : 0),
  };
  return graph.addNode('Gemm', c ? [a, b, c] : [a, b], [{ dtype: a.dtype, shape: [m, n] }], attributes)[0]!;
}
