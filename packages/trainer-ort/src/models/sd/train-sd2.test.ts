/**
 * An SD 2.x LoRA trained end to end through `trainSd` on the tiny SD 2.x model (OpenCLIP-named
 * text encoder in the single file, linear projections) with a v-prediction scheduler config beside
 * it: the family and prediction type are read from the files and said in the log, the text
 * encoder's q/k/v train on thirds of the fused in_proj, and the kohya file carries kohya's SD 2.x
 * metadata (`ss_v2`, `ss_base_model_version` sd_v2_v).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type SdConfig, type TrainerEvent } from '@lora/config';
import { readSafetensors } from '@lora/safetensors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sdModelFamily } from './model-files.ts';
import { writeShapeImages, writeTinySdModel } from './tiny.ts';
import { trainSd } from './train.ts';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sd2-train-'));
  const model = join(root, 'models', 'tiny-sd2');
  await writeTinySdModel(model, 'tiny-sd2', 0, 'sd2');
  await mkdir(join(model, 'scheduler'));
  await writeFile(
    join(model, 'scheduler', 'scheduler_config.json'),
    JSON.stringify({ _class_name: 'DDIMScheduler', prediction_type: 'v_prediction' }),
  );
  await writeShapeImages(join(root, 'data'), { count: 4 });
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function run(
  name: string,
  extra = '',
  targets = '[to_q, to_v, proj_in, q_proj, k_proj, v_proj, out_proj]',
) {
  const path = join(root, `${name}.yaml`);
  await writeFile(
    path,
    `task: sd
base_model: models/tiny-sd2/tiny-sd2.safetensors
train_data_dir: data
output_dir: runs/${name}
output_name: shapes
resolution: 64
min_bucket_reso: 64
batch_size: 2
max_steps: 2
learning_rate: 0.003
lora_rank: 4
train_text_encoder: true
target_modules: ${targets}
device: cpu
tensorboard: false
${extra}`,
  );
  const config = (await loadConfig(path)) as SdConfig;
  const events: TrainerEvent[] = [];
  const info: string[] = [];
  const result = await trainSd({
    config,
    outputDir: config.output_dir,
    signal: new AbortController().signal,
    logger: { debug() {}, info: (m) => info.push(m), warn() {} },
    emit: (event) => events.push(event),
  });
  return { result, events, info };
}

describe('trainSd on the tiny SD 2.x model', () => {
  it('the single file names its family (sampling pads prompts by it)', async () => {
    expect(await sdModelFamily(join(root, 'models', 'tiny-sd2', 'tiny-sd2.safetensors'))).toBe('sd2');
    await writeTinySdModel(join(root, 'models', 'tiny-sd1'), 'tiny-sd1');
    expect(await sdModelFamily(join(root, 'models', 'tiny-sd1', 'tiny-sd1.safetensors'))).toBe('sd1');
  });

  it('reads SD 2.x and v-prediction from the files, trains the fused q/k/v, writes kohya SD 2.x metadata', async () => {
    const { result, events, info } = await run('auto');
    expect(info).toContainEqual(
      expect.stringMatching(
        /^sd: Stable Diffusion 2\.x \(text-encoder keys cond_stage_model\.model\.…\); the UNet predicts v_prediction \(.*scheduler_config\.json\)$/,
      ),
    );
    const steps = events.filter((e) => e.type === 'step');
    expect(steps).toHaveLength(2);
    expect(events.filter((e) => e.type === 'warning').map((e) => e.code)).not.toContain('partial_attention');
    for (const step of steps) expect(Number.isFinite(step.loss)).toBe(true);
    const { tensors, metadata } = await readSafetensors(result.adapter);
    expect(metadata).toMatchObject({ ss_v2: 'True', ss_base_model_version: 'sd_v2_v' });
    // kohya's transformers names for OpenCLIP's layers; q, k, v as 32-row thirds of in_proj.
    for (const p of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      const name = `lora_te_text_model_encoder_layers_1_self_attn_${p}`;
      expect(tensors.get(`${name}.lora_down.weight`)?.shape).toEqual([4, 32]);
      expect(tensors.get(`${name}.lora_up.weight`)?.shape).toEqual([32, 4]);
    }
    // Linear proj_in: a [rank, channels] down weight, not a 1×1 conv's.
    expect(tensors.get('lora_unet_mid_block_attentions_0_proj_in.lora_down.weight')?.shape).toEqual([4, 64]);
  }, 120_000);

  it('keeps an explicit prediction_type and warns that the scheduler says otherwise', async () => {
    const { result, events } = await run('explicit', 'prediction_type: epsilon\n');
    expect(events).toContainEqual(expect.objectContaining({ type: 'warning', code: 'prediction_mismatch' }));
    const { metadata } = await readSafetensors(result.adapter);
    expect(metadata).toMatchObject({ ss_v2: 'True', ss_base_model_version: 'sd_v2' });
  }, 120_000);
});
