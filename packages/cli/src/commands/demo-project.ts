/** The demo's config, relative to the project folder: `lora init --demo` names it after the project. */
export const demoConfigPath = (project: string): string => `configs/${project}_demo_v1.yaml`;

export const DEMO_DATA_PATH = 'data/train.jsonl';

/**
 * The demo config. Its learning rate and LoRA size are set for a random base model, which a few
 * hundred steps move far; they stay inside the ranges `configWarnings` accepts, so the run is quiet.
 */
export function demoConfig(modelName: string): string {
  return `# yaml-language-server: $schema=https://unpkg.com/@lora/config/schema.json
# The lora demo: a LoRA on a tiny LLaMA-architecture model with RANDOM weights, written by
# \`lora init --demo\` into models/${modelName}, trained on toy instructions in data/train.jsonl.
# It shows the whole pipeline (tokenizing, training, checkpoints, the PEFT adapter, the loss
# curve) in under a minute on a CPU. The model knows nothing, so neither does the adapter.
# For a real model see \`lora init --task llm\`, which lists every key with its default.
# Run it with: lora train --config <this file>
# Relative paths start at this file's folder.

task: llm
base_model: ../models/${modelName}
train_data: ../${DEMO_DATA_PATH}
output_dir: ../output/${modelName.replace(/-/g, '_')}_demo

lora_rank: 16
lora_alpha: 32
target_modules: all-linear

batch_size: 4
gradient_accumulation_steps: 1
max_steps: 500
learning_rate: 5e-4
warmup_steps: 10

max_seq_len: 128
# The demo is made for the CPU; a real model on a GPU wants device: auto.
device: cpu
`;
}

/**
 * Every file of the demo by its path in the project: the config, the data and the model folder
 * (`@lora/trainer-ort` generates the last two; the same bytes every time).
 */
export async function demoFiles(project: string): Promise<Map<string, Uint8Array>> {
  const { DEMO_MODEL_NAME, demoModelFiles, demoRecordsJsonl } = await import('@lora/trainer-ort');
  const text = (value: string) => new TextEncoder().encode(value);
  const files = new Map<string, Uint8Array>([
    [demoConfigPath(project), text(demoConfig(DEMO_MODEL_NAME))],
    [DEMO_DATA_PATH, text(demoRecordsJsonl())],
  ]);
  for (const [name, bytes] of demoModelFiles()) files.set(`models/${DEMO_MODEL_NAME}/${name}`, bytes);
  return files;
}
