import { describe, expect, it } from 'vitest';
import { EngineError } from '../errors.ts';
import { runGraph, valuesOf } from '../testing.ts';
import { fromFloat16Bits, toBFloat16Bits, toFloat16Bits } from './dtype.ts';
import { Graph } from './graph.ts';
import { add, mul } from './ops/elementwise.ts';
import { broadcastShapes, divideDims, formatShape } from './shape.ts';

const codeOf = (build: () => unknown): string | undefined => {
  try {
    build();
  } catch (error) {
    return EngineError.isInstance(error) ? error.code : 'not an EngineError';
  }
  return undefined;
};

describe('Graph', () => {
  it('names nodes after their scope', () => {
    const graph = new Graph();
    const x = graph.input('x', 'float32', [2]);
    const y = graph.scope('layers', () => graph.scope('0', () => add(x, x)));
    expect(y.name).toMatch(/^layers\.0\/Add_\d+$/);
    expect(graph.nodes.at(-1)!.name).toBe(y.name);
  });

  it.each<[string, (graph: Graph) => unknown, string]>([
    [
      'a duplicate input name',
      (g) => [g.input('x', 'float32', [1]), g.input('x', 'float32', [1])],
      'E_DUPLICATE_NAME',
    ],
    [
      'a duplicate output name',
      (g) => [g.output(g.input('x', 'float32', [1]), 'y'), g.output(g.input('z', 'float32', [1]), 'y')],
      'E_DUPLICATE_NAME',
    ],
    ['an unusable name', (g) => g.input('x y', 'float32', [1]), 'E_INVALID_ARGUMENT'],
    ['a negative dim', (g) => g.input('x', 'float32', [-1]), 'E_INVALID_ARGUMENT'],
    ['a dim name with spaces', (g) => g.input('x', 'float32', ['a b']), 'E_INVALID_ARGUMENT'],
    [
      'initializer bytes of the wrong length',
      (g) => g.initializer('w', 'float16', [2, 2], new Uint8Array(6)),
      'E_INVALID_ARGUMENT',
    ],
    [
      'a relative external path',
      (g) => g.initializer('w', 'float32', [1], { path: 'w.bin', offset: 0, length: 4 }),
      'E_INVALID_ARGUMENT',
    ],
    [
      'an external length that does not fit the shape',
      (g) => g.initializer('w', 'float32', [2], { path: '/w.bin', offset: 0, length: 4 }),
      'E_INVALID_ARGUMENT',
    ],
    [
      'a tensor of another graph',
      (g) => add(g.input('x', 'float32', [1]), new Graph('other').input('y', 'float32', [1])),
      'E_FOREIGN_TENSOR',
    ],
    [
      'constant values that do not fill the shape',
      (g) => g.constant([1, 2, 3], 'float32', [2, 2]),
      'E_INVALID_ARGUMENT',
    ],
  ])('refuses %s', (_, build, code) => {
    expect(codeOf(() => build(new Graph()))).toBe(code);
  });

  it('shares scalar constants and renames outputs through Identity', async () => {
    const graph = new Graph();
    expect(graph.scalar(2, 'float32')).toBe(graph.scalar(2, 'float32'));
    expect(graph.scalar(2, 'float32')).not.toBe(graph.scalar(2, 'float64'));
    const c = graph.constant([1, 2, 3], 'float32');
    graph.output(c, 'c');
    graph.output(mul(c, 2), 'doubled');
    expect(graph.nodes.find((n) => n.opType === 'Identity')?.outputs[0]?.name).toBe('c');
    const out = await runGraph(graph);
    expect(valuesOf(out['c'])).toEqual([1, 2, 3]);
    expect(valuesOf(out['doubled'])).toEqual([2, 4, 6]);
  });

  it.each([
    ['float16', [1.5, -2, 65504, 1e-7, 0.1], [1.5, -2, 65504, 1.1920928955078125e-7, 0.0999755859375]],
    ['bfloat16', [1.5, -2, 0.1, 3.0e38], [1.5, -2, 0.10009765625, 1.765625 * 2 ** 127]],
  ] as const)('stores %s constants rounded to nearest', async (dtype, values, expected) => {
    const graph = new Graph();
    graph.output(
      graph.addNode('Cast', [graph.constant(values, dtype)], [{ dtype: 'float32', shape: [values.length] }], {
        to: { type: 'int', value: 1 },
      })[0]!,
      'y',
    );
    const out = valuesOf((await runGraph(graph))['y']);
    out.forEach((v, i) => {
      expect(v).toBe(expected[i]);
    });
  });
});

describe('half-precision bits', () => {
  it.each([
    [1, 0x3c00],
    [-2, 0xc000],
    [65504, 0x7bff],
    [65520, 0x7c00],
    [2 ** -24, 0x0001],
    [2 ** -26, 0x0000],
    [Number.NaN, 0x7e00],
    [1 + 2 ** -11, 0x3c00],
    [1 + 3 * 2 ** -11, 0x3c02],
  ])('toFloat16Bits(%d) = %i', (value, bits) => {
    expect(toFloat16Bits(value)).toBe(bits);
    if (!Number.isNaN(value) && value !== 65520 && value !== 2 ** -26)
      expect(fromFloat16Bits(bits)).toBeCloseTo(value, 3);
  });

  it.each([
    [1, 0x3f80],
    [-2, 0xc000],
    [1 + 2 ** -8, 0x3f80],
    [1 + 3 * 2 ** -8, 0x3f82],
  ])('toBFloat16Bits(%d) = %i', (value, bits) => expect(toBFloat16Bits(value)).toBe(bits));
});

describe('shapes', () => {
  it.each([
    [
      [2, 1, 4],
      [3, 1],
      [2, 3, 4],
    ],
    [
      ['b', 1],
      ['b', 5],
      ['b', 5],
    ],
    [[], [3], [3]],
  ])('broadcastShapes(%j, %j) = %j', (a, b, expected) => expect(broadcastShapes(a, b)).toEqual(expected));

  it('reports which dim fails to broadcast', () => {
    expect(broadcastShapes([2, 3], [4])).toBe('dim -1 is 3 in one operand and 4 in the other');
  });

  it.each([
    [['b', 'seq', 8], [8], 'b*seq'],
    [['b', 4, 6], ['b', 2], 12],
    [['seq*2', 3], [3], 'seq*2'],
    [[6], [4], undefined],
    [['b'], ['c'], undefined],
  ])('divideDims(%j, %j) = %j', (whole, part, expected) => expect(divideDims(whole, part)).toEqual(expected));

  it('formats shapes for messages', () => expect(formatShape(['b', 3])).toBe('[b, 3]'));
});
