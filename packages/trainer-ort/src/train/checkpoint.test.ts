import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Checkpoint,
  latestCheckpoint,
  listCheckpoints,
  pruneCheckpoints,
  readCheckpoint,
  writeCheckpoint,
} from './checkpoint.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lora-checkpoint-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function checkpoint(step: number, fill = step): Checkpoint {
  // Values that do not survive a float64 → float32 → text round trip unless stored as raw bits.
  const a = Float32Array.from([Math.PI, -1e-40, fill, Number.MIN_VALUE]);
  return {
    meta: {
      format: 'lora-trainer-ort-checkpoint',
      version: 1,
      step,
      updates: step - 1,
      epoch: 2,
      position: 3,
      epochLoss: { sum: 0.1 + 0.2, weight: 7 },
      lossScale: { scale: 2048, goodSteps: 5 },
      microBatchesPerEpoch: 5,
      rng: { algorithm: 'xoshiro128**', seed: 42 },
      optimizer: 'adamw',
      parameters: [{ name: 'fc.lora_A.weight', shape: [2, 2], group: 'default' }],
      config: { learning_rate: 1e-4 },
    },
    values: new Map([['fc.lora_A.weight', a]]),
    optimizerState: new Map([
      ['fc.lora_A.weight.exp_avg', a.map((v) => v / 3)],
      ['fc.lora_A.weight.exp_avg_sq', a.map((v) => v * v)],
    ]),
  };
}

describe('checkpoints', () => {
  it('round-trips weights, optimizer state and state bit for bit', async () => {
    const written = checkpoint(4);
    const path = await writeCheckpoint(dir, written);
    expect(path).toBe(join(dir, 'checkpoints', 'step-4'));
    expect((await readdir(path)).sort()).toEqual(['lora.safetensors', 'optimizer.safetensors', 'state.json']);
    expect(await readCheckpoint(path)).toEqual(written);
  });

  it('replaces a checkpoint of the same step whole, and leaves no temporary folder', async () => {
    const root = await mkdtemp(join(dir, 'replace-'));
    await writeCheckpoint(root, checkpoint(3));
    const path = await writeCheckpoint(root, checkpoint(3, 99));
    expect((await readCheckpoint(path)).values.get('fc.lora_A.weight')![2]).toBe(99);
    expect(await readdir(join(root, 'checkpoints'))).toEqual(['step-3']);
  });

  it('lists by step number, finds the newest, and prunes to keepLast plus crash leftovers', async () => {
    const root = await mkdtemp(join(dir, 'prune-'));
    for (const step of [2, 10, 9, 1]) await writeCheckpoint(root, checkpoint(step));
    const leftover = join(root, 'checkpoints', '.step-11.0123456789ab.tmp');
    await mkdir(leftover);
    await mkdir(join(root, 'checkpoints', 'notes'));
    expect((await listCheckpoints(root)).map((c) => c.step)).toEqual([1, 2, 9, 10]);
    expect(await latestCheckpoint(root)).toBe(join(root, 'checkpoints', 'step-10'));
    await pruneCheckpoints(root, 2);
    expect((await readdir(join(root, 'checkpoints'))).sort()).toEqual(['notes', 'step-10', 'step-9']);
    await pruneCheckpoints(root, 0);
    expect((await listCheckpoints(root)).map((c) => c.step)).toEqual([9, 10]);
    expect(await latestCheckpoint(join(root, 'missing'))).toBeUndefined();
  });

  it.each<[string, (path: string) => Promise<void>, string]>([
    ['no state.json', (p) => rm(join(p, 'state.json')), 'E_CHECKPOINT_NOT_FOUND'],
    [
      'state.json that is not JSON',
      (p) => writeFile(join(p, 'state.json'), '{"step":'),
      'E_CHECKPOINT_INVALID',
    ],
    [
      'another format',
      (p) => writeFile(join(p, 'state.json'), '{"format":"x","version":1}'),
      'E_CHECKPOINT_INVALID',
    ],
    [
      'a negative step',
      async (p) => {
        const meta = { ...checkpoint(1).meta, step: -1 };
        await writeFile(join(p, 'state.json'), JSON.stringify(meta));
      },
      'E_CHECKPOINT_INVALID',
    ],
    ['a truncated weights file', (p) => writeFile(join(p, 'lora.safetensors'), 'xx'), 'E_CHECKPOINT_INVALID'],
  ])('refuses a checkpoint with %s', async (_, damage, code) => {
    const root = await mkdtemp(join(dir, 'bad-'));
    const path = await writeCheckpoint(root, checkpoint(1));
    await damage(path);
    await expect(readCheckpoint(path)).rejects.toMatchObject({
      code,
      message: expect.stringContaining(path),
    });
  });
});
