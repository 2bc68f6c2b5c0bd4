import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import {
  convertDtype,
  type FloatDtype,
  readSafetensors,
  type TensorData,
  writeSafetensors,
} from '@lora/safetensors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelError } from '../model-error.ts';
import { openLlamaCheckpoint } from './checkpoint.ts';
import { LlamaModel } from './model.ts';
import { byParameter, fixtureFolder, forward, goldenBatch, readGolden, relativeError } from './testing.ts';

const golden = readGolden('llama');
let scratch: string;
let fixtureTensors: Map<string, TensorData>;
let fixtureConfig: Record<string, unknown>;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'llama-checkpoint-'));
  fixtureTensors = (await readSafetensors(join(fixtureFolder('llama'), 'model.safetensors'))).tensors;
  fixtureConfig = JSON.parse(await readFile(join(fixtureFolder('llama'), 'config.json'), 'utf8'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

let folders = 0;
/** A model folder with `config` and the given tensors in one file, or split into shards. */
async function modelFolder(
  tensors: ReadonlyMap<string, TensorData>,
  config: unknown = fixtureConfig,
  shards = 1,
): Promise<string> {
  const folder = join(scratch, `model-${folders++}`);
  await mkdir(folder);
  await writeFile(join(folder, 'config.json'), JSON.stringify(config));
  if (shards === 1) {
    await writeSafetensors(join(folder, 'model.safetensors'), tensors);
    return folder;
  }
  const names = [...tensors.keys()];
  const weightMap: Record<string, string> = {};
  for (let shard = 0; shard < shards; shard++) {
    const file = `model-0000${shard + 1}-of-0000${shards}.safetensors`;
    const part = names.filter((_, i) => i % shards === shard);
    for (const name of part) weightMap[name] = file;
    await writeSafetensors(join(folder, file), new Map(part.map((name) => [name, tensors.get(name)!])));
  }
  await writeFile(
    join(folder, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: {}, weight_map: weightMap }),
  );
  return folder;
}

const converted = (dtype: FloatDtype) =>
  new Map(
    [...fixtureTensors].map(([name, t]) => [
      name,
      { dtype, shape: t.shape, data: convertDtype(t.data as Uint8Array, 'F32', dtype) },
    ]),
  );

const goldenLoss = async (folder: string, computeDtype: 'float32' | 'float16' = 'float32') => {
  const model = new LlamaModel(await openLlamaCheckpoint(folder), {
    targetModules: golden.target_modules,
    rank: golden.rank,
    alpha: golden.alpha,
    initial: byParameter(golden.lora_start),
  });
  return forward(model, goldenBatch(golden), computeDtype);
};

describe('openLlamaCheckpoint', () => {
  it('reads sharded weights through the index: same loss as the single file, weights read from both shards', async () => {
    const { loss, graph } = await goldenLoss(await modelFolder(fixtureTensors, fixtureConfig, 2));
    expect(Math.abs(loss - golden.loss) / golden.loss).toBeLessThan(1e-4);
    const files = new Set(
      [...graph.initializers.values()].flatMap((data) => (data.kind === 'external' ? [data.path] : [])),
    );
    expect([...files].map((path) => basename(path)).sort()).toEqual([
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
    ]);
  });

  it.each([
    ['F16', 2e-3],
    ['BF16', 1e-2],
  ] as const)(
    'keeps %s weights in their dtype on disk and casts in the graph (loss within %d)',
    async (dtype, tolerance) => {
      const { loss, graph } = await goldenLoss(await modelFolder(converted(dtype)));
      const external = [...graph.initializers].filter(([, data]) => data.kind === 'external');
      expect(external.length).toBe(fixtureTensors.size);
      expect(new Set(external.map(([tensor]) => tensor.dtype))).toEqual(
        new Set([dtype === 'F16' ? 'float16' : 'bfloat16']),
      );
      expect(Math.abs(loss - golden.loss) / golden.loss).toBeLessThan(tolerance);
      expect(loss).not.toBe(golden.loss);
    },
  );

  it('computes in float16 when asked (the CUDA path), close to the fp32 reference', async () => {
    const { loss, logits } = await goldenLoss(fixtureFolder('llama'), 'float16');
    expect(Math.abs(loss - golden.loss) / golden.loss).toBeLessThan(5e-3);
    expect(relativeError(logits, golden.logits)).toBeLessThan(1e-2);
  });

  const without = (name: string) => new Map([...fixtureTensors].filter(([key]) => key !== name));
  const withExtra = () =>
    new Map([...fixtureTensors, ['lm_head.weight', fixtureTensors.get('model.embed_tokens.weight')!]]);
  const reshaped = () => {
    const norm = fixtureTensors.get('model.norm.weight')!;
    return new Map([...fixtureTensors, ['model.norm.weight', { ...norm, shape: [2, 16] }]]);
  };
  const asInts = () => {
    const norm = fixtureTensors.get('model.norm.weight')!;
    return new Map([...fixtureTensors, ['model.norm.weight', { ...norm, dtype: 'I32' as const }]]);
  };
  it.each([
    [
      'an unknown architecture',
      () => modelFolder(fixtureTensors, { ...fixtureConfig, architectures: ['GPT2LMHeadModel'] }),
      'E_MODEL_ARCHITECTURE',
      /"GPT2LMHeadModel" is not supported/,
    ],
    [
      'a missing tensor',
      () => modelFolder(without('model.layers.1.mlp.up_proj.weight')),
      'E_MODEL_TENSOR',
      /lack 1 tensor\(s\).*model\.layers\.1\.mlp\.up_proj\.weight/,
    ],
    [
      'a tensor the model would not use',
      () => modelFolder(withExtra()),
      'E_MODEL_TENSOR',
      /not part of a LlamaForCausalLM.*lm_head\.weight/,
    ],
    [
      'a tensor of the wrong shape',
      () => modelFolder(reshaped()),
      'E_MODEL_TENSOR',
      /model\.norm\.weight is \[2, 16\] but config\.json implies \[32\]/,
    ],
    ['integer weights', () => modelFolder(asInts()), 'E_MODEL_TENSOR', /model\.norm\.weight is I32/],
    [
      'a config that is not JSON',
      async () => {
        const folder = await modelFolder(fixtureTensors);
        await writeFile(join(folder, 'config.json'), '{"architectures": [');
        return folder;
      },
      'E_MODEL_CONFIG',
      /config\.json is not valid JSON/,
    ],
    [
      'no config.json',
      async () => {
        const folder = join(scratch, `bare-${folders++}`);
        await mkdir(folder);
        return folder;
      },
      'E_MODEL_FILES',
      /config\.json does not exist/,
    ],
    [
      'no weights',
      async () => {
        const folder = join(scratch, `no-weights-${folders++}`);
        await mkdir(folder);
        await copyFile(join(fixtureFolder('llama'), 'config.json'), join(folder, 'config.json'));
        return folder;
      },
      'E_MODEL_FILES',
      /neither model\.safetensors nor model\.safetensors\.index\.json/,
    ],
  ])('refuses %s with a message naming it', async (_, make, code, message) => {
    const error = await openLlamaCheckpoint(await make()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelError);
    expect(error).toMatchObject({ code, message: expect.stringMatching(message) });
  });
});
