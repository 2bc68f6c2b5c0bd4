/**
 * A1111's conditioning rules beyond the arithmetic the golden tests check: bigG's rows padded with
 * "!" after the first EOS, SDXL's empty negative prompt zeroed (states and pooled embedding) where
 * SD 1.x encodes it, and the shorter prompt padded to the longer one's chunks.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OpenedSdCheckpoint, openSdCheckpoint } from './checkpoint.ts';
import { promptConditions, withSecondEncoderRows } from './conditioning.ts';
import { ClipTokenizer, OPENCLIP_PAD } from './model-files.ts';
import { SdTextToLatent } from './text-to-latent.ts';
import { writeTinySdModel } from './tiny.ts';

let root: string;
const opened: OpenedSdCheckpoint[] = [];
const models: Record<'sd1' | 'sdxl', { text: SdTextToLatent; tokenizer: ClipTokenizer }> = {} as never;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sd-conditioning-'));
  for (const family of ['sd1', 'sdxl'] as const) {
    const tiny = await writeTinySdModel(join(root, family), `tiny-${family}`, 0, family);
    const checkpoint = await openSdCheckpoint(tiny.checkpoint, tiny.config);
    opened.push(checkpoint);
    models[family] = {
      text: await SdTextToLatent.open(checkpoint.checkpoint, [8, 8]),
      tokenizer: await ClipTokenizer.forModel(tiny.checkpoint, 77, undefined, family),
    };
  }
});
afterAll(async () => {
  for (const { text } of Object.values(models)) await text.dispose();
  for (const checkpoint of opened) await checkpoint.close();
  await rm(root, { recursive: true, force: true });
});

const nonZero = (values: Float32Array) => values.some((v) => v !== 0);

describe('prompt conditions', () => {
  it('gives bigG the rows with "!" after the first EOS, the id training pads its captions with', async () => {
    const training = await ClipTokenizer.forModel(
      join(root, 'sdxl', 'tiny-sdxl.safetensors'),
      77,
      undefined,
      'sdxl',
      OPENCLIP_PAD,
    );
    expect(models.sdxl.tokenizer.openClipPadId).toBe(training.padId);
    const chunks = { ids: [[48, 5, 49, 49, 49]], weights: [[1, 1.2, 1, 1, 1]] };
    expect(withSecondEncoderRows(chunks, 49, 0)).toEqual({ ...chunks, ids2: [[48, 5, 49, 0, 0]] });
  });

  it("zeroes an empty SDXL negative prompt, states and pooled embedding, at the prompt's length", async () => {
    const { text, tokenizer } = models.sdxl;
    const [cond, uncond] = await promptConditions(text, tokenizer, ['red circle', ''], true);
    expect(cond.states).toHaveLength(77 * 64);
    expect(cond.pooled).toHaveLength(32);
    expect(nonZero(cond.states) && nonZero(cond.pooled!)).toBe(true);
    expect(uncond.states).toHaveLength(cond.states.length);
    expect(nonZero(uncond.states) || nonZero(uncond.pooled!)).toBe(false);
    expect(uncond.pooled).toHaveLength(32);
  });

  it('pads the shorter prompt with empty chunks; SD 1.x encodes an empty negative prompt', async () => {
    const long = Array.from({ length: 80 }, (_, i) => (i % 2 ? 'circle' : 'red')).join(' ');
    const { text, tokenizer } = models.sdxl;
    const [cond, uncond] = await promptConditions(text, tokenizer, [long, 'blue'], true);
    expect(cond.states).toHaveLength(2 * 77 * 64);
    expect(uncond.states).toHaveLength(cond.states.length);
    expect(nonZero(uncond.states.subarray(77 * 64))).toBe(true);
    const sd1 = await promptConditions(models.sd1.text, models.sd1.tokenizer, ['red', ''], false);
    expect(sd1[1].pooled).toBeUndefined();
    expect(nonZero(sd1[1].states)).toBe(true);
  });
});
