export type LrSchedulerName =
  | 'constant'
  | 'constant_with_warmup'
  | 'linear'
  | 'cosine'
  | 'cosine_with_restarts';

export interface LrScheduleOptions {
  scheduler: LrSchedulerName;
  baseLr: number;
  totalSteps: number;
  warmupSteps: number;
  /** Cycles of `cosine_with_restarts` (diffusers' and kohya's default: 1). */
  numCycles?: number;
}

/**
 * The learning rate used by optimizer step `step` (0-based), with the same values as
 * transformers' `get_*_schedule_with_warmup` driven by `LambdaLR`: step 0 of a warmup uses lr 0.
 * `constant` ignores warmup, as transformers' `get_constant_schedule` does.
 */
export function learningRate(options: LrScheduleOptions, step: number): number {
  return options.baseLr * lrFactor(options, step);
}

function lrFactor(
  { scheduler, totalSteps, warmupSteps, numCycles }: LrScheduleOptions,
  step: number,
): number {
  if (scheduler === 'constant') return 1;
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  if (scheduler === 'constant_with_warmup') return 1;
  const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
  switch (scheduler) {
    case 'linear':
      return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
    case 'cosine':
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 0.5 * 2 * progress)));
    case 'cosine_with_restarts':
      if (progress >= 1) return 0;
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * (((numCycles ?? 1) * progress) % 1))));
  }
}

/** Warmup steps from a ratio of the total, rounded up as transformers' `get_warmup_steps` does. */
export function warmupStepsFromRatio(ratio: number, totalSteps: number): number {
  return Math.ceil(totalSteps * ratio);
}
