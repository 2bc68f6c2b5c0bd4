import { afterAll, describe, expect, it } from 'vitest';
import {
  add,
  cast,
  div,
  erf,
  exp,
  log,
  mul,
  neg,
  pow,
  reciprocal,
  sigmoid,
  sqrt,
  sub,
  tanh,
  where,
} from '../graph/ops/elementwise.ts';
import {
  concat,
  expand,
  gather,
  reshape,
  SLICE_END,
  slice,
  split,
  squeeze,
  transpose,
  unsqueeze,
} from '../graph/ops/layout.ts';
import { gemm, matmul } from '../graph/ops/linalg.ts';
import { conv, groupNorm, layerNorm, resizeNearest } from '../graph/ops/nn.ts';
import {
  logSoftmax,
  reduceLogSumExp,
  reduceMax,
  reduceMean,
  reduceSum,
  softmax,
} from '../graph/ops/reduce.ts';
import { loadGraph } from '../testing.ts';
import {
  checkGradients,
  GRADCHECK_TOLERANCE,
  type GradCheckCase,
  type GradCheckResult,
} from './gradcheck.ts';
import { VJP } from './vjp.ts';

const positive = [0.5, 2] as const;
const results: GradCheckResult[] = [];

/** One case per VJP rule (and per interesting configuration of it). */
const primitives: GradCheckCase[] = [
  { name: 'Identity', dtype: 'float64', inputs: { x: { shape: [3] } }, build: ({ x }) => mul(x!, x!) },
  {
    name: 'Add broadcast',
    dtype: 'float64',
    inputs: { a: { shape: [2, 1, 3] }, b: { shape: [4, 1] } },
    build: ({ a, b }) => add(a!, b!),
  },
  {
    name: 'Sub',
    dtype: 'float64',
    inputs: { a: { shape: [2, 3] }, b: { shape: [3] } },
    build: ({ a, b }) => sub(a!, b!),
  },
  {
    name: 'Mul',
    dtype: 'float64',
    inputs: { a: { shape: [2, 3] }, b: { shape: [2, 1] } },
    build: ({ a, b }) => mul(a!, b!),
  },
  {
    name: 'Div',
    dtype: 'float64',
    inputs: { a: { shape: [2, 3] }, b: { shape: [3], range: positive } },
    build: ({ a, b }) => div(a!, b!),
  },
  {
    name: 'Pow',
    dtype: 'float64',
    inputs: { a: { shape: [2, 3], range: positive }, b: { shape: [3] } },
    build: ({ a, b }) => pow(a!, b!),
  },
  {
    name: 'Pow constant exponent',
    dtype: 'float64',
    inputs: { a: { shape: [4] } },
    build: ({ a }) => pow(a!, 3),
  },
  { name: 'Neg', dtype: 'float64', inputs: { x: { shape: [4] } }, build: ({ x }) => neg(x!) },
  {
    name: 'Sqrt',
    dtype: 'float64',
    inputs: { x: { shape: [4], range: positive } },
    build: ({ x }) => sqrt(x!),
  },
  {
    name: 'Reciprocal',
    dtype: 'float64',
    inputs: { x: { shape: [4], range: positive } },
    build: ({ x }) => reciprocal(x!),
  },
  { name: 'Exp', dtype: 'float64', inputs: { x: { shape: [4] } }, build: ({ x }) => exp(x!) },
  {
    name: 'Log',
    dtype: 'float64',
    inputs: { x: { shape: [4], range: positive } },
    build: ({ x }) => log(x!),
  },
  { name: 'Tanh', dtype: 'float64', inputs: { x: { shape: [4] } }, build: ({ x }) => tanh(x!) },
  { name: 'Sigmoid', dtype: 'float64', inputs: { x: { shape: [4] } }, build: ({ x }) => sigmoid(x!) },
  { name: 'Erf', dtype: 'float32', inputs: { x: { shape: [6] } }, build: ({ x }) => erf(x!) },
  {
    name: 'Where',
    dtype: 'float64',
    inputs: {
      c: { shape: [2, 3], dtype: 'bool', values: [1, 0, 1, 0, 0, 1] },
      a: { shape: [2, 3] },
      b: { shape: [3] },
    },
    build: ({ c, a, b }) => where(c!, a!, b!),
  },
  {
    name: 'Cast',
    dtype: 'float32',
    inputs: { x: { shape: [5] } },
    build: ({ x }) => mul(cast(x!, 'float64'), cast(x!, 'float64')),
  },
  {
    name: 'MatMul x·W',
    dtype: 'float64',
    inputs: { a: { shape: [2, 3, 4] }, b: { shape: [4, 5] } },
    build: ({ a, b }) => matmul(a!, b!),
  },
  {
    name: 'MatMul batch broadcast',
    dtype: 'float64',
    inputs: { a: { shape: [2, 1, 3, 4] }, b: { shape: [3, 4, 2] } },
    build: ({ a, b }) => matmul(a!, b!),
  },
  {
    name: 'MatMul W·x',
    dtype: 'float64',
    inputs: { a: { shape: [3, 4] }, b: { shape: [2, 4, 5] } },
    build: ({ a, b }) => matmul(a!, b!),
  },
  ...[false, true].flatMap((transA) =>
    [false, true].map(
      (transB): GradCheckCase => ({
        name: `Gemm transA=${+transA} transB=${+transB}`,
        dtype: 'float64',
        inputs: {
          a: { shape: transA ? [4, 3] : [3, 4] },
          b: { shape: transB ? [5, 4] : [4, 5] },
          c: { shape: [5] },
        },
        build: ({ a, b, c }) => gemm(a!, b!, c!, { alpha: 0.7, beta: 1.3, transA, transB }),
      }),
    ),
  ),
  {
    name: 'Softmax axis 1',
    dtype: 'float64',
    inputs: { x: { shape: [2, 3, 4] } },
    build: ({ x }) => softmax(x!, 1),
  },
  {
    name: 'LogSoftmax (x − ReduceLogSumExp)',
    dtype: 'float64',
    inputs: { x: { shape: [2, 5] } },
    build: ({ x }) => logSoftmax(x!),
  },
  {
    name: 'ReduceLogSumExp axes 0, 2',
    dtype: 'float64',
    inputs: { x: { shape: [2, 3, 4] } },
    build: ({ x }) => reduceLogSumExp(x!, [0, 2]),
  },
  {
    name: 'ReduceSum',
    dtype: 'float64',
    inputs: { x: { shape: [2, 3, 4] } },
    build: ({ x }) => reduceSum(x!, [1]),
  },
  {
    name: 'ReduceMean keepdims',
    dtype: 'float64',
    inputs: { x: { shape: [2, 3, 4] } },
    build: ({ x }) => reduceMean(x!, [0, 2], true),
  },
  {
    name: 'ReduceMax',
    dtype: 'float64',
    inputs: { x: { shape: [3, 4] } },
    build: ({ x }) => reduceMax(x!, [1]),
  },
  {
    name: 'Reshape',
    dtype: 'float64',
    inputs: { x: { shape: [2, 3, 4] } },
    build: ({ x }) => mul(reshape(x!, [6, -1]), reshape(x!, [6, 4])),
  },
  {
    name: 'Transpose',
    dtype: 'float64',
    inputs: { x: { shape: [2, 3, 4] } },
    build: ({ x }) => transpose(x!, [2, 0, 1]),
  },
  {
    name: 'Concat',
    dtype: 'float64',
    inputs: { a: { shape: [2, 1] }, b: { shape: [2, 3] }, c: { shape: [2, 2] } },
    build: ({ a, b, c }) => concat([a!, b!, c!, a!], 1),
  },
  {
    name: 'Split (unused piece)',
    dtype: 'float64',
    inputs: { x: { shape: [5, 2] } },
    build: ({ x }) => {
      const [p, , r] = split(x!, [2, 1, 2], 0);
      return mul(p!, r!);
    },
  },
  {
    name: 'Slice',
    dtype: 'float64',
    inputs: { x: { shape: [4, 5] } },
    build: ({ x }) => slice(x!, { starts: [1, -4], ends: [3, SLICE_END] }),
  },
  {
    name: 'Gather rows (repeated)',
    dtype: 'float64',
    inputs: { x: { shape: [4, 3] }, i: { shape: [2, 2], dtype: 'int64', values: [2, 0, 2, 3] } },
    build: ({ x, i }) => gather(x!, i!, 0),
  },
  {
    name: 'Gather axis 1',
    dtype: 'float64',
    inputs: { x: { shape: [2, 4, 3] }, i: { shape: [3], dtype: 'int64', values: [1, 3, 1] } },
    build: ({ x, i }) => gather(x!, i!, 1),
  },
  {
    name: 'Unsqueeze',
    dtype: 'float64',
    inputs: { x: { shape: [2, 3] } },
    build: ({ x }) => mul(unsqueeze(x!, [0, 2]), 2),
  },
  {
    name: 'Squeeze',
    dtype: 'float64',
    inputs: { x: { shape: [2, 1, 3] } },
    build: ({ x }) => squeeze(x!, [1]),
  },
  {
    name: 'Expand',
    dtype: 'float64',
    inputs: { x: { shape: [3, 1] } },
    build: ({ x }) => expand(x!, [2, 3, 4]),
  },
  {
    name: 'Conv 2-D',
    dtype: 'float32',
    inputs: { x: { shape: [2, 3, 5, 5] }, w: { shape: [4, 3, 3, 3] }, b: { shape: [4] } },
    build: ({ x, w, b }) => conv(x!, w!, b!, { pads: [1, 1, 1, 1] }),
  },
  {
    name: 'Conv strided, dilated, asymmetric pads',
    dtype: 'float32',
    inputs: { x: { shape: [1, 2, 7, 6] }, w: { shape: [3, 2, 3, 2] } },
    build: ({ x, w }) => conv(x!, w!, undefined, { strides: [2, 2], dilations: [2, 1], pads: [1, 0, 0, 1] }),
  },
  {
    name: 'Conv 1-D',
    dtype: 'float32',
    inputs: { x: { shape: [2, 2, 6] }, w: { shape: [3, 2, 3] } },
    build: ({ x, w }) => conv(x!, w!, undefined, { strides: [2], pads: [1, 1] }),
  },
  {
    name: 'Resize nearest ×2',
    dtype: 'float32',
    inputs: { x: { shape: [1, 2, 2, 3] } },
    build: ({ x }) => resizeNearest(x!, 2),
  },
  {
    name: 'LayerNormalization',
    dtype: 'float64',
    inputs: { x: { shape: [2, 3, 4] }, s: { shape: [4] }, b: { shape: [4] } },
    build: ({ x, s, b }) => layerNorm(x!, s!, b!),
  },
  {
    name: 'LayerNormalization axis 1',
    dtype: 'float64',
    inputs: { x: { shape: [2, 3, 4] }, s: { shape: [3, 4] } },
    build: ({ x, s }) => layerNorm(x!, s!, undefined, { axis: 1 }),
  },
  {
    name: 'GroupNormalization',
    dtype: 'float64',
    inputs: { x: { shape: [2, 4, 3, 3] }, s: { shape: [4] }, b: { shape: [4] } },
    build: ({ x, s, b }) => groupNorm(x!, s!, b!, 2),
  },
];

describe('VJP rules against central finite differences', () => {
  it.each(primitives.map((c) => [c.name, c] as const))('%s', async (_, spec) => {
    const result = await checkGradients(spec, loadGraph);
    results.push(result);
    expect(result.checked).toBeGreaterThan(0);
    expect(result.maxRelError).toBeLessThan(GRADCHECK_TOLERANCE[spec.dtype]);
  });

  it('covers every rule in the table', () => {
    const tested = new Set(primitives.map((c) => c.name.split(' ')[0]));
    expect(Object.keys(VJP).filter((op) => !tested.has(op) && op !== 'Dropout')).toEqual([]);
  });
});

afterAll(() => {
  console.log(
    `max relative error per rule (tolerance float64 ${GRADCHECK_TOLERANCE.float64}, float32 ${GRADCHECK_TOLERANCE.float32})\n` +
      results
        .map(
          (r) =>
            `  ${r.name.padEnd(40)} ${r.dtype}  ${r.maxRelError.toExponential(2)}  (${r.checked} elements)`,
        )
        .join('\n'),
  );
});
