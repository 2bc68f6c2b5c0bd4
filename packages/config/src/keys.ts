import { type ConfigKey, KEY_INFO } from './schema.ts';

/** Keys that hold filesystem paths, resolved against the config file's folder. */
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
  v_parameterization: { key: 'prediction_type', peer: 'kohya (write prediction_type: v_prediction)' },
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
