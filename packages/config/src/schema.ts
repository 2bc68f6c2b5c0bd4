import * as z from 'zod';
import { crossCheck } from './cross-check.ts';
import { DEFAULTS } from './defaults.ts';
import { ALL_LINEAR, MODULE_NAMES } from './modules.ts';

// Sanity ranges rather than hostile-input limits: a value past them is a typo, and the message says so
// at load time instead of as an out-of-memory error an hour into a run.
/** A rank above the width of the layers it adapts (320–4096 for SD 1.x and 7B LLMs) buys nothing. */
export const MAX_LORA_RANK = 1024;
/** SD 1.x was trained at 512 px; 4096 px needs ~64× the memory and no consumer GPU holds it. */
export const MAX_RESOLUTION = 4096;
/** The longest context among the supported LLM families (Llama 3.1, Qwen2.5). */
export const MAX_SEQ_LEN = 131_072;
/** Each worker process loads its own copy of the model and runtime; more than this is a typo, not a machine. */
export const MAX_NUM_WORKERS = 64;
/** SD 1.x's text encoder (CLIP ViT-L/14) has 12 layers; skipping all of them leaves nothing. */
export const MAX_CLIP_SKIP = 12;

export const TASKS = ['sd', 'llm'] as const;
export const DATASET_FORMATS = ['auto', 'alpaca', 'sharegpt', 'messages', 'text'] as const;
export const LR_SCHEDULERS = [
  'constant',
  'constant_with_warmup',
  'linear',
  'cosine',
  'cosine_with_restarts',
] as const;
export const OPTIMIZERS = ['adamw'] as const;
/** The LoRA variants (`@lora/adapters`' registry; a trainer test keeps the two lists equal). */
export const NETWORKS = ['lora', 'dora', 'loha', 'lokr'] as const;
export const MIXED_PRECISIONS = ['auto', 'fp16', 'bf16', 'no'] as const;

/**
 * A file name on every OS: no separators, NUL or other control characters (they end a path in C
 * APIs or break shells), not `.` or `..` (a hidden `..safetensors`), at most 200 characters so
 * `<name>.safetensors` fits the 255-byte name limit with room for multi-byte characters.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses.
const OUTPUT_NAME = /^(?!\.{1,2}$)[^/\\\u0000-\u001f\u007f]{1,200}$/;
export const DEVICES = ['auto', 'cuda', 'webgpu', 'cpu'] as const;
export const PREDICTION_TYPES = ['epsilon', 'v_prediction'] as const;

/** UNet latents are 1/8 of the image and go through three 2× downsamplings, so sides divide by 64. */
const LATENT_MULTIPLE = 64;
const UINT32_MAX = 2 ** 32 - 1;

const path = z.string().min(1);
const rate = z.number().min(0).max(1);
const side = z.int().min(LATENT_MULTIPLE).max(MAX_RESOLUTION).multipleOf(LATENT_MULTIPLE);

/**
 * The shape of the YAML file: every key, its type and range. Defaults are recorded as metadata
 * (for the JSON Schema and the README) and applied when the config is resolved, so that validation
 * can tell a key the user wrote from one left out.
 */
const fields = {
  // Task and model
  task: z.enum(TASKS).optional().meta({
    description:
      'What to train: `sd` (Stable Diffusion 1.x, images + captions) or `llm` (LLaMA-family, text).',
  }),
  backend: z
    .string()
    .regex(/^(@[a-z0-9~-][a-z0-9._~-]*\/)?[a-z0-9~-][a-z0-9._~-]*$/)
    .optional()
    .meta({
      description:
        'The trainer: `ort` (@lora/trainer-ort, ONNX Runtime) or the npm name of a package implementing the TrainerBackend contract.',
      default: DEFAULTS.backend,
    }),
  base_model: path.meta({
    description:
      'The base model: an SD 1.x single-file checkpoint or diffusers folder, or an LLM folder with config.json, safetensors and tokenizer.json.',
  }),
  init_adapter: path.optional().meta({
    description:
      'Start from an existing LoRA adapter (kohya .safetensors or a PEFT folder) instead of zeros.',
  }),
  tokenizer: path.optional().meta({
    description:
      "sd: the folder of CLIP's tokenizer.json for a single-file checkpoint. Unset: `tokenizer/` beside the model, then the ComfyUI install it sits in and the Hugging Face cache (openai/clip-vit-large-patch14 or an SD 1.5 repository).",
  }),
  // Data
  train_data_dir: path.optional().meta({
    description: 'sd: the folder of training images (kohya `N_name` subfolders repeat images N times).',
  }),
  metadata_path: path.optional().meta({
    description:
      'sd: a metadata.csv with `file_name` and `text` columns; without it captions come from sidecar files.',
  }),
  train_data: z
    .union([path, z.array(path).min(1)])
    .optional()
    .meta({ description: 'llm: one or more .json / .jsonl files of examples.' }),
  dataset_format: z.enum(DATASET_FORMATS).optional().meta({
    description: 'llm: the layout of each example; `auto` detects it from the first records.',
    default: DEFAULTS.dataset_format,
  }),
  // Output
  output_dir: path.meta({
    description: 'The run folder: adapter, config snapshot, logs, metrics and checkpoints go here.',
  }),
  output_name: z.string().regex(OUTPUT_NAME).optional().meta({
    description:
      "SD: the adapter's file name without extension (also `ss_output_name`). LLM runs write PEFT's fixed names (`adapter_model.safetensors`, `adapter_config.json`), which PEFT's `from_pretrained` looks for, so output_name only titles the loss plot there.",
  }),
  // LoRA
  network: z.enum(NETWORKS).optional().meta({
    description:
      'The LoRA variant: `lora`; `dora` (weight-decomposed: a trained magnitude per channel, PEFT `use_dora`; SD files carry `dora_scale` as LyCORIS writes it, which A1111 and ComfyUI load); `loha` (sd: LyCORIS LoHa, a Hadamard product of two low-rank pairs, `hada_w*` keys); `lokr` (sd: LyCORIS LoKr, a Kronecker product, `lokr_w*` keys; a rank of half the factor size or more trains it full, at scale 1). A1111 and ComfyUI load all of them.',
    default: DEFAULTS.network,
  }),
  lora_rank: z.int().min(1).max(MAX_LORA_RANK).optional().meta({
    description: 'The rank r of each LoRA update (kohya `network_dim`); 8–16 suits a style.',
    default: DEFAULTS.lora_rank,
  }),
  lora_alpha: z.number().gt(0).optional().meta({
    description: 'Scale numerator: updates are multiplied by alpha / rank (kohya `network_alpha`).',
  }),
  conv_rank: z.int().min(1).max(MAX_LORA_RANK).optional().meta({
    description:
      "sd: also train the UNet's ResNet, downsampler and upsampler blocks (kohya's LoCon, `conv_dim`): their 3×3 convolutions at this rank, `time_emb_proj` and `conv_shortcut` at lora_rank. Unset: attention blocks only.",
  }),
  conv_alpha: z.number().gt(0).optional().meta({
    description: 'sd: the alpha of the 3×3 convolutions conv_rank trains (kohya `conv_alpha`).',
  }),
  use_rslora: z.boolean().optional().meta({
    description:
      'rsLoRA: scale updates by alpha / √rank instead of alpha / rank, which keeps high ranks learning (PEFT `use_rslora`).',
    default: DEFAULTS.use_rslora,
  }),
  lora_dropout: z.number().min(0).lt(1).optional().meta({
    description: 'Dropout on the LoRA branch input during training.',
    default: DEFAULTS.lora_dropout,
  }),
  target_modules: z
    .union([z.literal(ALL_LINEAR), z.array(z.enum([...MODULE_NAMES, ALL_LINEAR])).min(1)])
    .optional()
    .meta({
      description:
        'Layers to adapt. sd: UNet `to_q to_k to_v to_out proj_in proj_out ff`, text encoder `fc1 fc2`, and `q_proj k_proj v_proj out_proj` meaning both models. llm: `q_proj k_proj v_proj o_proj gate_proj up_proj down_proj`. Or `all-linear`.',
    }),
  train_text_encoder: z.boolean().optional().meta({
    description: 'sd: also train LoRA on the CLIP text encoder.',
    default: DEFAULTS.train_text_encoder,
  }),
  // Training length and batch
  batch_size: z
    .int()
    .min(1)
    .optional()
    .meta({ description: 'Examples per forward pass.', default: DEFAULTS.batch_size }),
  gradient_accumulation_steps: z.int().min(1).optional().meta({
    description: 'Forward passes per optimizer step; the effective batch is batch_size × this.',
    default: DEFAULTS.gradient_accumulation_steps,
  }),
  epochs: z
    .int()
    .min(1)
    .optional()
    .meta({ description: 'Passes over the dataset. Exclusive with max_steps.' }),
  max_steps: z.int().min(1).optional().meta({
    description: 'Stop after this many optimizer steps instead of counting epochs.',
  }),
  seed: z.int().min(0).max(UINT32_MAX).optional().meta({
    description: 'Seeds initialisation, shuffling, noise and dropout.',
    default: DEFAULTS.seed,
  }),
  // Learning rate
  learning_rate: z.number().gt(0).max(1).optional().meta({
    description: 'Peak learning rate (UNet or LLM). `2e-4` is read as a number.',
    default: DEFAULTS.learning_rate,
  }),
  text_encoder_lr: z.number().gt(0).max(1).optional().meta({
    description: 'sd: learning rate of the text encoder when it is trained.',
  }),
  lr_scheduler: z.enum(LR_SCHEDULERS).optional().meta({
    description: 'How the learning rate moves after warmup.',
    default: DEFAULTS.lr_scheduler,
  }),
  lr_cycles: z.int().min(1).optional().meta({
    description: 'Number of hard restarts for `cosine_with_restarts`.',
    default: DEFAULTS.lr_cycles,
  }),
  warmup_steps: z.int().min(0).optional().meta({
    description: 'Optimizer steps of linear warmup from 0. Exclusive with warmup_ratio.',
  }),
  warmup_ratio: z.number().min(0).lt(1).optional().meta({
    description: 'Warmup as a fraction of all optimizer steps. Exclusive with warmup_steps.',
  }),
  // Optimizer
  optimizer: z.enum(OPTIMIZERS).optional().meta({
    description: 'The optimizer; AdamW runs inside the training graph.',
    default: DEFAULTS.optimizer,
  }),
  weight_decay: z.number().min(0).max(1).optional().meta({
    description: 'Decoupled weight decay of AdamW.',
    default: DEFAULTS.weight_decay,
  }),
  betas: z
    .tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)])
    .optional()
    .meta({ description: 'AdamW moment decay rates [beta1, beta2].', default: DEFAULTS.betas }),
  eps: z
    .number()
    .gt(0)
    .max(1)
    .optional()
    .meta({ description: 'AdamW denominator epsilon.', default: DEFAULTS.eps }),
  max_grad_norm: z.number().min(0).optional().meta({
    description: 'Clip the global gradient norm to this; 0 turns clipping off.',
    default: DEFAULTS.max_grad_norm,
  }),
  // Precision and device
  mixed_precision: z.enum(MIXED_PRECISIONS).optional().meta({
    description:
      'Compute precision of the frozen model. `auto` is decided at run time: fp16 on CUDA, fp32 elsewhere; `no` is fp32. fp16 works on CUDA and on WebGPU adapters with shader-f16; WebGPU has no bf16 (it computes in fp32 and says so). LoRA weights and optimizer state stay fp32.',
    default: DEFAULTS.mixed_precision,
  }),
  device: z.enum(DEVICES).optional().meta({
    description:
      '`auto` takes CUDA when its provider is installed and starts, else a WebGPU adapter that is a real GPU (software adapters such as lavapipe are slower than the CPU), else the CPU, and says why it passed the faster ones over. `webgpu` takes any adapter. `lora doctor` shows what this machine has.',
    default: DEFAULTS.device,
  }),
  device_ids: z.array(z.int().min(0)).min(1).optional().meta({
    description:
      'CUDA device ordinals to use (default: device 0); several train data-parallel, one worker process per device. Not for WebGPU: onnxruntime-node picks its adapter itself.',
  }),
  num_workers: z.int().min(1).max(MAX_NUM_WORKERS).optional().meta({
    description:
      'Data-parallel worker processes on the CPU, each with an equal share of the cores; for GPUs list device_ids instead.',
    default: DEFAULTS.num_workers,
  }),
  // Images (sd)
  resolution: z
    .union([side, z.tuple([side, side])])
    .optional()
    .meta({
      description: 'sd: training size in pixels, one side or [width, height]; multiples of 64.',
      default: DEFAULTS.resolution,
    }),
  enable_bucket: z.boolean().optional().meta({
    description: 'sd: group images into aspect-ratio buckets instead of center-cropping to a square.',
    default: DEFAULTS.enable_bucket,
  }),
  min_bucket_reso: side
    .optional()
    .meta({ description: 'sd: smallest bucket side in pixels.', default: DEFAULTS.min_bucket_reso }),
  max_bucket_reso: side
    .optional()
    .meta({ description: 'sd: largest bucket side in pixels.', default: DEFAULTS.max_bucket_reso }),
  bucket_reso_steps: side
    .optional()
    .meta({ description: 'sd: bucket side increment in pixels.', default: DEFAULTS.bucket_reso_steps }),
  cache_latents: z.boolean().optional().meta({
    description: 'sd: encode every image with the VAE once, before training.',
    default: DEFAULTS.cache_latents,
  }),
  flip_aug: z.boolean().optional().meta({
    description: 'sd: mirror each image left-right with probability 1/2 (cached latents keep both sides).',
    default: DEFAULTS.flip_aug,
  }),
  random_crop: z.boolean().optional().meta({
    description:
      'sd: crop each image to its bucket at a random place every epoch instead of centred; needs cache_latents: false.',
    default: DEFAULTS.random_crop,
  }),
  follow_symlinks: z.boolean().optional().meta({
    description:
      'sd: train on images that symbolic links in the dataset folder point to outside it; off, such links are skipped and reported.',
    default: DEFAULTS.follow_symlinks,
  }),
  // Captions (sd)
  caption_extension: z
    .string()
    .regex(/^\.[\w-]+$/)
    .optional()
    .meta({ description: 'sd: extension of sidecar caption files.', default: DEFAULTS.caption_extension }),
  shuffle_caption: z.boolean().optional().meta({
    description: 'sd: shuffle the comma-separated tags of each caption every epoch.',
    default: DEFAULTS.shuffle_caption,
  }),
  keep_tokens: z.int().min(0).optional().meta({
    description: 'sd: leading comma-separated tags (not tokenizer tokens) never shuffled or dropped.',
    default: DEFAULTS.keep_tokens,
  }),
  caption_dropout_rate: rate.optional().meta({
    description: 'sd: probability of training an example with an empty caption.',
    default: DEFAULTS.caption_dropout_rate,
  }),
  caption_tag_dropout_rate: rate.optional().meta({
    description: 'sd: probability of dropping each tag after keep_tokens.',
    default: DEFAULTS.caption_tag_dropout_rate,
  }),
  // Diffusion (sd)
  noise_offset: z.number().min(0).max(1).optional().meta({
    description: 'sd: per-channel noise offset for darker darks and brighter brights; 0.05–0.1 is typical.',
    default: DEFAULTS.noise_offset,
  }),
  min_snr_gamma: z.number().gt(0).optional().meta({
    description: 'sd: min-SNR loss weighting gamma (5 is the paper value); unset turns it off.',
  }),
  prediction_type: z.enum(PREDICTION_TYPES).optional().meta({
    description: 'sd: what the UNet predicts; SD 1.x uses epsilon, SD 2.x 768-v uses v_prediction.',
    default: DEFAULTS.prediction_type,
  }),
  clip_skip: z.int().min(1).max(MAX_CLIP_SKIP).optional().meta({
    description:
      "sd: take the text encoder's states this many layers from its end (1 = last layer, 2 = the penultimate, as many anime models expect); SD 1.x.",
    default: DEFAULTS.clip_skip,
  }),
  // Text (llm)
  max_seq_len: z.int().min(16).max(MAX_SEQ_LEN).optional().meta({
    description: 'llm: tokens per example; longer examples are truncated.',
    default: DEFAULTS.max_seq_len,
  }),
  train_on_prompt: z.boolean().optional().meta({
    description: 'llm: compute the loss on prompt tokens too, not only on responses.',
    default: DEFAULTS.train_on_prompt,
  }),
  template: z.string().min(1).optional().meta({
    description: "llm: chat template name; `auto` uses the model's tokenizer_config.json chat_template.",
    default: DEFAULTS.template,
  }),
  packing: z.boolean().optional().meta({
    description: 'llm: pack several short examples into each max_seq_len sequence.',
    default: DEFAULTS.packing,
  }),
  // Checkpoints and resume
  save_every_n_epochs: z.int().min(1).optional().meta({
    description: 'Save a resumable checkpoint every N epochs.',
    default: DEFAULTS.save_every_n_epochs,
  }),
  save_every_n_steps: z.int().min(1).optional().meta({
    description: 'Also save a checkpoint every N optimizer steps.',
  }),
  keep_last_n_checkpoints: z.int().min(0).optional().meta({
    description: 'Checkpoints kept on disk; older ones are deleted. 0 keeps all.',
    default: DEFAULTS.keep_last_n_checkpoints,
  }),
  resume: z
    .union([z.literal('auto'), path])
    .optional()
    .meta({
      description: 'Continue a run: a checkpoint folder, or `auto` for the latest one in output_dir.',
    }),
  // Logging
  tensorboard: z.boolean().optional().meta({
    description: 'Write TensorBoard event files to <output_dir>/logs.',
    default: DEFAULTS.tensorboard,
  }),
};

const isRecord = (value: unknown) => typeof value === 'object' && value !== null && !Array.isArray(value);

export type ConfigKey = keyof typeof fields;
export const CONFIG_KEYS = Object.keys(fields) as ConfigKey[];

/** The zod schema of the YAML config file (the keys as written, before defaults and path resolution). */
export const configSchema = z
  .strictObject(fields)
  // Cross-key rules run even when single keys failed, so every problem is reported at once.
  .superRefine(crossCheck, { when: (payload) => isRecord(payload.value) })
  .meta({
    title: '@lora training config',
    description: 'One YAML file describes a LoRA training run: `lora train --config <file>`.',
  });

/** A config as written in YAML, after validation: no defaults applied, paths as written. */
export type ConfigInput = z.output<typeof configSchema>;
