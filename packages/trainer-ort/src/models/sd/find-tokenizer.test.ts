import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { hfHubCaches } from './find-tokenizer.ts';
import { ClipTokenizer } from './model-files.ts';
import { clipTokenizerJson } from './tiny.ts';

// The places a user already has CLIP's tokenizer, laid out as huggingface_hub and ComfyUI lay
// them out, under a home folder of the test's own (the real one may hold a cache).

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'find-tokenizer-'));
  for (const name of ['HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'HF_HOME']) vi.stubEnv(name, '');
  vi.stubEnv('XDG_CACHE_HOME', '');
  vi.stubEnv('HOME', join(root, 'home'));
});
afterEach(async () => {
  vi.unstubAllEnvs();
  await rm(root, { recursive: true, force: true });
});

async function writeTokenizer(folder: string): Promise<void> {
  await mkdir(folder, { recursive: true });
  await writeFile(join(folder, 'tokenizer.json'), JSON.stringify(clipTokenizerJson(['red'])));
}

async function checkpointIn(folder: string): Promise<string> {
  await mkdir(folder, { recursive: true });
  await writeFile(join(folder, 'model.safetensors'), '');
  return join(folder, 'model.safetensors');
}

/** A snapshot of `repo` in a hub cache, with refs/main naming it. */
async function cachedRepo(cache: string, repo: string, sub = ''): Promise<string> {
  const base = join(cache, `models--${repo.replace('/', '--')}`);
  await mkdir(join(base, 'refs'), { recursive: true });
  await writeFile(join(base, 'refs', 'main'), 'c0ffee\n');
  await writeTokenizer(join(base, 'snapshots', 'c0ffee', sub));
  // An older snapshot sorts first by name; refs/main wins.
  await writeTokenizer(join(base, 'snapshots', '0ld', sub));
  return join(base, 'snapshots', 'c0ffee', sub, 'tokenizer.json');
}

describe('hfHubCaches', () => {
  it('follows huggingface_hub: HF_HUB_CACHE, HF_HOME/hub, then XDG_CACHE_HOME or ~/.cache', () => {
    expect(hfHubCaches({ HF_HUB_CACHE: '/a', HF_HOME: '/h', XDG_CACHE_HOME: '/x' }, '/home/u')).toEqual([
      '/a',
      '/h/hub',
      '/x/huggingface/hub',
    ]);
    expect(hfHubCaches({}, '/home/u')).toEqual(['/home/u/.cache/huggingface/hub']);
  });
});

describe('ClipTokenizer.forModel finds CLIP where the user has it', () => {
  it('in the default Hugging Face cache (openai/clip-vit-large-patch14, the main revision)', async () => {
    const file = await cachedRepo(
      join(root, 'home', '.cache', 'huggingface', 'hub'),
      'openai/clip-vit-large-patch14',
    );
    const tokenizer = await ClipTokenizer.forModel(await checkpointIn(join(root, 'models')), 77);
    expect(tokenizer.source).toBe(file);
    expect(tokenizer.foundIn).toBe('Hugging Face cache, openai/clip-vit-large-patch14');
  });

  it("in HF_HOME's cache, in an SD 1.5 repository's tokenizer/ folder", async () => {
    vi.stubEnv('HF_HOME', join(root, 'hf'));
    const file = await cachedRepo(
      join(root, 'hf', 'hub'),
      'stable-diffusion-v1-5/stable-diffusion-v1-5',
      'tokenizer',
    );
    const tokenizer = await ClipTokenizer.forModel(await checkpointIn(join(root, 'models')), 77);
    expect(tokenizer.source).toBe(file);
  });

  it('in the ComfyUI install the checkpoint is in', async () => {
    await writeTokenizer(join(root, 'ComfyUI', 'comfy', 'sd1_tokenizer'));
    const checkpoint = await checkpointIn(join(root, 'ComfyUI', 'models', 'checkpoints'));
    const tokenizer = await ClipTokenizer.forModel(checkpoint, 77);
    expect(tokenizer.foundIn).toBe('ComfyUI');
  });

  it('beside the model first, before any cache', async () => {
    await cachedRepo(join(root, 'home', '.cache', 'huggingface', 'hub'), 'openai/clip-vit-large-patch14');
    await writeTokenizer(join(root, 'models', 'tokenizer'));
    const tokenizer = await ClipTokenizer.forModel(await checkpointIn(join(root, 'models')), 77);
    expect(tokenizer.foundIn).toBe('beside the model');
  });

  it("from the config's tokenizer folder only, when it is set", async () => {
    await cachedRepo(join(root, 'home', '.cache', 'huggingface', 'hub'), 'openai/clip-vit-large-patch14');
    const checkpoint = await checkpointIn(join(root, 'models'));
    await writeTokenizer(join(root, 'clip'));
    const tokenizer = await ClipTokenizer.forModel(checkpoint, 77, join(root, 'clip'));
    expect([tokenizer.source, tokenizer.foundIn]).toEqual([
      join(root, 'clip', 'tokenizer.json'),
      "the config's tokenizer",
    ]);
    // A folder without it fails, although the cache has one: the key says where to read.
    await expect(ClipTokenizer.forModel(checkpoint, 77, join(root, 'models'))).rejects.toThrow(
      `looked in ${join(root, 'models')} (the config's tokenizer).`,
    );
  });

  it("finds ComfyUI's slow form (vocab.json + merges.txt) in the install the checkpoint is in", async () => {
    const folder = join(root, 'ComfyUI', 'comfy', 'sd1_tokenizer');
    await mkdir(folder, { recursive: true });
    const json = clipTokenizerJson(['red']) as { model: { vocab: object; merges: string[] } };
    await writeFile(join(folder, 'vocab.json'), JSON.stringify(json.model.vocab));
    await writeFile(join(folder, 'merges.txt'), `#version: 0.2\n${json.model.merges.join('\n')}\n`);
    const tokenizer = await ClipTokenizer.forModel(
      await checkpointIn(join(root, 'ComfyUI', 'models', 'checkpoints')),
      77,
    );
    expect(tokenizer.foundIn).toBe('ComfyUI');
    expect(tokenizer.source).toBe(join(folder, 'vocab.json'));
  });

  it('lists every place it looked when none has it', async () => {
    // A ComfyUI install whose tokenizer folder is empty.
    await mkdir(join(root, 'ComfyUI', 'comfy', 'sd1_tokenizer'), { recursive: true });
    const checkpoint = await checkpointIn(join(root, 'ComfyUI', 'models', 'checkpoints'));
    const failure = ClipTokenizer.forModel(checkpoint, 77);
    await expect(failure).rejects.toMatchObject({ code: 'E_MODEL_FILES' });
    const message = ((await failure.catch((error) => error)) as Error).message;
    expect(message).toContain(
      `looked in ${join(root, 'ComfyUI', 'models', 'checkpoints', 'tokenizer')} (beside the model)`,
    );
    expect(message).toContain(`in ${join(root, 'ComfyUI', 'comfy', 'sd1_tokenizer')} (ComfyUI)`);
    expect(message).toContain(
      `in ${join(root, 'home', '.cache', 'huggingface', 'hub')} (Hugging Face cache (no CLIP or SD 1.x repository in it))`,
    );
    expect(message).toMatch(/openai\/clip-vit-large-patch14 .* into .*checkpoints\/tokenizer\/$/);
  });
});
