import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LORA_DROPOUT_SEED, loraDropout, VARIANTS } from '@lora/adapters';
import { NETWORKS } from '@lora/config';
import { createRng } from '@lora/dataset';
import {
  type ConvOptions,
  cast,
  Graph,
  gradients,
  type HostTensor,
  hostTensor,
  mul,
  reduceSum,
  reshape,
  type Tensor,
  toFloat16Bits,
  writeModel,
} from '@lora/engine';
import { openSafetensors, writeSafetensors } from '@lora/safetensors';
import { describe, expect, it } from 'vitest';
import { type LoraLayer, type LoraOptions, loraLayer } from './lora.ts';
import { runGraph, valuesOf } from './testing.ts';
import { safetensorsWeight } from './weights.ts';

const rng = createRng(3);
const random = (n: number) => Float32Array.from({ length: n }, () => -1 + 2 * rng.next());
const f32 = (shape: number[], data: Float32Array) => hostTensor('float32', shape, data);

/** A LoRA layer with its down (A) and up (B) parameters by name. */
function withRoles(layer: LoraLayer) {
  const [down, up] = layer.parameters;
  return { ...layer, down: down!, up: up! };
}
const loraLinear = (x: Tensor, w: Tensor, name: string, options: LoraOptions, bias?: Tensor) =>
  withRoles(loraLayer(x, w, name, options, bias ? { bias } : {}));
const loraConv = (
  x: Tensor,
  w: Tensor,
  name: string,
  options: LoraOptions,
  conv: ConvOptions,
  bias?: Tensor,
) => withRoles(loraLayer(x, w, name, options, { conv, ...(bias ? { bias } : {}) }));

/** Feeds for a layer's parameters: A as initialised, B random (so the LoRA branch is not zero). */
function parameterFeeds(layer: ReturnType<typeof withRoles>, up: Float32Array): Record<string, HostTensor> {
  return {
    [layer.down.name]: f32([...layer.down.shape], layer.down.initial),
    [layer.up.name]: f32([...layer.up.shape], up),
  };
}

describe('loraLinear', () => {
  it('creates A kaiming-uniform in ±1/√in and B zeros, named as PEFT names them', () => {
    const graph = new Graph();
    const layer = loraLinear(
      graph.input('x', 'float32', [2, 16]),
      graph.constant(new Array(8 * 16).fill(0), 'float16', [8, 16]),
      'q_proj',
      {
        rank: 4,
        alpha: 8,
      },
    );
    expect(layer.down).toMatchObject({ name: 'q_proj.lora_A.weight', shape: [4, 16] });
    expect(layer.up).toMatchObject({ name: 'q_proj.lora_B.weight', shape: [8, 4] });
    expect(layer.scale).toBe(2);
    expect(layer.down.tensor.dtype).toBe('float32');
    expect(Math.max(...layer.down.initial.map(Math.abs))).toBeLessThanOrEqual(0.25);
    expect(Math.max(...layer.down.initial.map(Math.abs))).toBeGreaterThan(0.2);
    expect(layer.up.initial.every((v) => v === 0)).toBe(true);
    expect(layer.output.dtype).toBe('float32');
  });

  it('computes x·Wᵀ + b + (alpha/r)·(x·Aᵀ)·Bᵀ', async () => {
    const [n, inp, out, rank] = [3, 4, 5, 2];
    const [x, w, b, up] = [random(n * inp), random(out * inp), random(out), random(out * rank)];
    const graph = new Graph();
    const layer = loraLinear(
      graph.input('x', 'float32', [n, inp]),
      graph.constant(w, 'float32', [out, inp]),
      'fc',
      { rank, alpha: 3 },
      graph.constant(b, 'float32', [out]),
    );
    graph.output(layer.output, 'y');
    const y = valuesOf((await runGraph(graph, { x: f32([n, inp], x), ...parameterFeeds(layer, up) }))['y']);
    const a = layer.down.initial;
    for (let i = 0; i < n; i++) {
      for (let o = 0; o < out; o++) {
        let expected = b[o]!;
        for (let k = 0; k < inp; k++) expected += x[i * inp + k]! * w[o * inp + k]!;
        for (let r = 0; r < rank; r++) {
          let hidden = 0;
          for (let k = 0; k < inp; k++) hidden += x[i * inp + k]! * a[r * inp + k]!;
          expected += 1.5 * hidden * up[o * rank + r]!;
        }
        expect(y[i * out + o]).toBeCloseTo(expected, 5);
      }
    }
  });

  it('computes in float16 with float32 master weights, and returns float32 gradients', async () => {
    const [n, inp, out, rank] = [4, 8, 6, 2];
    const [x, w, up] = [random(n * inp), random(out * inp), random(out * rank)];
    const build = (dtype: 'float16' | 'float32') => {
      const graph = new Graph();
      const input = cast(graph.input('x', 'float32', [n, inp]), dtype);
      const layer = loraLinear(input, graph.constant(w, dtype, [out, inp]), 'fc', { rank, alpha: rank });
      const loss = reduceSum(cast(mul(layer.output, layer.output), 'float32'));
      const [da, db] = gradients(loss, [layer.down.tensor, layer.up.tensor]);
      graph.output(da!, 'da');
      graph.output(db!, 'db');
      return { graph, layer };
    };
    const half = build('float16');
    const full = build('float32');
    const run = ({ graph, layer }: ReturnType<typeof build>) =>
      runGraph(graph, { x: f32([n, inp], x), ...parameterFeeds(layer, up) });
    const [h, f] = await Promise.all([run(half), run(full)]);
    for (const name of ['da', 'db']) {
      expect(h[name]!.dtype).toBe('float32');
      const [hv, fv] = [valuesOf(h[name]), valuesOf(f[name])];
      const scale = Math.max(...fv.map(Math.abs));
      hv.forEach((v, i) => {
        expect(Math.abs(v - fv[i]!) / scale).toBeLessThan(1e-2);
      });
    }
  });

  it('draws A from a stream keyed by seed and layer name: same name and seed, same values', () => {
    const build = (name: string, seed: number) => {
      const graph = new Graph();
      return loraLinear(graph.input('x', 'float32', [1, 16]), graph.input('w', 'float32', [8, 16]), name, {
        rank: 4,
        alpha: 4,
        seed,
      }).down.initial;
    };
    expect(build('q_proj', 1)).toEqual(build('q_proj', 1));
    expect(build('q_proj', 1)).not.toEqual(build('k_proj', 1));
    expect(build('q_proj', 1)).not.toEqual(build('q_proj', 2));
  });

  it('labels parameters with their group, and refuses a group that cannot name a tensor', () => {
    const graph = new Graph();
    const layer = loraLinear(graph.input('x', 'float32', [1, 2]), graph.input('w', 'float32', [2, 2]), 'te', {
      rank: 1,
      alpha: 1,
      group: 'text_encoder',
    });
    expect([layer.down.group, layer.up.group]).toEqual(['text_encoder', 'text_encoder']);
    expect(() =>
      loraLinear(graph.input('x2', 'float32', [1, 2]), graph.input('w2', 'float32', [2, 2]), 'u', {
        rank: 1,
        alpha: 1,
        group: 'a b',
      }),
    ).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
  });

  it.each([0, 1.5])('refuses rank %d', (rank) => {
    const graph = new Graph();
    expect(() =>
      loraLinear(graph.input('x', 'float32', [2]), graph.input('w', 'float32', [2, 2]), 'fc', {
        rank,
        alpha: 1,
      }),
    ).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
  });
});

/** Plain 2-D cross-correlation, NCHW, batch 1, symmetric padding. */
function conv2d(
  x: Float32Array,
  c: number,
  h: number,
  wd: number,
  w: Float32Array,
  m: number,
  k: number,
  padding: number,
): Float32Array {
  const out = new Float32Array(m * h * wd);
  for (let o = 0; o < m; o++)
    for (let i = 0; i < h; i++)
      for (let j = 0; j < wd; j++) {
        let s = 0;
        for (let ch = 0; ch < c; ch++)
          for (let p = 0; p < k; p++)
            for (let q = 0; q < k; q++) {
              const [y, z] = [i + p - padding, j + q - padding];
              if (y >= 0 && y < h && z >= 0 && z < wd)
                s += x[(ch * h + y) * wd + z]! * w[((o * c + ch) * k + p) * k + q]!;
            }
        out[(o * h + i) * wd + j] = s;
      }
  return out;
}

describe('loraConv', () => {
  it('adds (alpha/r)·B₁ₓ₁(A_k×k(x)) to the base convolution, as kohya does', async () => {
    const [c, m, hw, k, rank] = [2, 3, 4, 3, 2];
    const [x, w, up] = [random(c * hw * hw), random(m * c * k * k), random(m * rank)];
    const graph = new Graph();
    const input = graph.input('x', 'float32', [1, c, hw, hw]);
    const layer = loraConv(
      input,
      graph.constant(w, 'float32', [m, c, k, k]),
      'conv_in',
      { rank, alpha: 1 },
      { pads: [1, 1, 1, 1] },
    );
    graph.output(layer.output, 'y');
    expect(layer.down.shape).toEqual([rank, c, k, k]);
    expect(layer.up.shape).toEqual([m, rank, 1, 1]);
    expect(Math.max(...layer.down.initial.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(c * k * k));
    const y = valuesOf(
      (await runGraph(graph, { x: f32([1, c, hw, hw], x), ...parameterFeeds(layer, up) }))['y'],
    );
    const base = conv2d(x, c, hw, hw, w, m, k, 1);
    const hidden = conv2d(x, c, hw, hw, layer.down.initial, rank, k, 1);
    const delta = conv2d(hidden, rank, hw, hw, up, m, 1, 0);
    y.forEach((v, i) => {
      expect(v).toBeCloseTo(base[i]! + 0.5 * delta[i]!, 4);
    });
  });

  it('refuses a grouped base convolution', () => {
    const graph = new Graph();
    const make = (x: Tensor) =>
      loraConv(x, graph.input('w', 'float32', [4, 2, 1, 1]), 'c', { rank: 1, alpha: 1 }, { group: 2 });
    expect(() => make(graph.input('x', 'float32', [1, 4, 2, 2]))).toThrow(
      expect.objectContaining({ code: 'E_SHAPE_MISMATCH' }),
    );
  });
});

describe('loraDropout', () => {
  const [rows, cols] = [64, 128];
  async function masks(p: number, seeds: readonly number[], salt = 1) {
    const graph = new Graph();
    graph.output(loraDropout(graph.input('x', 'float32', ['n', cols]), p, salt), 'y');
    return Promise.all(
      seeds.map(async (seed) => {
        const out = await runGraph(graph, {
          x: f32([rows, cols], new Float32Array(rows * cols).fill(1)),
          [LORA_DROPOUT_SEED]: hostTensor('int64', [], BigInt64Array.of(BigInt(seed))),
        });
        return valuesOf(out['y']);
      }),
    );
  }

  it.each([0.1, 0.5])('zeroes a fraction %d of the elements and scales the rest by 1/(1 − p)', async (p) => {
    const [y] = await masks(p, [12345]);
    const dropped = y!.filter((v) => v === 0).length / y!.length;
    // 8192 elements: 4 standard deviations of a binomial fraction.
    expect(Math.abs(dropped - p)).toBeLessThan(4 * Math.sqrt((p * (1 - p)) / y!.length));
    expect(new Set(y!.filter((v) => v !== 0).map((v) => v.toFixed(5)))).toEqual(
      new Set([(1 / (1 - p)).toFixed(5)]),
    );
    // No stripes: neighbouring elements are dropped independently.
    let both = 0;
    for (let i = 1; i < y!.length; i++) if (y![i] === 0 && y![i - 1] === 0) both++;
    expect(Math.abs(both / (y!.length - 1) - p * p)).toBeLessThan(0.02);
  });

  it('is a pure function of the fed seed and the layer: same seed same mask, others differ', async () => {
    const [a, again, b] = await masks(0.5, [7, 7, 8]);
    expect(again).toEqual(a);
    const agreement = (u: number[], v: number[]) =>
      u.filter((x, i) => (x === 0) === (v[i] === 0)).length / u.length;
    expect(agreement(a!, b!)).toBeLessThan(0.55);
    const [otherLayer] = await masks(0.5, [7], 2);
    expect(agreement(a!, otherLayer!)).toBeLessThan(0.55);
  });

  it('lets the gradient through the kept elements only', async () => {
    const graph = new Graph();
    const x = graph.input('x', 'float32', [4, 8]);
    const y = loraDropout(x, 0.5, 3);
    graph.output(y, 'y');
    graph.output(gradients(reduceSum(y), [x])[0]!, 'dx');
    const out = await runGraph(graph, {
      x: f32([4, 8], random(32)),
      [LORA_DROPOUT_SEED]: hostTensor('int64', [], BigInt64Array.of(5n)),
    });
    const [ys, dx] = [valuesOf(out['y']), valuesOf(out['dx'])];
    dx.forEach((g, i) => {
      expect(g).toBe(ys[i] === 0 ? 0 : 2);
    });
  });
});

describe('variants', () => {
  it('the config offers exactly the registered variants', () => {
    expect([...NETWORKS].sort()).toEqual(Object.keys(VARIANTS).sort());
  });

  it.each(['output', 'input'] as const)(
    "starts DoRA's magnitude at the norm (per %s) of the frozen F16 weight, read through casts and reshapes",
    async (normAxis) => {
      const folder = await mkdtemp(join(tmpdir(), 'dora-init-'));
      try {
        const w = [3, 4, 0, 1, -2, 2, 6, -3, 0, 8, 0, 0];
        const file = join(folder, 'w.safetensors');
        const half = new Uint16Array(w.map((v) => toFloat16Bits(v)));
        await writeSafetensors(
          file,
          new Map([['proj.weight', { dtype: 'F16', shape: [3, 4, 1, 1], data: half }]]),
        );
        const graph = new Graph();
        const weight = reshape(
          cast(safetensorsWeight(graph, await openSafetensors(file), 'proj.weight'), 'float32'),
          [3, 4],
        );
        const layer = loraLayer(graph.input('x', 'float32', [1, 4]), weight, 'proj', {
          network: 'dora',
          rank: 2,
          alpha: 2,
          normAxis,
        });
        const [down, up, magnitude] = layer.parameters;
        expect([down!.name, up!.name, magnitude!.name]).toEqual([
          'proj.lora_A.weight',
          'proj.lora_B.weight',
          'proj.lora_magnitude_vector',
        ]);
        const rows = [0, 1, 2].map((o) => w.slice(o * 4, o * 4 + 4));
        const expected =
          normAxis === 'output'
            ? rows.map((row) => Math.hypot(...row))
            : [0, 1, 2, 3].map((j) => Math.hypot(...rows.map((row) => row[j]!)));
        expect(magnitude!.shape).toEqual(normAxis === 'output' ? [3, 1] : [1, 4]);
        expect([...magnitude!.initial]).toEqual(expected.map(Math.fround));
        expect(up!.initial.every((v) => v === 0)).toBe(true);
        await writeModel(graph, folder);
      } finally {
        await rm(folder, { recursive: true, force: true });
      }
    },
  );
});
