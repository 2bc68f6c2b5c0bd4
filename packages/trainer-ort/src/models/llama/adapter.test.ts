import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Graph } from '@lora/engine';
import { openSafetensors, readSafetensors, toFloat32 } from '@lora/safetensors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, readLlamaAdapter, writeLlamaAdapter } from './adapter.ts';
import { type LlamaCheckpoint, openLlamaCheckpoint } from './checkpoint.ts';
import { LlamaModel } from './model.ts';
import { byParameter, fixtureFolder, forward, goldenBatch, readGolden } from './testing.ts';

const golden = readGolden('qwen2');
const lora = { targetModules: golden.target_modules, rank: golden.rank, alpha: golden.alpha, dropout: 0.05 };
let checkpoint: LlamaCheckpoint;
let scratch: string;
let written: string;

beforeAll(async () => {
  checkpoint = await openLlamaCheckpoint(fixtureFolder('qwen2'));
  scratch = await mkdtemp(join(tmpdir(), 'llama-adapter-'));
  written = join(scratch, 'written');
  await mkdir(written);
  await writeLlamaAdapter(written, checkpoint.spec, lora, byParameter(golden.lora_start), {
    baseModelNameOrPath: 'Qwen/Qwen2-0.5B',
  });
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe('writeLlamaAdapter', () => {
  it('writes PEFT keys (base_model.model.<module>.lora_A/B.weight), F32 values and {"format": "pt"}', async () => {
    const { tensors, metadata } = await readSafetensors(join(written, ADAPTER_WEIGHTS));
    expect(metadata).toEqual({ format: 'pt' });
    expect(tensors.size).toBe(2 * 7 * 2);
    const down = tensors.get('base_model.model.model.layers.1.mlp.gate_proj.lora_A.weight')!;
    expect(down).toMatchObject({ dtype: 'F32', shape: [4, 32] });
    expect(Array.from(toFloat32(down.data as Uint8Array, 'F32'))).toEqual(
      golden.lora_start['model.layers.1.mlp.gate_proj']!.A.map(Math.fround),
    );
    expect(tensors.get('base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight')?.shape).toEqual([
      16, 4,
    ]);
  });

  it('writes a minimal adapter_config.json that peft loads as it is', async () => {
    expect(JSON.parse(await readFile(join(written, ADAPTER_CONFIG), 'utf8'))).toEqual({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      base_model_name_or_path: 'Qwen/Qwen2-0.5B',
      r: 4,
      lora_alpha: 8,
      lora_dropout: 0.05,
      bias: 'none',
      target_modules: ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj'],
    });
  });

  it('refuses to write an adapter with a missing or mis-sized value', async () => {
    const values = byParameter(golden.lora_start);
    values.delete('model.layers.1.self_attn.v_proj.lora_B.weight');
    await expect(
      writeLlamaAdapter(join(scratch, 'incomplete'), checkpoint.spec, lora, values, {
        baseModelNameOrPath: 'x',
      }),
    ).rejects.toMatchObject({
      code: 'E_MODEL_ADAPTER',
      message: expect.stringMatching(
        /model\.layers\.1\.self_attn\.v_proj\.lora_B\.weight has no trained value/,
      ),
    });
  });
});

describe('readLlamaAdapter (init_adapter)', () => {
  it('reads back what was written, from the folder or the weights file, and training starts from it', async () => {
    const fromFolder = await readLlamaAdapter(written, checkpoint.spec, lora);
    expect(fromFolder).toEqual(byParameter(golden.lora_start));
    expect(await readLlamaAdapter(join(written, ADAPTER_WEIGHTS), checkpoint.spec, lora)).toEqual(fromFolder);
    const model = new LlamaModel(checkpoint, { ...lora, dropout: 0, initial: fromFolder });
    const { loss } = await forward(model, goldenBatch(golden));
    expect(Math.abs(loss - golden.loss) / golden.loss).toBeLessThan(1e-4);
  });

  /** A copy of the written adapter with its config changed. */
  async function variant(name: string, config: (c: Record<string, unknown>) => unknown): Promise<string> {
    const folder = join(scratch, name);
    await mkdir(folder, { recursive: true });
    await copyFile(join(written, ADAPTER_WEIGHTS), join(folder, ADAPTER_WEIGHTS));
    const original = JSON.parse(await readFile(join(written, ADAPTER_CONFIG), 'utf8'));
    await writeFile(join(folder, ADAPTER_CONFIG), JSON.stringify(config(original)));
    return folder;
  }

  it.each([
    [
      'a different rank',
      () => written,
      { ...lora, rank: 8 },
      /: model\.layers\.0\.[a-z_.]+ has rank 4; set lora_rank: 4/,
    ],
    [
      'a different alpha',
      () => written,
      { ...lora, alpha: 16 },
      /: model\.layers\.0\.[a-z_.]+ has alpha 8; set lora_alpha: 8/,
    ],
    [
      'modules target_modules leaves out',
      () => written,
      { ...lora, targetModules: ['q_proj', 'v_proj'] as const },
      /trains down_proj, gate_proj, k_proj, o_proj, up_proj \(e\.g\. model\.layers\.0\.mlp\.down_proj\), which target_modules does not select/,
    ],
    [
      'a missing adapter_config.json',
      async () => {
        const folder = join(scratch, 'no-config');
        await mkdir(folder, { recursive: true });
        await copyFile(join(written, ADAPTER_WEIGHTS), join(folder, ADAPTER_WEIGHTS));
        return folder;
      },
      lora,
      /adapter_config\.json does not exist/,
    ],
    [
      'a config that is not LoRA',
      () => variant('ia3', (c) => ({ ...c, peft_type: 'IA3' })),
      lora,
      /is not a LoRA adapter config/,
    ],
    [
      'a path that does not exist',
      () => join(scratch, 'nowhere'),
      lora,
      /init adapter .*nowhere does not exist/,
    ],
  ])('refuses an adapter with %s', async (_, path, options, message) => {
    await expect(readLlamaAdapter(await path(), checkpoint.spec, options)).rejects.toMatchObject({
      code: 'E_MODEL_ADAPTER',
      message: expect.stringMatching(message),
    });
  });

  it('refuses an adapter that lacks modules target_modules selects, and one trained on another model', async () => {
    const qv = join(scratch, 'qv');
    await mkdir(qv);
    const qvLora = { ...lora, targetModules: ['q_proj', 'v_proj'] as const };
    const start = new Map([...byParameter(golden.lora_start)].filter(([name]) => /(q|v)_proj/.test(name)));
    await writeLlamaAdapter(qv, checkpoint.spec, qvLora, start, { baseModelNameOrPath: 'x' });
    await expect(readLlamaAdapter(qv, checkpoint.spec, lora)).rejects.toMatchObject({
      message: expect.stringMatching(
        /has no weights for down_proj, gate_proj, k_proj, o_proj, up_proj \(e\.g\. model\.layers\.0\.self_attn\.k_proj\); set target_modules to the adapter's \(q_proj, v_proj\)/,
      ),
    });
    const mistral = await openLlamaCheckpoint(fixtureFolder('mistral'));
    await expect(readLlamaAdapter(qv, mistral.spec, qvLora)).rejects.toMatchObject({
      message: expect.stringMatching(
        /q_proj up is \[32, 4\], this model needs \[64, 4\]; was it trained on another base model\?/,
      ),
    });
  });
});

describe('DoRA and rsLoRA adapters', () => {
  const dora = { ...lora, network: 'dora' as const, rslora: true };

  it("write PEFT's lora_magnitude_vector [out] with use_dora and use_rslora, the base norms at the start", async () => {
    const model = new LlamaModel(checkpoint, dora);
    const { parameters } = forwardParameters(model);
    const values = new Map(parameters.map((p) => [p.name, p.initial]));
    const folder = join(scratch, 'dora');
    await mkdir(folder);
    await writeLlamaAdapter(folder, checkpoint.spec, dora, values, {
      baseModelNameOrPath: 'Qwen/Qwen2-0.5B',
    });
    const config = JSON.parse(await readFile(join(folder, ADAPTER_CONFIG), 'utf8'));
    expect(config).toMatchObject({ r: 4, lora_alpha: 8, use_dora: true, use_rslora: true });
    const { tensors } = await readSafetensors(join(folder, ADAPTER_WEIGHTS));
    expect(tensors.size).toBe(3 * 7 * 2);
    const magnitude = tensors.get('base_model.model.model.layers.0.self_attn.k_proj.lora_magnitude_vector')!;
    expect(magnitude.shape).toEqual([16]);
    // Each starts at its row's norm in the checkpoint (k_proj is [16, 32]).
    const weight = await checkpointValues('model.layers.0.self_attn.k_proj.weight');
    expect(weight).toHaveLength(16 * 32);
    const norms = Array.from({ length: 16 }, (_, o) => Math.hypot(...weight.slice(o * 32, o * 32 + 32)));
    Array.from(toFloat32(magnitude.data as Uint8Array, 'F32')).forEach((v, i) => {
      expect(v).toBeCloseTo(norms[i]!, 5);
    });
    // Read back as start values, and refused as plain LoRA.
    const read = await readLlamaAdapter(folder, checkpoint.spec, dora);
    for (const [name, value] of values) expect(read.get(name)).toEqual(value);
    await expect(readLlamaAdapter(folder, checkpoint.spec, { ...dora, network: 'lora' })).rejects.toThrow(
      /is a dora module; set network: dora/,
    );
  });
});

function forwardParameters(model: LlamaModel) {
  return model.build(new Graph('parameters'), { computeDtype: 'float32' });
}

async function checkpointValues(name: string): Promise<Float32Array> {
  const info = checkpoint.tensors.get(name)!;
  const file = await openSafetensors(info.path);
  try {
    return toFloat32(await file.read(name), info.dtype);
  } finally {
    await file.close();
  }
}
