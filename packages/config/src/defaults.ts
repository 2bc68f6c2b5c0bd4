/**
 * Defaults applied when a config is resolved. The schema records them as metadata, so the JSON Schema,
 * the README table and the templates show these same values.
 */
export const DEFAULTS = {
  backend: 'ort',
  dataset_format: 'auto',
  network: 'lora',
  lora_rank: 16,
  use_rslora: false,
  lora_dropout: 0,
  train_text_encoder: false,
  batch_size: 1,
  gradient_accumulation_steps: 2,
  seed: 42,
  learning_rate: 1e-4,
  lr_scheduler: 'cosine',
  lr_cycles: 1,
  optimizer: 'adamw',
  weight_decay: 0.01,
  betas: [0.9, 0.999],
  eps: 1e-8,
  max_grad_norm: 1,
  mixed_precision: 'auto',
  device: 'auto',
  num_workers: 1,
  resolution: 512,
  enable_bucket: true,
  min_bucket_reso: 256,
  max_bucket_reso: 1024,
  bucket_reso_steps: 64,
  cache_latents: true,
  flip_aug: false,
  random_crop: false,
  follow_symlinks: false,
  caption_extension: '.txt',
  shuffle_caption: false,
  keep_tokens: 0,
  caption_dropout_rate: 0,
  caption_tag_dropout_rate: 0,
  noise_offset: 0,
  clip_skip: 1,
  prediction_type: 'epsilon',
  max_seq_len: 2048,
  train_on_prompt: false,
  template: 'auto',
  packing: false,
  save_every_n_epochs: 1,
  keep_last_n_checkpoints: 3,
  tensorboard: true,
} as const;

/** Epochs when neither epochs nor max_steps is set: LLM instruction tuning overfits past a few. */
export const DEFAULT_EPOCHS = { sd: 10, llm: 3 } as const;

/** Target modules when the config lists none. */
export const DEFAULT_TARGET_MODULES = {
  sd: ['to_q', 'to_k', 'to_v', 'to_out'],
  // PEFT's default for LLaMA-family models.
  llm: ['q_proj', 'v_proj'],
} as const;
