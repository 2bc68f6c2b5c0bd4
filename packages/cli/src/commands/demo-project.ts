import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { SCHEMA_COMMENT } from '@lora/config';

/** The demo's config, relative to the project folder: `lora init --demo` names it after the project. */
export const demoConfigPath = (project: string): string => `configs/${project}_demo_v1.yaml`;

export const DEMO_DATA_PATH = 'data/train.jsonl';

/**
 * The demo config. Its learning rate and LoRA size are set for a random base model, which a few
 * hundred steps move far; they stay inside the ranges `configWarnings` accepts, so the run is quiet.
 */
export function demoConfig(modelName: string): string {
  return `${SCHEMA_COMMENT}
# The lora demo: a LoRA on a tiny LLaMA-architecture model with RANDOM weights, written by
# \`lora init --demo\` into models/${modelName}, trained on toy instructions in data/train.jsonl.
# It shows the whole pipeline (tokenizing, training, checkpoints, the PEFT adapter, the loss
# curve, generation) in under a minute on a CPU. The model knows nothing but what the adapter
# teaches it: the toy answers, word for word.
# For a real model see \`lora init --task llm\`, which lists every key with its default.
# Run it with: lora train --config <this file>
# Relative paths start at this file's folder.

task: llm
base_model: ../models/${modelName}
train_data: ../${DEMO_DATA_PATH}
output_dir: ../output/${modelName.replace(/-/g, '_')}_demo

lora_rank: 16
lora_alpha: 32
# rsLoRA scales updates by alpha / √rank, four times plain LoRA's at rank 16: enough for the
# random model to learn its 140 answers by heart in 1000 steps (see them with lora generate).
use_rslora: true
target_modules: all-linear

batch_size: 4
gradient_accumulation_steps: 1
max_steps: 1000
learning_rate: 5e-4
warmup_steps: 10

max_seq_len: 128
# One of the training questions, answered before the first step (by the random base model alone)
# and after the last (with the adapter); the answers are printed and kept in the run's samples/.
sample_prompts: ["What is the capital of Egypt?"]
# The demo is made for the CPU; a real model on a GPU wants device: auto.
device: cpu
`;
}

/** The SD demo's images: where `lora init --task sd` puts training images. */
export const SD_DEMO_DATA_PATH = 'data/style_train';
/** The SD demo's architectures (`lora init --task sd --demo --base …`). */
export const SD_BASES = ['sd1', 'sd2', 'sdxl'] as const;
export type SdBase = (typeof SD_BASES)[number];

const SD_DEMO_MODELS: Readonly<Record<SdBase, { model: string; name: string }>> = {
  sd1: { model: 'tiny-sd', name: 'SD 1.x' },
  sd2: { model: 'tiny-sd2', name: 'SD 2.x (OpenCLIP text encoder, linear projections)' },
  sdxl: { model: 'tiny-sdxl', name: 'SDXL (two text encoders, size conditioning)' },
};

/**
 * The SD demo config: examples/sd-quickstart's settings for a project laid out by `lora init`, with
 * the learning rate at the top of the range `configWarnings` accepts (alpha 2× rank makes up the
 * rest), so the run is quiet.
 */
export function sdDemoConfig(base: SdBase = 'sd1'): string {
  const { model: SD_DEMO_MODEL, name } = SD_DEMO_MODELS[base];
  const flag = base === 'sd1' ? '' : ` --base ${base}`;
  return `${SCHEMA_COMMENT}
# The lora SD demo: a LoRA on a tiny ${name}-architecture model with RANDOM weights, written by
# \`lora init --task sd --demo${flag}\` into models/${SD_DEMO_MODEL}, trained on 12 generated shape images
# captioned in ${SD_DEMO_DATA_PATH}/metadata.csv. It shows the whole pipeline (latent cache, caption
# augmentation, min-SNR loss, the kohya .safetensors A1111 and ComfyUI load) in about a minute on a
# CPU. The model knows nothing, so neither does the adapter.
# For a real model see \`lora init --task sd\`, which lists every key with its default.
# Run it with: lora train --config <this file>
# Relative paths start at this file's folder.

task: sd
base_model: ../models/${SD_DEMO_MODEL}/${SD_DEMO_MODEL}.safetensors
train_data_dir: ../${SD_DEMO_DATA_PATH}
output_dir: ../output/tiny_shapes_demo
output_name: tiny_shapes

target_modules: [to_q, to_v]
lora_rank: 8
lora_alpha: 16

resolution: 64
enable_bucket: false
cache_latents: true
shuffle_caption: true
keep_tokens: 1
caption_tag_dropout_rate: 0.1
min_snr_gamma: 5

batch_size: 4
max_steps: 1500
learning_rate: 1e-3
lr_scheduler: constant
seed: 42
save_every_n_epochs: 100

# The demo is made for the CPU; a real model on a GPU wants device: auto.
device: cpu
mixed_precision: "no"
`;
}

/**
 * Every file of the demo by its path in the project: the config, the data and the model folder
 * (`@lora/trainer-ort` generates the last two; the same bytes every time).
 */
export async function demoFiles(
  project: string,
  task: 'sd' | 'llm',
  base: SdBase = 'sd1',
): Promise<Map<string, Uint8Array>> {
  if (task === 'sd') return sdDemoFiles(project, base);
  const { DEMO_MODEL_NAME, demoModelFiles, demoRecordsJsonl } = await import('@lora/trainer-ort');
  const text = (value: string) => new TextEncoder().encode(value);
  const files = new Map<string, Uint8Array>([
    [demoConfigPath(project), text(demoConfig(DEMO_MODEL_NAME))],
    [DEMO_DATA_PATH, text(demoRecordsJsonl())],
  ]);
  for (const [name, bytes] of demoModelFiles()) files.set(`models/${DEMO_MODEL_NAME}/${name}`, bytes);
  return files;
}

async function sdDemoFiles(project: string, base: SdBase): Promise<Map<string, Uint8Array>> {
  const { writeShapeImages, writeTinySdModel } = await import('@lora/trainer-ort');
  const { model } = SD_DEMO_MODELS[base];
  // The generators write folders; their bytes are read back so init can compare before it writes.
  const scratch = await mkdtemp(join(tmpdir(), 'lora-sd-demo-'));
  try {
    await writeTinySdModel(join(scratch, 'models', model), model, 0, base);
    await writeShapeImages(join(scratch, SD_DEMO_DATA_PATH), { count: 12 });
    const files = new Map([[demoConfigPath(project), new TextEncoder().encode(sdDemoConfig(base))]]);
    for (const entry of await readdir(scratch, { recursive: true, withFileTypes: true })) {
      if (!entry.isFile()) continue;
      const path = join(entry.parentPath, entry.name);
      files.set(relative(scratch, path).split(sep).join('/'), await readFile(path));
    }
    return files;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
