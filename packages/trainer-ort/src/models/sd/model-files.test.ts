import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ClipTokenizer, singleFileConfig } from './model-files.ts';
import { CLIP_TOKENIZER_CONFIG, clipTokenizerJson, diffusersConfigJson, tinySdConfig } from './tiny.ts';

let root: string;
let tokenizer: ClipTokenizer;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sd-files-'));
  await mkdir(join(root, 'tokenizer'));
  await writeFile(
    join(root, 'tokenizer', 'tokenizer.json'),
    JSON.stringify(clipTokenizerJson(['red', 'circle'])),
  );
  await writeFile(join(root, 'tokenizer', 'tokenizer_config.json'), JSON.stringify(CLIP_TOKENIZER_CONFIG));
  await writeFile(join(root, 'model.safetensors'), '');
  tokenizer = await ClipTokenizer.forModel(join(root, 'model.safetensors'), 77);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const row = (ids: BigInt64Array, r: number) => [...ids.subarray(r * 77, (r + 1) * 77)].map(Number);

describe('ClipTokenizer', () => {
  it('reads tokenizer/ beside a single-file checkpoint, with CLIP special tokens', () => {
    // 512 byte tokens, then the merges (2 for "red", 5 for "circle"), then BOS and EOS.
    expect([tokenizer.bosId, tokenizer.eosId, tokenizer.padId]).toEqual([519, 520, 520]);
  });

  it('frames each caption as BOS tokens EOS, padded to 77 with the pad token', () => {
    const ids = tokenizer.encode(['Red circle, red', '']);
    const first = row(ids, 0);
    const red = 513; // "red</w>": merges "r e" (512) then "re d</w>" (513)
    expect(first.slice(0, 6)).toEqual([519, red, 518, 256 + 0x2c, red, 520]);
    expect(first.slice(6)).toEqual(Array(71).fill(520));
    expect(row(ids, 1)).toEqual([519, ...Array(76).fill(520)]);
  });

  it('truncates to 75 caption tokens, keeping the EOS in the last position', () => {
    const ids = row(tokenizer.encode([Array(100).fill('red').join(' ')]), 0);
    expect(ids).toHaveLength(77);
    expect(ids[0]).toBe(519);
    expect(ids.slice(1, 76).every((id) => id === 513)).toBe(true);
    expect(ids[76]).toBe(520);
  });

  it.each([
    ['a single file with no tokenizer/', 'lone.safetensors', /A single-file checkpoint carries no tokenizer/],
    ['a diffusers tokenizer with only vocab.json', 'slow', /vocab\.json \/ merges\.txt.*one-file form/],
  ])('says where to put tokenizer.json for %s', async (_, name, message) => {
    // A home of its own: the real one may hold a Hugging Face cache with CLIP in it.
    vi.stubEnv('HOME', join(root, 'empty-home'));
    for (const key of ['HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'HF_HOME', 'XDG_CACHE_HOME'])
      vi.stubEnv(key, '');
    const folder = join(root, `case-${name}`);
    await mkdir(join(folder, 'tokenizer'), { recursive: true });
    if (name === 'slow') await writeFile(join(folder, 'tokenizer', 'vocab.json'), '{}');
    const base = name === 'slow' ? folder : join(folder, name);
    if (name !== 'slow') await writeFile(base, '');
    await expect(ClipTokenizer.forModel(base, 77)).rejects.toThrow(message);
    await expect(ClipTokenizer.forModel(base, 77)).rejects.toThrow(
      `looked in ${join(folder, 'tokenizer')} (beside the model)`,
    );
    await expect(ClipTokenizer.forModel(base, 77)).rejects.toThrow(`into ${join(folder, 'tokenizer')}/`);
    vi.unstubAllEnvs();
  });
});

describe('singleFileConfig', () => {
  it('reads the sizes from unet/, text_encoder/ and vae/config.json beside the checkpoint', async () => {
    const folder = join(root, 'sized');
    const config = tinySdConfig(600);
    for (const [component, json] of Object.entries(diffusersConfigJson(config))) {
      await mkdir(join(folder, component), { recursive: true });
      await writeFile(join(folder, component, 'config.json'), JSON.stringify(json));
    }
    await writeFile(join(folder, 'model.safetensors'), '');
    expect(await singleFileConfig(join(folder, 'model.safetensors'))).toEqual(config);
  });

  it('gives no sizes (SD 1.5) when none are beside it, and refuses an incomplete set', async () => {
    expect(await singleFileConfig(join(root, 'model.safetensors'))).toBeUndefined();
    const folder = join(root, 'partial');
    await mkdir(join(folder, 'unet'), { recursive: true });
    await writeFile(join(folder, 'unet', 'config.json'), '{}');
    await writeFile(join(folder, 'model.safetensors'), '');
    await expect(singleFileConfig(join(folder, 'model.safetensors'))).rejects.toThrow(
      /text_encoder\/config\.json and .*vae\/config\.json missing/,
    );
  });
});
