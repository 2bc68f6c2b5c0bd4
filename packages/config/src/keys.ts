import type { ConfigKey } from './schema.ts';

export interface KeyInfo {
  /** Heading the key is listed under in the README and the templates. */
  section: string;
  /** The only task the key applies to; absent when it applies to both. */
  task?: 'sd' | 'llm';
  /**
   * Holds a filesystem path (or a list of them), resolved against the config file's folder, and what
   * it must name: an existing file, folder or either, or an output folder (created when missing).
   */
  path?: 'file' | 'folder' | 'any' | 'output';
  /** The default when it is not a fixed value (the schema's metadata holds the fixed ones). */
  defaultText?: string;
  /** A shorter type than the one spelled out from the schema. */
  typeText?: string;
  /** A task's template comment, where the description (written for both tasks) would mislead. */
  templateText?: Partial<Record<'sd' | 'llm', string>>;
}

/** Facts about each key that the zod types do not carry; `satisfies` keeps it complete. */
export const KEY_INFO = {
  task: {
    section: 'Task and model',
    defaultText: '`sd` when train_data_dir or metadata_path is given, `llm` when train_data is',
  },
  backend: { section: 'Task and model' },
  base_model: { section: 'Task and model', path: 'any' },
  init_adapter: { section: 'Task and model', path: 'any' },
  tokenizer: { section: 'Task and model', task: 'sd', path: 'folder' },
  train_data_dir: {
    section: 'Data',
    task: 'sd',
    path: 'folder',
    defaultText: "metadata_path's folder",
  },
  metadata_path: { section: 'Data', task: 'sd', path: 'file' },
  train_data: { section: 'Data', task: 'llm', path: 'file' },
  dataset_format: { section: 'Data', task: 'llm' },
  output_dir: { section: 'Output', path: 'output' },
  output_name: {
    section: 'Output',
    defaultText: "output_dir's folder name",
    templateText: {
      sd: "The adapter's file name without extension (also `ss_output_name` in its metadata).",
      llm: "Titles the loss plot. The adapter keeps PEFT's fixed names (`adapter_model.safetensors`, `adapter_config.json`), which PEFT's `from_pretrained` looks for.",
    },
  },
  lora_rank: {
    section: 'LoRA',
    templateText: { llm: 'The rank r of each LoRA update (PEFT `r`); 8–16 suits most instruction tuning.' },
  },
  lora_alpha: { section: 'LoRA', defaultText: 'lora_rank (scale 1)' },
  network: { section: 'LoRA' },
  conv_rank: { section: 'LoRA', task: 'sd' },
  conv_alpha: { section: 'LoRA', task: 'sd', defaultText: 'conv_rank (scale 1)' },
  use_rslora: { section: 'LoRA' },
  lora_dropout: { section: 'LoRA' },
  target_modules: {
    section: 'LoRA',
    typeText: 'all-linear | module name[]',
    defaultText: 'sd: `[to_q, to_k, to_v, to_out]`; llm: `[q_proj, v_proj]`',
  },
  train_text_encoder: { section: 'LoRA', task: 'sd' },
  batch_size: { section: 'Training' },
  gradient_accumulation_steps: { section: 'Training' },
  epochs: { section: 'Training', defaultText: 'sd: 10, llm: 3 (unless max_steps is set)' },
  max_steps: { section: 'Training' },
  seed: { section: 'Training' },
  learning_rate: { section: 'Learning rate' },
  text_encoder_lr: { section: 'Learning rate', task: 'sd', defaultText: 'learning_rate' },
  lr_scheduler: { section: 'Learning rate' },
  lr_cycles: { section: 'Learning rate' },
  warmup_steps: { section: 'Learning rate', defaultText: '0 unless warmup_ratio is set' },
  warmup_ratio: { section: 'Learning rate' },
  optimizer: { section: 'Optimizer' },
  weight_decay: { section: 'Optimizer' },
  betas: { section: 'Optimizer' },
  eps: { section: 'Optimizer' },
  max_grad_norm: { section: 'Optimizer' },
  mixed_precision: { section: 'Precision and device' },
  device: { section: 'Precision and device' },
  device_ids: { section: 'Precision and device' },
  num_workers: { section: 'Precision and device' },
  resolution: { section: 'Images (sd)', task: 'sd' },
  enable_bucket: { section: 'Images (sd)', task: 'sd' },
  min_bucket_reso: { section: 'Images (sd)', task: 'sd' },
  max_bucket_reso: { section: 'Images (sd)', task: 'sd' },
  bucket_reso_steps: { section: 'Images (sd)', task: 'sd' },
  cache_latents: { section: 'Images (sd)', task: 'sd' },
  flip_aug: { section: 'Images (sd)', task: 'sd' },
  random_crop: { section: 'Images (sd)', task: 'sd' },
  follow_symlinks: { section: 'Images (sd)', task: 'sd' },
  caption_extension: { section: 'Captions (sd)', task: 'sd' },
  shuffle_caption: { section: 'Captions (sd)', task: 'sd' },
  keep_tokens: { section: 'Captions (sd)', task: 'sd' },
  caption_dropout_rate: { section: 'Captions (sd)', task: 'sd' },
  caption_tag_dropout_rate: { section: 'Captions (sd)', task: 'sd' },
  noise_offset: { section: 'Diffusion (sd)', task: 'sd' },
  min_snr_gamma: { section: 'Diffusion (sd)', task: 'sd' },
  prediction_type: { section: 'Diffusion (sd)', task: 'sd' },
  clip_skip: { section: 'Diffusion (sd)', task: 'sd' },
  max_seq_len: { section: 'Text (llm)', task: 'llm' },
  train_on_prompt: { section: 'Text (llm)', task: 'llm' },
  template: { section: 'Text (llm)', task: 'llm' },
  packing: { section: 'Text (llm)', task: 'llm' },
  save_every_n_epochs: { section: 'Checkpoints' },
  save_every_n_steps: { section: 'Checkpoints' },
  keep_last_n_checkpoints: { section: 'Checkpoints' },
  resume: { section: 'Checkpoints', path: 'any' },
  tensorboard: { section: 'Logging' },
} satisfies Record<ConfigKey, KeyInfo> as Record<ConfigKey, KeyInfo>;

/** Keys whose values are paths: resolved against the config file's folder (`--set` ones: the cwd). */
export const PATH_KEYS = (Object.keys(KEY_INFO) as ConfigKey[]).filter(
  (key) => KEY_INFO[key].path !== undefined,
);

/**
 * Other trainers' names for our keys (kohya sd-scripts, diffusers, LLaMA-Factory, axolotl, PEFT), so a
 * config ported from them gets "did you mean" instead of a bare "unknown key".
 */
export const PEER_KEYS: Record<string, { key: ConfigKey; peer: string }> = {
  network_dim: { key: 'lora_rank', peer: 'kohya' },
  conv_dim: { key: 'conv_rank', peer: 'kohya' },
  network_alpha: { key: 'lora_alpha', peer: 'kohya' },
  network_dropout: { key: 'lora_dropout', peer: 'kohya' },
  network_weights: { key: 'init_adapter', peer: 'kohya' },
  network_train_unet_only: { key: 'train_text_encoder', peer: 'kohya (inverted)' },
  pretrained_model_name_or_path: { key: 'base_model', peer: 'kohya/diffusers' },
  train_batch_size: { key: 'batch_size', peer: 'kohya/diffusers' },
  max_train_epochs: { key: 'epochs', peer: 'kohya' },
  max_train_steps: { key: 'max_steps', peer: 'kohya/diffusers' },
  unet_lr: { key: 'learning_rate', peer: 'kohya' },
  lr_warmup_steps: { key: 'warmup_steps', peer: 'kohya/diffusers' },
  lr_scheduler_num_cycles: { key: 'lr_cycles', peer: 'kohya' },
  optimizer_type: { key: 'optimizer', peer: 'kohya' },
  save_last_n_epochs: { key: 'keep_last_n_checkpoints', peer: 'kohya' },
  in_json: { key: 'metadata_path', peer: 'kohya' },
  logging_dir: { key: 'tensorboard', peer: 'kohya (logs go to <output_dir>/logs)' },
  snr_gamma: { key: 'min_snr_gamma', peer: 'diffusers' },
  rank: { key: 'lora_rank', peer: 'diffusers' },
  checkpointing_steps: { key: 'save_every_n_steps', peer: 'diffusers' },
  checkpoints_total_limit: { key: 'keep_last_n_checkpoints', peer: 'diffusers' },
  resume_from_checkpoint: { key: 'resume', peer: 'diffusers/LLaMA-Factory' },
  adam_weight_decay: { key: 'weight_decay', peer: 'diffusers' },
  adam_beta1: { key: 'betas', peer: 'diffusers/HF' },
  adam_beta2: { key: 'betas', peer: 'diffusers/HF' },
  adam_epsilon: { key: 'eps', peer: 'diffusers/HF' },
  report_to: { key: 'tensorboard', peer: 'diffusers/LLaMA-Factory' },
  model_name_or_path: { key: 'base_model', peer: 'LLaMA-Factory' },
  lora_target: { key: 'target_modules', peer: 'LLaMA-Factory' },
  dataset: { key: 'train_data', peer: 'LLaMA-Factory' },
  cutoff_len: { key: 'max_seq_len', peer: 'LLaMA-Factory' },
  per_device_train_batch_size: { key: 'batch_size', peer: 'LLaMA-Factory/HF' },
  num_train_epochs: { key: 'epochs', peer: 'LLaMA-Factory/diffusers' },
  lr_scheduler_type: { key: 'lr_scheduler', peer: 'LLaMA-Factory/HF' },
  save_steps: { key: 'save_every_n_steps', peer: 'LLaMA-Factory/HF' },
  save_total_limit: { key: 'keep_last_n_checkpoints', peer: 'LLaMA-Factory/HF' },
  adapter_name_or_path: { key: 'init_adapter', peer: 'LLaMA-Factory' },
  bf16: { key: 'mixed_precision', peer: 'LLaMA-Factory/axolotl (write mixed_precision: bf16)' },
  fp16: { key: 'mixed_precision', peer: 'LLaMA-Factory/axolotl (write mixed_precision: fp16)' },
  lora_r: { key: 'lora_rank', peer: 'axolotl' },
  r: { key: 'lora_rank', peer: 'PEFT' },
  lora_target_modules: { key: 'target_modules', peer: 'axolotl' },
  sequence_len: { key: 'max_seq_len', peer: 'axolotl' },
  micro_batch_size: { key: 'batch_size', peer: 'axolotl' },
  sample_packing: { key: 'packing', peer: 'axolotl' },
  datasets: { key: 'train_data', peer: 'axolotl' },
  num_epochs: { key: 'epochs', peer: 'axolotl' },
};
