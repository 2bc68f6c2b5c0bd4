/**
 * Checkpoints: `<outputDir>/checkpoints/step-<n>/` with the LoRA weights (`lora.safetensors`),
 * the optimizer state (`optimizer.safetensors`), both float32, and `state.json` (counters, loss
 * scale, RNG, resolved config). A checkpoint is written into a hidden temporary folder and
 * renamed into place, so a crash never leaves a half-written `step-<n>`.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors } from '@lora/safetensors';
import { TrainerOrtError } from '../errors.ts';
import type { LossScaleState } from './precision.ts';

export const CHECKPOINTS_FOLDER = 'checkpoints';
const STATE_FILE = 'state.json';
const WEIGHTS_FILE = 'lora.safetensors';
const OPTIMIZER_FILE = 'optimizer.safetensors';
const FORMAT = 'lora-trainer-ort-checkpoint';
const STEP_FOLDER = /^step-(\d+)$/;
const TEMPORARY_FOLDER = /^\.step-\d+\.[0-9a-f]+\.tmp$/;
/** A state.json past this is not one this module wrote; refuse it before parsing. */
const MAX_STATE_BYTES = 16 << 20;

/** Where training stands between two optimizer steps. */
export interface TrainingState {
  /** Optimizer steps taken (skipped fp16 steps included): the step counter users see. */
  step: number;
  /** Updates applied: AdamW's step count and the schedule's position. */
  updates: number;
  /** 0-based epoch of the next micro-batch. */
  epoch: number;
  /** Index of the next micro-batch in that epoch. */
  position: number;
  /** Σ loss sums and Σ weights so far in the epoch, for its mean loss. */
  epochLoss: { sum: number; weight: number };
  /** Present while fp16 loss scaling is on. */
  lossScale?: LossScaleState;
}

export interface CheckpointParameter {
  name: string;
  shape: number[];
  group: string;
}

/** Everything in `state.json`. */
export interface CheckpointMeta extends TrainingState {
  format: typeof FORMAT;
  version: 1;
  microBatchesPerEpoch: number;
  /**
   * All randomness is drawn from `createRng(seed, stream, …keys)` streams keyed by position
   * (epoch, micro-batch, layer), so the seed is the whole generator state to restore.
   */
  rng: { algorithm: 'xoshiro128**'; seed: number };
  optimizer: string;
  parameters: CheckpointParameter[];
  /** The resolved training config the run was started with. */
  config?: unknown;
}

export interface Checkpoint {
  meta: CheckpointMeta;
  /** Parameter values by name. */
  values: Map<string, Float32Array>;
  /** Optimizer state by `<parameter>.<slot>`. */
  optimizerState: Map<string, Float32Array>;
}

function tensorsOf(
  values: ReadonlyMap<string, Float32Array>,
  shapes: ReadonlyMap<string, readonly number[]>,
) {
  return [...values].map(
    ([name, data]) => [name, { dtype: 'F32' as const, shape: shapes.get(name)!, data }] as const,
  );
}

/** Writes `checkpoints/step-<meta.step>` atomically (replacing one of that name) and returns its path. */
export async function writeCheckpoint(outputDir: string, checkpoint: Checkpoint): Promise<string> {
  const { meta } = checkpoint;
  const root = join(outputDir, CHECKPOINTS_FOLDER);
  await mkdir(root, { recursive: true });
  const name = `step-${meta.step}`;
  const temporary = join(root, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
  await mkdir(temporary);
  try {
    const shapes = new Map(meta.parameters.map((p) => [p.name, p.shape]));
    const slotShapes = new Map(
      [...checkpoint.optimizerState.keys()].map((key) => [key, shapes.get(parameterOf(key, shapes))!]),
    );
    await writeSafetensors(join(temporary, WEIGHTS_FILE), tensorsOf(checkpoint.values, shapes));
    await writeSafetensors(join(temporary, OPTIMIZER_FILE), tensorsOf(checkpoint.optimizerState, slotShapes));
    await writeDurably(join(temporary, STATE_FILE), `${JSON.stringify(meta, null, 1)}\n`);
    const target = join(root, name);
    const replaced = await stat(target).then(
      () => `${temporary}.old`,
      () => undefined,
    );
    if (replaced) await rename(target, replaced);
    await rename(temporary, target);
    if (replaced) await rm(replaced, { recursive: true, force: true });
    return target;
  } catch (error) {
    await rm(temporary, { recursive: true, force: true });
    throw error;
  }
}

/** The parameter a `<parameter>.<slot>` key belongs to (parameter names contain dots themselves). */
function parameterOf(key: string, shapes: ReadonlyMap<string, unknown>): string {
  const name = key.slice(0, key.lastIndexOf('.'));
  if (!shapes.has(name))
    throw new TrainerOrtError('E_CHECKPOINT_INVALID', `optimizer state '${key}' has no parameter`);
  return name;
}

async function writeDurably(path: string, text: string): Promise<void> {
  const handle = await open(path, 'wx');
  try {
    await handle.writeFile(text);
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

/** Checkpoints under `<outputDir>/checkpoints`, oldest first. */
export async function listCheckpoints(outputDir: string): Promise<{ step: number; path: string }[]> {
  const root = join(outputDir, CHECKPOINTS_FOLDER);
  const entries = await readdir(root).catch(() => [] as string[]);
  return entries
    .flatMap((entry) => {
      const match = STEP_FOLDER.exec(entry);
      return match ? [{ step: Number(match[1]), path: join(root, entry) }] : [];
    })
    .sort((a, b) => a.step - b.step);
}

/** Deletes all but the newest `keep` checkpoints (0 keeps all) and temporary folders left by a crash. */
export async function pruneCheckpoints(outputDir: string, keep: number): Promise<void> {
  const root = join(outputDir, CHECKPOINTS_FOLDER);
  const leftovers = (await readdir(root).catch(() => [] as string[])).filter((e) => TEMPORARY_FOLDER.test(e));
  const old = keep > 0 ? (await listCheckpoints(outputDir)).slice(0, -keep).map((c) => c.path) : [];
  for (const path of [...leftovers.map((e) => join(root, e)), ...old])
    await rm(path, { recursive: true, force: true });
}

/** The newest checkpoint in `<outputDir>/checkpoints`, if any. */
export async function latestCheckpoint(outputDir: string): Promise<string | undefined> {
  return (await listCheckpoints(outputDir)).at(-1)?.path;
}

function invalid(path: string, message: string): TrainerOrtError {
  return new TrainerOrtError(
    'E_CHECKPOINT_INVALID',
    `checkpoint ${path}: ${message}; resume from another checkpoint (or start a new run without resume)`,
  );
}

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

function checkMeta(path: string, meta: unknown): CheckpointMeta {
  const m = meta as Partial<CheckpointMeta> | null;
  if (typeof m !== 'object' || m === null || m.format !== FORMAT || m.version !== 1) {
    throw invalid(path, `${STATE_FILE} is not a trainer-ort checkpoint state (format ${FORMAT}, version 1)`);
  }
  const counters = ['step', 'updates', 'epoch', 'position', 'microBatchesPerEpoch'] as const;
  const bad = counters.filter((key) => !isCount(m[key]));
  if (bad.length > 0) throw invalid(path, `${bad.join(', ')} must be non-negative integers`);
  const loss = m.epochLoss;
  if (typeof loss?.sum !== 'number' || typeof loss.weight !== 'number') {
    throw invalid(path, 'epochLoss must be { sum, weight }');
  }
  const scale = m.lossScale;
  if (scale !== undefined && !(scale.scale > 0 && isCount(scale.goodSteps))) {
    throw invalid(path, 'lossScale must be { scale > 0, goodSteps ≥ 0 }');
  }
  if (!Array.isArray(m.parameters) || typeof m.optimizer !== 'string' || typeof m.rng?.seed !== 'number') {
    throw invalid(path, 'parameters, optimizer and rng are required');
  }
  return m as CheckpointMeta;
}

function float32Of(
  path: string,
  file: string,
  name: string,
  tensor: { dtype: string; data: ArrayBufferView },
) {
  if (tensor.dtype !== 'F32') throw invalid(path, `${file}: '${name}' is ${tensor.dtype}, expected F32`);
  const bytes = tensor.data;
  // Copy: safetensors data need not be 4-byte aligned in the file buffer.
  const out = new Float32Array(bytes.byteLength / 4);
  new Uint8Array(out.buffer).set(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  return out;
}

/** Reads a checkpoint folder; `CHECKPOINT_NOT_FOUND` when it has no `state.json`. */
export async function readCheckpoint(path: string): Promise<Checkpoint> {
  const statePath = join(path, STATE_FILE);
  const info = await stat(statePath).catch(() => undefined);
  if (!info?.isFile()) {
    throw new TrainerOrtError(
      'E_CHECKPOINT_NOT_FOUND',
      `no checkpoint at ${path} (expected ${STATE_FILE} there); point resume at a checkpoints/step-<n> folder, or use resume: auto`,
    );
  }
  if (info.size > MAX_STATE_BYTES) throw invalid(path, `${STATE_FILE} is ${info.size} bytes`);
  let meta: CheckpointMeta;
  try {
    meta = checkMeta(path, JSON.parse(await readFile(statePath, 'utf8')));
  } catch (error) {
    if (TrainerOrtError.isInstance(error)) throw error;
    throw invalid(path, `${STATE_FILE} is not valid JSON (${(error as Error).message})`);
  }
  const read = async (file: string) => {
    try {
      const { tensors } = await readSafetensors(join(path, file));
      return new Map([...tensors].map(([name, t]) => [name, float32Of(path, file, name, t)]));
    } catch (error) {
      if (TrainerOrtError.isInstance(error)) throw error;
      throw invalid(path, `${file} cannot be read (${(error as Error).message})`);
    }
  };
  return { meta, values: await read(WEIGHTS_FILE), optimizerState: await read(OPTIMIZER_FILE) };
}
