import type { HostTensor } from '@lora/engine';
import { TrainerOrtError } from '../errors.ts';
import { gradName } from './optimizer.ts';
import { LOSS_SUM, LOSS_WEIGHT } from './step-graphs.ts';

/**
 * Sums of one optimizer step's micro-batch gradients, in float32 on the host, in micro-batch
 * order (so the result is the same on every run), plus the loss sums and weights. A parallel run
 * merges the workers' sums in worker order instead.
 */
export class GradientSum {
  readonly sums = new Map<string, Float32Array>();
  lossSum = 0;
  weight = 0;

  constructor(parameters: readonly { name: string; shape: readonly number[] }[]) {
    for (const p of parameters) this.sums.set(p.name, new Float32Array(p.shape.reduce((a, b) => a * b, 1)));
  }

  add(outputs: Readonly<Record<string, HostTensor>>): void {
    this.lossSum += scalarOf(outputs, LOSS_SUM);
    this.weight += scalarOf(outputs, LOSS_WEIGHT);
    for (const [name, sum] of this.sums) {
      const g = outputs[gradName(name)];
      if (g?.dtype !== 'float32' || g.data.length !== sum.length) {
        throw new TrainerOrtError(
          'E_RUN_FAILED',
          `gradients graph: '${gradName(name)}' is missing or mis-shaped`,
        );
      }
      const data = g.data as Float32Array;
      for (let i = 0; i < sum.length; i++) sum[i]! += data[i]!;
    }
  }

  /** Adds another partial sum (a worker's, in a parallel run), element by element in float32. */
  merge(other: { lossSum: number; weight: number; sums: Readonly<Record<string, Float32Array>> }): void {
    this.lossSum += other.lossSum;
    this.weight += other.weight;
    for (const [name, sum] of this.sums) {
      const data = other.sums[name];
      if (data?.length !== sum.length) {
        throw new TrainerOrtError('E_RUN_FAILED', `worker gradient sums: '${name}' is missing or mis-shaped`);
      }
      for (let i = 0; i < sum.length; i++) sum[i]! += data[i]!;
    }
  }

  /** Σ g² over every sum, in float64: NaN or ∞ exactly when some gradient is not finite. */
  squaredNorm(): number {
    let total = 0;
    for (const sum of this.sums.values()) for (let i = 0; i < sum.length; i++) total += sum[i]! * sum[i]!;
    return total;
  }
}

function scalarOf(outputs: Readonly<Record<string, HostTensor>>, name: string): number {
  const t = outputs[name];
  if (t?.dtype !== 'float32' || t.data.length !== 1) {
    throw new TrainerOrtError(
      'E_RUN_FAILED',
      `gradients graph: output '${name}' is missing or not a float32 scalar`,
    );
  }
  return (t.data as Float32Array)[0]!;
}
