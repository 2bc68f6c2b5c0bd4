import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRng } from '@lora/dataset';
import { afterAll, describe, expect, it } from 'vitest';
import { HIDDEN, IN, mlpData, mlpModel, OUT } from './test-model.ts';
import { buildLossGraph, OVERFITTING_PATIENCE, ValidationHistory, validationLoss } from './validation.ts';

const folders: string[] = [];
afterAll(async () => {
  await Promise.all(folders.map((f) => rm(f, { recursive: true, force: true })));
});

/** The MLP of `mlpModel` on the host: W2·tanh(W1·x + s·B1·A1·x) + s·B2·A2·h, s = alpha / rank = 2. */
function hostLoss(values: ReadonlyMap<string, Float32Array>, xs: Float32Array, ys: Float32Array, n: number) {
  const rng = createRng(1234);
  const randn = (count: number, scale: number) => Array.from({ length: count }, () => rng.normal() * scale);
  const w1 = randn(HIDDEN * IN, 0.5);
  const w2 = randn(OUT * HIDDEN, 0.5);
  const matvec = (m: ArrayLike<number>, rows: number, cols: number, v: number[]) =>
    Array.from({ length: rows }, (_, r) => v.reduce((sum, vi, c) => sum + m[r * cols + c]! * vi, 0));
  const layer = (w: number[], name: string, rows: number, cols: number, v: number[]) => {
    const a = values.get(`${name}.lora_A.weight`)!;
    const b = values.get(`${name}.lora_B.weight`)!;
    const low = matvec(b, rows, 2, matvec(a, 2, cols, v));
    return matvec(w, rows, cols, v).map((y, i) => y + 2 * low[i]!);
  };
  let sum = 0;
  for (let e = 0; e < n; e++) {
    const x = [...xs.subarray(e * IN, (e + 1) * IN)];
    const h = layer(w1, 'fc1', HIDDEN, IN, x).map(Math.tanh);
    const y = layer(w2, 'fc2', OUT, HIDDEN, h);
    y.forEach((v, i) => {
      sum += (v - ys[e * OUT + i]!) ** 2;
    });
  }
  return sum / n;
}

describe('validationLoss', () => {
  it.each([false, true])(
    'is the mean loss of every held-out example at the given LoRA values (one graph per shape: %s)',
    async (staticBatch) => {
      const model = mlpModel({ staticBatch });
      const data = mlpData({ examples: 5, batchSize: 2 });
      const rng = createRng(3);
      const { parameters } = buildLossGraph(model, 'float32', staticBatch ? 'b2' : undefined);
      const values = new Map(
        parameters.map((p) => [p.name, Float32Array.from(p.initial, () => rng.normal() * 0.3)]),
      );
      const folder = await mkdtemp(join(tmpdir(), 'validation-'));
      folders.push(folder);
      const loss = await validationLoss({ model, data, description: '5 examples' }, values, folder, {
        device: 'cpu',
        mixedPrecision: 'no',
        onNotice: () => {},
      });
      const batches = await Promise.all([0, 1, 2].map((i) => data.batch(0, i)));
      const xs = Float32Array.from(batches.flatMap((b) => [...b.x]));
      const ys = Float32Array.from(batches.flatMap((b) => [...b.target]));
      expect(loss).toBeCloseTo(hostLoss(values, xs, ys, 5), 5);
    },
  );

  it('refuses a model with LoRA dropout: its loss would depend on random masks', () => {
    expect(() => buildLossGraph(mlpModel({ dropout: 0.1 }), 'float32')).toThrow(/without dropout/);
  });
});

describe('ValidationHistory', () => {
  it('tracks the lowest loss and says once when the loss has risen OVERFITTING_PATIENCE times in a row', () => {
    expect(OVERFITTING_PATIENCE).toBe(3);
    const history = new ValidationHistory();
    const losses = [1, 0.8, 0.85, 0.7, 0.75, 0.8, 0.9, 1.0, 0.95, 0.96, 0.97, 0.98];
    const records = losses.map((loss, i) => history.record(i * 10, loss));
    expect(records.map((r) => r.improved)).toEqual([
      true,
      true,
      false,
      true,
      false,
      false,
      false,
      false,
      false,
      false,
      false,
      false,
    ]);
    expect(records.map((r) => r.overfitting)).toEqual([
      false,
      false,
      false,
      false,
      false,
      false,
      true,
      false,
      false,
      false,
      false,
      true,
    ]);
    expect(records.at(-1)!.best).toEqual({ step: 30, loss: 0.7 });
  });

  it('continues from the best step of the run it resumes', () => {
    const history = new ValidationHistory({ step: 40, loss: 0.5, adapter: '/run/best/a.safetensors' });
    expect(history.record(50, 0.6)).toMatchObject({ improved: false, best: { step: 40, loss: 0.5 } });
    expect(history.record(60, 0.4)).toMatchObject({ improved: true, best: { step: 60, loss: 0.4 } });
  });
});
