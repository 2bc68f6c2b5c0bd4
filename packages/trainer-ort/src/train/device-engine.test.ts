// The WebGPU engine (state in GPU memory) against the host engine on the CPU provider, on the
// loop's MLP fixture: the same training to float32 rounding, resume bit-identical on the device,
// skipped fp16 steps, and the host↔device bytes a step moves with each engine.
import { rm } from 'node:fs/promises';
import { afterAll, expect, it } from 'vitest';
import { hostBytesExchanged } from '../session.ts';
import { describeOnWebGpu, HOOK_TIMEOUT, relativeError } from '../webgpu/testing.ts';
import { readCheckpoint } from './checkpoint.ts';
import { runTrainingLoop } from './loop.ts';
import type { LoopEvent } from './options.ts';
import { type MlpOverrides, parameterBytes, referenceLoop } from './test-model.ts';

const folders: string[] = [];
afterAll(async () => {
  await Promise.all(folders.map((f) => rm(f, { recursive: true, force: true })));
});

/** The loop tests' reference run, with no checkpoint but the last unless a test asks. */
const options = (overrides: MlpOverrides = {}) =>
  referenceLoop(folders, { checkpoints: { everySteps: 100, keepLast: 0 }, ...overrides });

async function train(overrides: MlpOverrides = {}) {
  const events: LoopEvent[] = [];
  const result = await runTrainingLoop(await options({ ...overrides, onEvent: (e) => events.push(e) }));
  return { result, steps: events.flatMap((e) => (e.type === 'step' ? [e] : [])), events };
}

/**
 * The WebGPU provider and the CPU provider round float32 differently (fused multiply-adds,
 * reduction order, WGSL's division): after 9 AdamW steps the LoRA values agree to ~1e-6 relative.
 * A wrong engine (a lost micro-batch, the update applied twice, unclipped gradients) moves
 * them by far more than 1e-4.
 */
const TOLERANCE = 1e-4;

describeOnWebGpu('the WebGPU engine', () => {
  it(
    'trains like the host engine on the CPU: the same losses, norms and LoRA values to float32 rounding',
    async () => {
      const cpu = await train({ device: 'cpu' });
      const gpu = await train({ device: 'webgpu' });
      expect(gpu.result).toMatchObject({ stopped: 'completed', step: 9, updates: 9, precision: 'fp32' });
      let worst = 0;
      for (const [name, expected] of cpu.result.parameters) {
        const error = relativeError(
          gpu.result.parameters.get(name)!.data as Float32Array,
          expected.data as Float32Array,
        );
        worst = Math.max(worst, error);
      }
      console.log(
        `WebGPU engine vs CPU host engine, MLP, 9 steps: LoRA values max relative error ${worst.toExponential(2)}`,
      );
      expect(worst).toBeLessThan(TOLERANCE);
      for (const [i, step] of gpu.steps.entries()) {
        expect(step.loss).toBeCloseTo(cpu.steps[i]!.loss, 5);
        expect(step.grad_norm).toBeCloseTo(cpu.steps[i]!.grad_norm, 5);
      }
    },
    HOOK_TIMEOUT,
  );

  it(
    'resumes on the device bit-identically after an abort (state downloaded, checkpointed, uploaded again)',
    async () => {
      const straight = await train({ device: 'webgpu' });
      const controller = new AbortController();
      const opts = await options({
        device: 'webgpu',
        signal: controller.signal,
        dataOptions: { onBatch: (e, i) => e === 1 && i === 0 && controller.abort() },
      });
      const stopped = await runTrainingLoop(opts);
      expect(stopped).toMatchObject({ stopped: 'aborted', step: 4 });
      const saved = await readCheckpoint(stopped.checkpoint!);
      expect(parameterBytes(new Map([...saved.values].map(([k, v]) => [k, { data: v }])))).toEqual(
        parameterBytes(stopped.parameters),
      );
      const resumed = await runTrainingLoop({
        ...opts,
        signal: new AbortController().signal,
        resume: stopped.checkpoint!,
      });
      expect(parameterBytes(resumed.parameters)).toEqual(parameterBytes(straight.result.parameters));
    },
    HOOK_TIMEOUT,
  );

  it(
    'in fp16 drops the sums of a step with non-finite gradients and keeps the values of the step before',
    async () => {
      const { result, steps, events } = await train({
        device: 'webgpu',
        mixedPrecision: 'fp16',
        gradientAccumulationSteps: 1,
        epochs: 1,
        lossScale: { initial: 16, growthInterval: 100 },
        checkpoints: { everySteps: 1, keepLast: 0 },
        dataOptions: { poison: { at: [[0, 2]], value: Number.POSITIVE_INFINITY } },
      });
      expect(result).toMatchObject({ precision: 'fp16', step: 5, updates: 4 });
      expect(steps.map((s) => s.loss_scale)).toEqual([16, 16, 16, 8, 8]);
      expect(events.filter((e) => e.type === 'warning').map((e) => e.code)).toEqual(['loss_scale_reduced']);
      const [two, three] = await Promise.all(
        [2, 3].map((s) => readCheckpoint(`${result.checkpoint!.replace(/step-\d+$/, '')}step-${s}`)),
      );
      expect(three!.values).toEqual(two!.values);
      expect(
        [...result.parameters.values()].every((t) => (t.data as Float32Array).every(Number.isFinite)),
      ).toBe(true);
    },
    HOOK_TIMEOUT,
  );

  it(
    'moves only the batch, the loss and a few scalars between host and device per step',
    async () => {
      // Two runs of different length: their difference is the traffic of the extra steps alone.
      const traffic = async (device: 'cpu' | 'webgpu', maxSteps: number) => {
        const before = hostBytesExchanged(device);
        await train({ device, maxSteps, checkpoints: { everySteps: 100, keepLast: 0 } });
        const after = hostBytesExchanged(device);
        return after.fed - before.fed + (after.fetched - before.fetched);
      };
      const perStep = async (device: 'cpu' | 'webgpu') =>
        ((await traffic(device, 8)) - (await traffic(device, 4))) / 4;
      const host = await perStep('cpu');
      const device = await perStep('webgpu');
      console.log(
        `host↔session bytes per step, MLP (2 micro-batches): host engine ${host}, WebGPU engine ${device}`,
      );
      // Per micro-batch the batch (2×6 + 2×3 floats), the loss scale, the dropout seed and two loss
      // scalars; per step the optimizer scalars and Σ g²: no LoRA values, gradients or state.
      const lora = 2 * 6 + 8 * 2 + (2 * 8 + 3 * 2); // fc1 and fc2 A and B (rank 2), in floats
      expect(device).toBeLessThan(2 * (18 * 4 + 4 + 8 + 8) + 64);
      expect(host).toBeGreaterThan(device + 4 * lora * 4);
    },
    HOOK_TIMEOUT,
  );
});
