import { describe, expect, it } from 'vitest';
import { EngineError } from '../../errors.ts';
import { Graph, type Tensor } from '../graph.ts';
import type { Shape } from '../shape.ts';
import {
  crossEntropy,
  gelu,
  geluTanh,
  mseLoss,
  quickGelu,
  rmsNorm,
  rope,
  ropeInverseFrequencies,
  ropeTables,
  scaledDotProductAttention,
  silu,
} from './composite.ts';
import * as E from './elementwise.ts';
import * as L from './layout.ts';
import { gemm, matmul } from './linalg.ts';
import * as N from './nn.ts';
import { logSoftmax, reduceLogSumExp, reduceMax, reduceMean, reduceSum, softmax } from './reduce.ts';

const g = () => new Graph('t');
const f32 = (graph: Graph, name: string, shape: Shape) => graph.input(name, 'float32', shape);

describe('op builders infer shapes and types', () => {
  it.each<[string, (graph: Graph) => Tensor, Shape, string?]>([
    ['Add broadcasts', (t) => E.add(f32(t, 'a', [2, 1, 4]), f32(t, 'b', [3, 1])), [2, 3, 4]],
    ['Add with a number', (t) => E.add(f32(t, 'a', ['batch', 4]), 1), ['batch', 4]],
    ['Sub', (t) => E.sub(1, f32(t, 'a', [3])), [3]],
    ['Mul named dims', (t) => E.mul(f32(t, 'a', ['b', 'seq', 4]), f32(t, 'c', ['seq', 1])), ['b', 'seq', 4]],
    ['Div', (t) => E.div(f32(t, 'a', [3]), 2), [3]],
    ['Pow', (t) => E.pow(f32(t, 'a', [3]), 2), [3]],
    ['Equal gives bool', (t) => E.equal(f32(t, 'a', [3]), 0), [3], 'bool'],
    ['Less', (t) => E.less(f32(t, 'a', [3]), 0), [3], 'bool'],
    ['Greater', (t) => E.greater(f32(t, 'a', [3]), 0), [3], 'bool'],
    ['And', (t) => E.and(E.less(f32(t, 'a', [3]), 0), E.greater(f32(t, 'b', [3]), 0)), [3], 'bool'],
    ['Not', (t) => E.not(E.less(f32(t, 'a', [3]), 0)), [3], 'bool'],
    ['Neg', (t) => E.neg(f32(t, 'a', [2])), [2]],
    ['Sqrt', (t) => E.sqrt(f32(t, 'a', [2])), [2]],
    ['Reciprocal', (t) => E.reciprocal(f32(t, 'a', [2])), [2]],
    ['rsqrt', (t) => E.rsqrt(f32(t, 'a', [2])), [2]],
    ['Exp', (t) => E.exp(f32(t, 'a', [2])), [2]],
    ['Log', (t) => E.log(f32(t, 'a', [2])), [2]],
    ['Tanh', (t) => E.tanh(f32(t, 'a', [2])), [2]],
    ['Sigmoid', (t) => E.sigmoid(f32(t, 'a', [2])), [2]],
    ['Erf', (t) => E.erf(f32(t, 'a', [2])), [2]],
    ['Identity', (t) => E.identity(f32(t, 'a', [2])), [2]],
    ['Where', (t) => E.where(t.input('c', 'bool', [2, 1]), f32(t, 'a', [3]), 0), [2, 3]],
    ['Cast', (t) => E.cast(f32(t, 'a', [2]), 'float16'), [2], 'float16'],
    ['MatMul batched', (t) => matmul(f32(t, 'a', ['b', 2, 3, 4]), f32(t, 'w', [4, 5])), ['b', 2, 3, 5]],
    [
      'Gemm transposed',
      (t) => gemm(f32(t, 'a', [4, 3]), f32(t, 'b', [5, 4]), f32(t, 'c', [5]), { transA: true, transB: true }),
      [3, 5],
    ],
    ['ReduceSum', (t) => reduceSum(f32(t, 'a', [2, 3, 4]), [-1]), [2, 3]],
    ['ReduceMean keepdims', (t) => reduceMean(f32(t, 'a', [2, 3, 4]), [0, 2], true), [1, 3, 1]],
    ['ReduceMax all', (t) => reduceMax(f32(t, 'a', [2, 3])), []],
    ['Softmax', (t) => softmax(f32(t, 'a', [2, 3])), [2, 3]],
    ['LogSoftmax', (t) => logSoftmax(f32(t, 'a', [2, 3]), 0), [2, 3]],
    ['ReduceLogSumExp', (t) => reduceLogSumExp(f32(t, 'a', [2, 3, 4]), [1], true), [2, 1, 4]],
    [
      'Reshape 0 and -1',
      (t) => L.reshape(f32(t, 'a', ['b', 'seq', 768]), [0, 0, 12, -1]),
      ['b', 'seq', 12, 64],
    ],
    ['Reshape folds named dims', (t) => L.reshape(f32(t, 'a', ['b', 'seq', 8]), [-1, 8]), ['b*seq', 8]],
    ['Reshape keeps a factor', (t) => L.reshape(f32(t, 'a', ['b', 4, 6]), [0, 2, -1]), ['b', 2, 12]],
    ['reshapeAs', (t) => L.reshapeAs(f32(t, 'a', [6]), f32(t, 'b', [2, 3])), [2, 3]],
    ['Transpose', (t) => L.transpose(f32(t, 'a', [2, 3, 4]), [2, 0, 1]), [4, 2, 3]],
    ['Transpose default reverses', (t) => L.transpose(f32(t, 'a', [2, 3])), [3, 2]],
    ['Concat', (t) => L.concat([f32(t, 'a', [2, 3]), f32(t, 'b', [2, 5])], -1), [2, 8]],
    ['Concat named', (t) => L.concat([f32(t, 'a', ['s', 3]), f32(t, 'b', [2, 3])], 0), ['s+2', 3]],
    ['Split', (t) => L.split(f32(t, 'a', [5, 2]), [2, 3], 0)[1]!, [3, 2]],
    ['Slice', (t) => L.slice(f32(t, 'a', [10, 4]), { starts: [2, -3], ends: [-1, L.SLICE_END] }), [7, 3]],
    ['Slice step', (t) => L.slice(f32(t, 'a', [10]), { starts: [1], ends: [8], steps: [3] }), [3]],
    [
      'Slice named shift',
      (t) => L.slice(f32(t, 'a', ['b', 'seq']), { starts: [1], ends: [L.SLICE_END], axes: [1] }),
      ['b', 'seq-1'],
    ],
    [
      'Slice named drop last',
      (t) => L.slice(f32(t, 'a', ['b', 'seq']), { starts: [0], ends: [-1], axes: [1] }),
      ['b', 'seq-1'],
    ],
    ['Gather', (t) => L.gather(f32(t, 'e', [100, 8]), t.input('i', 'int64', ['b', 'seq'])), ['b', 'seq', 8]],
    ['Gather axis 1', (t) => L.gather(f32(t, 'e', [2, 100, 8]), t.input('i', 'int64', [3]), 1), [2, 3, 8]],
    ['Unsqueeze', (t) => L.unsqueeze(f32(t, 'a', [2, 3]), [0, -1]), [1, 2, 3, 1]],
    ['Squeeze', (t) => L.squeeze(f32(t, 'a', [1, 2, 1]), [0, 2]), [2]],
    ['Expand', (t) => L.expand(f32(t, 'a', [3, 1]), [2, 3, 4]), [2, 3, 4]],
    ['expandAs', (t) => L.expandAs(f32(t, 'a', [1]), f32(t, 'b', ['n', 2])), ['n', 2]],
    ['shapeOf', (t) => L.shapeOf(f32(t, 'a', ['n', 2, 3]), 1), [2], 'int64'],
    ['zerosLike', (t) => L.zerosLike(f32(t, 'a', ['n', 2])), ['n', 2]],
    ['Pad', (t) => L.pad(f32(t, 'a', [2, 3]), [1, 0, 0, 2]), [3, 5]],
    [
      'ScatterND add',
      (t) => L.scatterNDAdd(f32(t, 'a', [5, 2]), t.input('i', 'int64', [3, 1]), f32(t, 'u', [3, 2])),
      [5, 2],
    ],
    ['Trilu', (t) => L.trilu(f32(t, 'a', [3, 3]), true, 1), [3, 3]],
    [
      'Conv same',
      (t) =>
        N.conv(f32(t, 'x', ['b', 3, 'h', 'w']), f32(t, 'w', [8, 3, 3, 3]), undefined, { pads: [1, 1, 1, 1] }),
      ['b', 8, 'h', 'w'],
    ],
    [
      'Conv strided',
      (t) =>
        N.conv(f32(t, 'x', [1, 3, 9, 8]), f32(t, 'w', [8, 3, 3, 3]), f32(t, 'b', [8]), {
          strides: [2, 2],
          pads: [1, 1, 1, 1],
        }),
      [1, 8, 5, 4],
    ],
    [
      'Conv grouped',
      (t) => N.conv(f32(t, 'x', [1, 4, 5, 5]), f32(t, 'w', [4, 2, 1, 1]), undefined, { group: 2 }),
      [1, 4, 5, 5],
    ],
    [
      'ConvTranspose',
      (t) =>
        N.convTranspose(f32(t, 'x', [1, 8, 5, 4]), f32(t, 'w', [8, 3, 3, 3]), {
          strides: [2, 2],
          pads: [1, 1, 1, 1],
          outputPadding: [0, 1],
        }),
      [1, 3, 9, 8],
    ],
    ['Resize', (t) => N.resizeNearest(f32(t, 'x', [1, 3, 'h', 5]), 2), [1, 3, 'h*2', 10]],
    ['LayerNormalization', (t) => N.layerNorm(f32(t, 'x', ['b', 4]), f32(t, 's', [4])), ['b', 4]],
    [
      'GroupNormalization',
      (t) => N.groupNorm(f32(t, 'x', [1, 4, 2, 2]), f32(t, 's', [4]), f32(t, 'c', [4]), 2),
      [1, 4, 2, 2],
    ],
    ['Dropout mask', (t) => N.dropout(f32(t, 'x', [3]), 0.1).mask, [3], 'bool'],
    ['silu', (t) => silu(f32(t, 'x', [3])), [3]],
    ['gelu', (t) => gelu(f32(t, 'x', [3])), [3]],
    ['geluTanh', (t) => geluTanh(f32(t, 'x', [3])), [3]],
    ['quickGelu', (t) => quickGelu(f32(t, 'x', [3])), [3]],
    [
      'rmsNorm keeps half type',
      (t) => rmsNorm(t.input('x', 'float16', [2, 4]), f32(t, 'w', [4])),
      [2, 4],
      'float16',
    ],
    [
      'ropeTables',
      (t) => ropeTables(t.input('p', 'int64', ['b', 's']), ropeInverseFrequencies(8, 1e4), 'float16').cos,
      ['b', 's', 8],
      'float16',
    ],
    [
      'rope',
      (t) => rope(f32(t, 'x', ['b', 2, 's', 8]), f32(t, 'c', ['s', 8]), f32(t, 'd', ['s', 8])),
      ['b', 2, 's', 8],
    ],
    [
      'attention',
      (t) =>
        scaledDotProductAttention(
          f32(t, 'q', ['b', 2, 's', 8]),
          f32(t, 'k', ['b', 2, 't', 8]),
          f32(t, 'v', ['b', 2, 't', 4]),
        ),
      ['b', 2, 's', 4],
    ],
    [
      'crossEntropy',
      (t) => crossEntropy(t.input('z', 'float16', ['b', 's', 10]), t.input('y', 'int64', ['b', 's'])),
      [],
      'float32',
    ],
    ['mseLoss', (t) => mseLoss(f32(t, 'a', [2, 3]), f32(t, 'b', [2, 3])), []],
  ])('%s', (_, build, shape, dtype = 'float32') => {
    const out = build(g());
    expect(out.shape).toEqual(shape);
    expect(out.dtype).toBe(dtype);
  });
});

describe('op builders refuse mismatches with errors that name the op, the shapes and the scope', () => {
  it.each<[string, (graph: Graph) => unknown, string, RegExp]>([
    [
      'MatMul inner dims',
      (t) => matmul(f32(t, 'a', [2, 3]), f32(t, 'b', [4, 5])),
      'E_SHAPE_MISMATCH',
      /MatMul in 'block\.0'.*inner dims differ: a \[2, 3\], b \[4, 5\]/,
    ],
    [
      'Add broadcast',
      (t) => E.add(f32(t, 'a', [2, 3]), f32(t, 'b', [4])),
      'E_SHAPE_MISMATCH',
      /Add in 'block\.0'.*cannot broadcast a \[2, 3\], b \[4\]/,
    ],
    [
      'named dims never broadcast',
      (t) => E.add(f32(t, 'a', ['s']), f32(t, 'b', ['t'])),
      'E_SHAPE_MISMATCH',
      /s in one operand and t/,
    ],
    [
      'dtype mix',
      (t) => E.add(f32(t, 'a', [2]), t.input('b', 'float16', [2])),
      'E_DTYPE_MISMATCH',
      /float32, float16; cast first/,
    ],
    [
      'Reshape count',
      (t) => L.reshape(f32(t, 'a', [2, 3]), [4, -1]),
      'E_SHAPE_MISMATCH',
      /Reshape.*element counts/,
    ],
    [
      'Reshape two -1',
      (t) => L.reshape(f32(t, 'a', [2, 3]), [-1, -1]),
      'E_SHAPE_MISMATCH',
      /more than one -1/,
    ],
    [
      'Transpose perm',
      (t) => L.transpose(f32(t, 'a', [2, 3]), [0, 0]),
      'E_INVALID_ARGUMENT',
      /not a permutation/,
    ],
    [
      'axis range',
      (t) => softmax(f32(t, 'a', [2, 3]), 2),
      'E_INVALID_ARGUMENT',
      /axis 2 is out of range for rank 2/,
    ],
    [
      'Squeeze non-1',
      (t) => L.squeeze(f32(t, 'a', [2, 3]), [0]),
      'E_SHAPE_MISMATCH',
      /dim 0 of a \[2, 3\] is not 1/,
    ],
    ['Split sizes', (t) => L.split(f32(t, 'a', [5]), [2, 2], 0), 'E_SHAPE_MISMATCH', /do not add up/],
    [
      'Slice named with positive end',
      (t) => L.slice(f32(t, 'a', ['s']), { starts: [0], ends: [3] }),
      'E_SHAPE_MISMATCH',
      /named/,
    ],
    [
      'Concat dims',
      (t) => L.concat([f32(t, 'a', [2, 3]), f32(t, 'b', [3, 3])], 1),
      'E_SHAPE_MISMATCH',
      /dims other than axis 1 differ/,
    ],
    [
      'Gather float indices',
      (t) => L.gather(f32(t, 'a', [2]), f32(t, 'i', [1])),
      'E_DTYPE_MISMATCH',
      /indices must be int64/,
    ],
    [
      'Conv channels',
      (t) => N.conv(f32(t, 'x', [1, 3, 4, 4]), f32(t, 'w', [8, 2, 3, 3])),
      'E_SHAPE_MISMATCH',
      /input channels/,
    ],
    [
      'GroupNorm groups',
      (t) => N.groupNorm(f32(t, 'x', [1, 6, 2]), f32(t, 's', [6]), f32(t, 'b', [6]), 4),
      'E_SHAPE_MISMATCH',
      /multiple of 4/,
    ],
    [
      'LayerNorm scale',
      (t) => N.layerNorm(f32(t, 'x', [2, 4]), f32(t, 's', [3])),
      'E_SHAPE_MISMATCH',
      /scale\/bias must be \[4\]/,
    ],
    [
      'Dropout ratio',
      (t) => N.dropout(f32(t, 'x', [2]), 1),
      'E_INVALID_ARGUMENT',
      /ratio must be in \[0, 1\)/,
    ],
    [
      'Resize factor',
      (t) => N.resizeNearest(f32(t, 'x', [1, 1, 2, 2]), 1.5),
      'E_INVALID_ARGUMENT',
      /positive integer/,
    ],
    [
      'Where condition',
      (t) => E.where(f32(t, 'c', [2]), 1, f32(t, 'a', [2])),
      'E_DTYPE_MISMATCH',
      /condition must be bool/,
    ],
    ['sqrt of ints', (t) => E.sqrt(t.input('i', 'int64', [2])), 'E_DTYPE_MISMATCH', /floating-point/],
    [
      'RoPE odd dim',
      (t) => rope(f32(t, 'x', [2, 3]), f32(t, 'c', [3]), f32(t, 's', [3])),
      'E_SHAPE_MISMATCH',
      /static and even/,
    ],
    [
      'crossEntropy dynamic vocab',
      (t) => crossEntropy(f32(t, 'z', [2, 'v']), t.input('y', 'int64', [2])),
      'E_SHAPE_MISMATCH',
      /static V/,
    ],
  ])('%s', (_, build, code, message) => {
    const graph = g();
    let error: unknown;
    graph.scope('block', () =>
      graph.scope('0', () => {
        try {
          build(graph);
        } catch (e) {
          error = e;
        }
      }),
    );
    expect(EngineError.isInstance(error)).toBe(true);
    expect((error as EngineError).code).toBe(code);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).toContain("in 'block.0'");
  });
});
