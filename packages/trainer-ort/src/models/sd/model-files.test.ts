import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CLIP_TOKENIZER_CONFIG } from './clip-tokenizer-json.ts';
import { ClipTokenizer, singleFileConfig } from './model-files.ts';
import { clipTokenizerJson, diffusersConfigJson, tinySdConfig } from './tiny.ts';

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

  it("reads the slow form (vocab.json + merges.txt, as ComfyUI's sd1_tokenizer ships it) into the same tokenizer", async () => {
    const json = clipTokenizerJson(['red', 'circle']) as { model: { vocab: object; merges: string[] } };
    const slow = join(root, 'slow-form');
    await mkdir(slow, { recursive: true });
    await writeFile(join(slow, 'vocab.json'), JSON.stringify(json.model.vocab));
    await writeFile(join(slow, 'merges.txt'), `#version: 0.2\n${json.model.merges.join('\n')}\n`);
    const fromSlow = await ClipTokenizer.forModel(join(root, 'model.safetensors'), 77, slow);
    const captions = ['Red circle, red', 'a circle on red', ''];
    expect([...fromSlow.encode(captions)]).toEqual([...tokenizer.encode(captions)]);
    expect(fromSlow.source).toBe(join(slow, 'vocab.json'));
    // Half of the slow form is no tokenizer: the message names both files.
    await rm(join(slow, 'merges.txt'));
    await expect(ClipTokenizer.forModel(join(root, 'model.safetensors'), 77, slow)).rejects.toThrow(
      /vocab\.json and merges\.txt cannot be read/,
    );
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
  ])('says where to put tokenizer.json for %s', async (_, name, message) => {
    // A home of its own: the real one may hold a Hugging Face cache with CLIP in it.
    vi.stubEnv('HOME', join(root, 'empty-home'));
    for (const key of ['HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'HF_HOME', 'XDG_CACHE_HOME'])
      vi.stubEnv(key, '');
    const folder = join(root, `case-${name}`);
    await mkdir(join(folder, 'tokenizer'), { recursive: true });
    const base = join(folder, name);
    await writeFile(base, '');
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
