import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unetKeyToDiffusers } from '@lora/adapters';
import { EngineError, Graph, hostTensor, writeModel } from '@lora/engine';
import {
  convertDtype,
  openSafetensors,
  readSafetensors,
  type TensorData,
  type TensorInfo,
  writeSafetensors,
} from '@lora/safetensors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Session } from '../../session.ts';
import { relativeError } from '../../testing.ts';
import { ModelError } from '../model-error.ts';
import { openSdCheckpoint, SdCheckpoint, type WeightFile } from './checkpoint.ts';
import { buildClipTextEncoder } from './clip.ts';
import { parseClipTextConfig, parseUnetConfig, parseVaeConfig, SD15, type SdModelConfig } from './config.ts';
import { LDM_PREFIXES, normalizeClipKey, vaeKeyToDiffusers } from './keys.ts';
import { buildSdLoss } from './loss.ts';
import { buildUnet } from './unet.ts';
import { buildVaeDecoder, buildVaeEncoder } from './vae.ts';

const FIXTURES = join(import.meta.dirname, '__fixtures__');
const golden = JSON.parse(await readFile(join(FIXTURES, 'golden.json'), 'utf8')) as {
  unet_config: unknown;
  text_encoder_config: unknown;
  vae_config: unknown;
  input_ids: number[][];
  timesteps: number[];
  latents: number[];
  image: number[];
  text_states: number[];
  unet_output: number[];
  vae_latents_mean: number[];
  vae_decoded: number[];
};
const tiny: SdModelConfig = {
  unet: parseUnetConfig(golden.unet_config),
  textEncoder: parseClipTextConfig(golden.text_encoder_config),
  vae: parseVaeConfig(golden.vae_config),
};

let folder: string;
beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'sd-checkpoint-'));
});
afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

/** The fixture rewritten as a diffusers folder, in the variants real folders come in. */
async function diffusersFolder(root: string): Promise<void> {
  const { tensors } = await readSafetensors(join(FIXTURES, 'model.safetensors'));
  const parts = { unet: new Map<string, TensorData>(), text_encoder: new Map(), vae: new Map() };
  const OLD_NAMES: Record<string, string> = {
    to_q: 'query',
    to_k: 'key',
    to_v: 'value',
    'to_out.0': 'proj_attn',
  };
  for (const [key, tensor] of tensors) {
    if (key.startsWith(LDM_PREFIXES.unet)) {
      parts.unet.set(unetKeyToDiffusers(key.slice(LDM_PREFIXES.unet.length), 2)!, tensor);
    } else if (key.startsWith(LDM_PREFIXES.text_encoder)) {
      // transformers ≥ 5.6 drops the `text_model.` level.
      parts.text_encoder.set(
        key.slice(LDM_PREFIXES.text_encoder.length).replace(/^text_model\./, ''),
        tensor,
      );
    } else if (key.startsWith(LDM_PREFIXES.vae)) {
      let name = vaeKeyToDiffusers(key.slice(LDM_PREFIXES.vae.length), tiny.vae.blockOutChannels.length);
      if (!name) continue;
      // diffusers < 0.14 attention names, linear [C, C] weights, and F16 storage.
      const match =
        /^((?:en|de)coder\.mid_block\.attentions\.0\.)(to_q|to_k|to_v|to_out\.0)\.(weight|bias)$/.exec(name);
      const shape = match && match[3] === 'weight' ? tensor.shape.slice(0, 2) : tensor.shape;
      if (match) name = `${match[1]}${OLD_NAMES[match[2]!]}.${match[3]}`;
      const data = convertDtype(tensor.data as Uint8Array, 'F32', 'F16');
      parts.vae.set(name, { dtype: 'F16', shape, data });
    }
  }
  const configs = {
    unet: golden.unet_config,
    text_encoder: golden.text_encoder_config,
    vae: golden.vae_config,
  };
  const files = {
    unet: 'diffusion_pytorch_model.safetensors',
    text_encoder: 'model.safetensors',
    vae: 'diffusion_pytorch_model.fp16.safetensors',
  };
  for (const part of ['unet', 'text_encoder', 'vae'] as const) {
    await mkdir(join(root, part), { recursive: true });
    await writeSafetensors(join(root, part, files[part]), parts[part]);
    await writeFile(join(root, part, 'config.json'), JSON.stringify(configs[part]));
  }
}

describe('a diffusers folder', () => {
  it('loads with its config.json files (flattened CLIP keys, F16 VAE with old attention names) and matches the golden outputs', async () => {
    const root = join(folder, 'diffusers');
    await diffusersFolder(root);
    const { checkpoint, close } = await openSdCheckpoint(root);
    const { unet, textEncoder, vae } = checkpoint.config;
    const graph = new Graph('all');
    const ids = graph.input('input_ids', 'int64', [2, 8]);
    const sample = graph.input('sample', 'float32', [2, 4, 8, 8]);
    const timesteps = graph.input('timesteps', 'int64', [2]);
    const image = graph.input('image', 'float32', [2, 3, 16, 16]);
    const states = buildClipTextEncoder({ checkpoint, component: 'text_encoder' }, textEncoder, ids);
    graph.output(states, 'states');
    graph.output(buildUnet({ checkpoint, component: 'unet' }, unet, sample, timesteps, states), 'eps');
    graph.output(buildVaeEncoder({ checkpoint, component: 'vae' }, vae, image), 'latents');
    graph.output(buildVaeDecoder({ checkpoint, component: 'vae' }, vae, sample), 'decoded');
    await close();
    expect(checkpoint.unusedKeys()).toEqual([]);

    // The weights live in sub-folders of the model's folder, where onnxruntime may read them.
    const session = await Session.create(await writeModel(graph, root), { device: 'cpu', threads: 1 });
    const out = await session.run({
      input_ids: hostTensor('int64', [2, 8], BigInt64Array.from(golden.input_ids.flat().map(BigInt))),
      sample: hostTensor('float32', [2, 4, 8, 8], Float32Array.from(golden.latents)),
      timesteps: hostTensor('int64', [2], BigInt64Array.from(golden.timesteps.map(BigInt))),
      image: hostTensor('float32', [2, 3, 16, 16], Float32Array.from(golden.image)),
    });
    await session.dispose();
    expect(relativeError(out['states']!.data as Float32Array, golden.text_states)).toBeLessThan(1e-4);
    expect(relativeError(out['eps']!.data as Float32Array, golden.unet_output)).toBeLessThan(1e-4);
    // F16 weights: the golden outputs are for the F32 values.
    expect(relativeError(out['latents']!.data as Float32Array, golden.vae_latents_mean)).toBeLessThan(5e-3);
    expect(relativeError(out['decoded']!.data as Float32Array, golden.vae_decoded)).toBeLessThan(5e-3);
  }, 30_000);

  it('without a VAE weight file says which file is missing', async () => {
    const root = join(folder, 'no-vae');
    await diffusersFolder(root);
    await rm(join(root, 'vae', 'diffusion_pytorch_model.fp16.safetensors'));
    await expect(openSdCheckpoint(root)).rejects.toThrow(/no-vae\/vae has none of diffusion_pytorch_model/);
  });

  it('names the file that is not safetensors (a text file as base_model), keeping the code', async () => {
    const path = join(folder, 'notes.safetensors');
    await writeFile(path, 'hello\n');
    await expect(openSdCheckpoint(path)).rejects.toMatchObject({
      code: 'E_HEADER_TOO_SMALL',
      message: expect.stringMatching(/notes\.safetensors: file is 6 bytes; .*is it a \.safetensors file\?/),
    });
  });
});

describe('checkpoint errors name the file, the key and what to do', () => {
  let fixture: WeightFile;
  beforeAll(async () => {
    const file = await openSafetensors(join(FIXTURES, 'model.safetensors'));
    await file.close();
    fixture = file;
  });
  const withTensors = (edit: (tensors: Map<string, TensorInfo>) => void): WeightFile => {
    const tensors = new Map(fixture.tensors);
    edit(tensors);
    return { path: fixture.path, dataStart: fixture.dataStart, tensors };
  };
  const buildUnetFrom = (file: WeightFile, config: SdModelConfig = SD15) => {
    const checkpoint = SdCheckpoint.fromSingleFile(file, config);
    const graph = new Graph('unet');
    buildUnet(
      { checkpoint, component: 'unet' },
      config.unet,
      graph.input('x', 'float32', [1, 4, 8, 8]),
      graph.input('t', 'int64', [1]),
      graph.input('c', 'float32', [1, 77, config.unet.crossAttentionDim]),
    );
    return checkpoint;
  };

  it.each<[string, () => unknown, RegExp]>([
    [
      'a tiny checkpoint read with the SD 1.5 config',
      () => buildUnetFrom(fixture),
      /'model\.diffusion_model\.time_embed\.0\.weight' is \[32, 8\], but the unet config needs \[1280, 320\]; pass the model config/,
    ],
    [
      'a missing tensor',
      () =>
        buildUnetFrom(
          withTensors((t) => t.delete('model.diffusion_model.out.2.bias')),
          tiny,
        ),
      /the unet needs 'conv_out\.bias' \(diffusers name\), which is not in the checkpoint/,
    ],
    [
      'an integer weight',
      () =>
        buildUnetFrom(
          withTensors((t) => {
            const info = t.get('model.diffusion_model.time_embed.0.bias')!;
            t.set('model.diffusion_model.time_embed.0.bias', { ...info, dtype: 'I32' });
          }),
          tiny,
        ),
      /'model\.diffusion_model\.time_embed\.0\.bias' is I32; model weights must be F32, F16 or BF16/,
    ],
  ])('%s', (_, build, message) => {
    let error: unknown;
    try {
      build();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ModelError);
    expect((error as ModelError).code).toBe('E_MODEL_TENSOR');
    expect((error as Error).message).toMatch(message);
  });

  it('reports tensors under a model prefix that fit no naming rule as unused', () => {
    const file = withTensors((t) => {
      const info = t.get('model.diffusion_model.out.2.bias')!;
      t.set('model.diffusion_model.input_blocks.1.0.in_layers.1.weight', info);
      t.set('cond_stage_model.transformer.text_model.text_projection.weight', info);
    });
    const checkpoint = SdCheckpoint.fromSingleFile(file, SD15);
    expect(checkpoint.unusedKeys(['unet'])).toContain(
      'model.diffusion_model.input_blocks.1.0.in_layers.1.weight',
    );
    expect(checkpoint.unusedKeys(['text_encoder'])).toContain(
      'cond_stage_model.transformer.text_model.text_projection.weight',
    );
    expect(checkpoint.has('vae', 'quant_conv.weight')).toBe(true);
    // The decoder is there for sampling, and never reported unused.
    expect(checkpoint.has('vae', 'post_quant_conv.weight')).toBe(true);
    expect(checkpoint.unusedKeys(['vae']).filter((key) => key.includes('decoder'))).toEqual([]);
    expect(normalizeClipKey('embeddings.position_ids')).toBeUndefined();
  });

  it('refuses LoRA on the text encoder when the graph takes cached text states', () => {
    const checkpoint = SdCheckpoint.fromSingleFile(fixture, SD15);
    expect(() =>
      buildSdLoss(new Graph('sd_loss'), checkpoint, {
        latentSize: [8, 8],
        text: 'states',
        prediction: 'epsilon',
        lora: { rank: 2, alpha: 2, unet: ['to_q'], textEncoder: ['q_proj'] },
      }),
    ).toThrow(/build it with text: "ids"/);
  });

  it.each([0, 13, 1.5])('refuses clipSkip %s', (clipSkip) => {
    const checkpoint = SdCheckpoint.fromSingleFile(fixture, SD15);
    const graph = new Graph('clip');
    let error: unknown;
    try {
      buildClipTextEncoder(
        { checkpoint, component: 'text_encoder' },
        SD15.textEncoder,
        graph.input('ids', 'int64', [1, 77]),
        {
          clipSkip,
        },
      );
    } catch (e) {
      error = e;
    }
    expect(EngineError.isInstance(error)).toBe(true);
    expect((error as Error).message).toMatch(/clipSkip must be an integer from 1 to 12/);
  });
});
