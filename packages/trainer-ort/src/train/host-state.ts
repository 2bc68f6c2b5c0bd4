/**
 * LoRA values and optimizer state kept on the host between steps, as the CPU and CUDA engines and
 * data-parallel runs keep them: every step feeds the values to the gradients graph and runs the
 * update graph on the CPU with the step's float32 sums.
 */
import { type HostTensor, hostTensor } from '@lora/engine';
import type { Session } from '../session.ts';
import type { GradientSum } from './gradient-sum.ts';
import { gradName, nextName, slotName } from './optimizer.ts';
import type { TrainedParameter } from './step-graphs.ts';

/** LoRA values and optimizer state tensors, by name (`slotName(parameter, slot)` for the state). */
export interface TrainState {
  values: Map<string, Float32Array>;
  optimizerState: Map<string, Float32Array>;
}

export class HostState {
  private current: TrainState = { values: new Map(), optimizerState: new Map() };

  constructor(
    private readonly parameters: readonly TrainedParameter[],
    private readonly slots: readonly string[],
    /** The update graph (`update.onnx`), on the CPU. */
    readonly update: Session,
  ) {}

  get values(): ReadonlyMap<string, Float32Array> {
    return this.current.values;
  }

  load(state: TrainState): void {
    this.current = state;
  }

  state(): TrainState {
    return this.current;
  }

  /** One optimizer step over `sum` with the loop's scalar feeds. */
  async apply(sum: GradientSum, scalars: Record<string, HostTensor>): Promise<void> {
    const { values, optimizerState } = this.current;
    const feeds: Record<string, HostTensor> = { ...scalars };
    for (const p of this.parameters) {
      feeds[p.name] = hostTensor('float32', p.shape, values.get(p.name)!);
      feeds[gradName(p.name)] = hostTensor('float32', p.shape, sum.sums.get(p.name)!);
      for (const slot of this.slots) {
        const key = slotName(p.name, slot);
        feeds[key] = hostTensor('float32', p.shape, optimizerState.get(key)!);
      }
    }
    const out = await this.update.run(feeds);
    const take = (name: string) => out[nextName(name)]!.data as Float32Array;
    const next: TrainState = { values: new Map(), optimizerState: new Map() };
    for (const p of this.parameters) {
      next.values.set(p.name, take(p.name));
      for (const slot of this.slots) {
        const key = slotName(p.name, slot);
        next.optimizerState.set(key, take(key));
      }
    }
    this.current = next;
  }
}
