import * as z from 'zod';
import { crossCheck } from './cross-check.ts';
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
export const BASE_PRECISIONS = ['fp16', 'bf16', 'fp32'] as const;

/**
 * A file name on every OS: no separators, NUL or other control characters (they end a path in C
 * APIs or break shells), not `.` or `..` (a hidden `..safetensors`), at most 200 characters so
 * `<name>.safetensors` fits the 255-byte name limit with room for multi-byte characters.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses.
const OUTPUT_NAME = /^(?!\.{1,2}$)[^/\\\u0000-\u001f\u007f]{1,200}$/;
export const DEVICES = ['auto', 'cuda', 'webgpu', 'cpu'] as const;
export const PREDICTION_TYPES = ['epsilon', 'v_prediction'] as const;
/** `auto`: what the model's files say (a diffusers scheduler_config.json), else epsilon. */
export const PREDICTION_TYPE_SETTINGS = ['auto', ...PREDICTION_TYPES] as const;

/** UNet latents are 1/8 of the image and go through three 2× downsamplings, so sides divide by 64. */
const LATENT_MULTIPLE = 64;
const UINT32_MAX = 2 ** 32 - 1;

const path = z.string().min(1);
const rate = z.number().min(0).max(1);
const side = z.int().min(LATENT_MULTIPLE).max(MAX_RESOLUTION).multipleOf(LATENT_MULTIPLE);

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
  /** The default when it is not a fixed value (`default` holds the fixed ones). */
  defaultText?: string;
  /** A shorter type than the one spelled out from the schema. */
  typeText?: string;
  /** A task's template comment, where the description (written for both tasks) would mislead. */
  templateText?: Partial<Record<'sd' | 'llm', string>>;
}

/** A key's description and fixed default, which the JSON Schema carries too. */
interface KeyFacts<D> extends KeyInfo {
  description: string;
  /** The value a config that leaves the key out gets; `defaultText` explains one that is computed. */
  default?: D;
}

interface ConfigField<T extends z.ZodType, D> {
  readonly schema: T;
  readonly info: KeyInfo;
  readonly default: D;
}

/** Splits a key's facts into what zod carries (description, default) and the rest. */
function field<T extends z.ZodType, D>(schema: T, { description, default: fixed, ...info }: KeyFacts<D>) {
  const meta = fixed === undefined ? { description } : { description, default: fixed };
  return { schema: schema.meta(meta), info, default: fixed as D } satisfies ConfigField<T, D>;
}

/**
 * One config key, everything about it in one place: its type and checks, its fixed default (typed
 * against the key's type), its description, and where the docs and templates list it.
 */
function key<T extends z.ZodType, const D extends z.output<T> | undefined = undefined>(
  type: T,
  facts: KeyFacts<D>,
): ConfigField<z.ZodOptional<T>, D> {
  return field(type.optional(), facts);
}

/** A key every config must have. */
function requiredKey<T extends z.ZodType>(type: T, facts: KeyFacts<undefined>): ConfigField<T, undefined> {
  return field(type, facts);
}

/**
 * Every key of the YAML file, each in one place (`key`): type and range, fixed default,
 * description, README section, task, path kind. Defaults are recorded as metadata (for the JSON
 * Schema and the README) and applied when the config is resolved, so that validation can tell a
 * key the user wrote from one left out.
 */
const fields = {
  // Task and model
  task: key(z.enum(TASKS), {
    description:
      'What to train: `sd` (Stable Diffusion 1.x, images + captions) or `llm` (LLaMA-family, text).',
    section: 'Task and model',
    defaultText: '`sd` when train_data_dir or metadata_path is given, `llm` when train_data is',
  }),
  backend: key(z.string().regex(/^(@[a-z0-9~-][a-z0-9._~-]*\/)?[a-z0-9~-][a-z0-9._~-]*$/), {
    description:
      'The trainer: `ort` (@lora/trainer-ort, ONNX Runtime) or the npm name of a package implementing the TrainerBackend contract.',
    default: 'ort',
    section: 'Task and model',
  }),
  base_model: requiredKey(path, {
    description:
      'The base model: an SD 1.x single-file checkpoint or diffusers folder, or an LLM folder with config.json, safetensors and tokenizer.json.',
    section: 'Task and model',
    path: 'any',
  }),
  init_adapter: key(path, {
    description:
      'Start from an existing LoRA adapter (kohya .safetensors or a PEFT folder) instead of zeros.',
    section: 'Task and model',
    path: 'any',
  }),
  tokenizer: key(path, {
    description:
      "sd: the folder of CLIP's tokenizer for a single-file checkpoint (tokenizer.json, or vocab.json and merges.txt). Unset: `tokenizer/` beside the model, then the ComfyUI install it sits in (`comfy/sd1_tokenizer`) and the Hugging Face cache (openai/clip-vit-large-patch14 or an SD 1.5 repository).",
    section: 'Task and model',
    task: 'sd',
    path: 'folder',
  }),
  // Data
  train_data_dir: key(path, {
    description: 'sd: the folder of training images (kohya `N_name` subfolders repeat images N times).',
    section: 'Data',
    task: 'sd',
    path: 'folder',
    defaultText: "metadata_path's folder",
  }),
  metadata_path: key(path, {
    description:
      'sd: a metadata.csv with `file_name` and `text` columns; without it captions come from sidecar files.',
    section: 'Data',
    task: 'sd',
    path: 'file',
  }),
  train_data: key(z.union([path, z.array(path).min(1)]), {
    description: 'llm: one or more .json / .jsonl files of examples.',
    section: 'Data',
    task: 'llm',
    path: 'file',
  }),
  dataset_format: key(z.enum(DATASET_FORMATS), {
    description: 'llm: the layout of each example; `auto` detects it from the first records.',
    default: 'auto',
    section: 'Data',
    task: 'llm',
  }),
  // Output
  output_dir: requiredKey(path, {
    description:
      'The run folder: adapter, config snapshot, logs, metrics and checkpoints go here. `{timestamp}` (local time, `20261207-041215`) or `{date}` in its last folder name gives each run its own folder (`resume: auto` goes on in the newest); `{output_name}` is filled in too.',
    section: 'Output',
    path: 'output',
  }),
  output_name: key(z.string().regex(OUTPUT_NAME), {
    description:
      "SD: the adapter's file name without extension (also `ss_output_name`). LLM runs write PEFT's fixed names (`adapter_model.safetensors`, `adapter_config.json`), which PEFT's `from_pretrained` looks for, so output_name only titles the loss plot there.",
    section: 'Output',
    defaultText: "output_dir's folder name, placeholders left out",
    templateText: {
      sd: "The adapter's file name without extension (also `ss_output_name` in its metadata).",
      llm: "Titles the loss plot. The adapter keeps PEFT's fixed names (`adapter_model.safetensors`, `adapter_config.json`), which PEFT's `from_pretrained` looks for.",
    },
  }),
  // LoRA
  network: key(z.enum(NETWORKS), {
    description:
      'The LoRA variant: `lora`; `dora` (weight-decomposed: a trained magnitude per channel, PEFT `use_dora`; SD files carry `dora_scale` as LyCORIS writes it, which A1111 and ComfyUI load); `loha` (sd: LyCORIS LoHa, a Hadamard product of two low-rank pairs, `hada_w*` keys); `lokr` (sd: LyCORIS LoKr, a Kronecker product, `lokr_w*` keys; a rank of half the factor size or more trains it full, at scale 1). A1111 and ComfyUI load all of them.',
    default: 'lora',
    section: 'LoRA',
  }),
  lora_rank: key(z.int().min(1).max(MAX_LORA_RANK), {
    description: 'The rank r of each LoRA update (kohya `network_dim`); 8–16 suits a style.',
    default: 16,
    section: 'LoRA',
    templateText: { llm: 'The rank r of each LoRA update (PEFT `r`); 8–16 suits most instruction tuning.' },
  }),
  lora_alpha: key(z.number().gt(0), {
    description: 'Scale numerator: updates are multiplied by alpha / rank (kohya `network_alpha`).',
    section: 'LoRA',
    defaultText: 'lora_rank (scale 1)',
  }),
  conv_rank: key(z.int().min(1).max(MAX_LORA_RANK), {
    description:
      "sd: also train the UNet's ResNet, downsampler and upsampler blocks (kohya's LoCon, `conv_dim`): their 3×3 convolutions at this rank, `time_emb_proj` and `conv_shortcut` at lora_rank. Unset: attention blocks only.",
    section: 'LoRA',
    task: 'sd',
  }),
  conv_alpha: key(z.number().gt(0), {
    description: 'sd: the alpha of the 3×3 convolutions conv_rank trains (kohya `conv_alpha`).',
    section: 'LoRA',
    task: 'sd',
    defaultText: 'conv_rank (scale 1)',
  }),
  use_rslora: key(z.boolean(), {
    description:
      'rsLoRA: scale updates by alpha / √rank instead of alpha / rank, which keeps high ranks learning (PEFT `use_rslora`).',
    default: false,
    section: 'LoRA',
  }),
  lora_dropout: key(z.number().min(0).lt(1), {
    description: 'Dropout on the LoRA branch input during training.',
    default: 0,
    section: 'LoRA',
  }),
  target_modules: key(
    z.union([z.literal(ALL_LINEAR), z.array(z.enum([...MODULE_NAMES, ALL_LINEAR])).min(1)]),
    {
      description:
        'Layers to adapt. sd: UNet `to_q to_k to_v to_out proj_in proj_out ff`, text encoder `fc1 fc2`, and `q_proj k_proj v_proj out_proj` meaning both models. llm: `q_proj k_proj v_proj o_proj gate_proj up_proj down_proj`. Or `all-linear`.',
      section: 'LoRA',
      typeText: 'all-linear | module name[]',
      defaultText: 'sd: `[to_q, to_k, to_v, to_out]`; llm: `[q_proj, v_proj]`',
    },
  ),
  train_text_encoder: key(z.boolean(), {
    description: 'sd: also train LoRA on the CLIP text encoder.',
    default: false,
    section: 'LoRA',
    task: 'sd',
  }),
  // Training length and batch
  batch_size: key(z.int().min(1), {
    description: 'Examples per forward pass.',
    default: 1,
    section: 'Training',
  }),
  gradient_accumulation_steps: key(z.int().min(1), {
    description: 'Forward passes per optimizer step; the effective batch is batch_size × this.',
    default: 2,
    section: 'Training',
  }),
  epochs: key(z.int().min(1), {
    description: 'Passes over the dataset. Exclusive with max_steps.',
    section: 'Training',
    defaultText: 'sd: 10, llm: 3 (unless max_steps is set)',
  }),
  max_steps: key(z.int().min(1), {
    description: 'Stop after this many optimizer steps instead of counting epochs.',
    section: 'Training',
  }),
  seed: key(z.int().min(0).max(UINT32_MAX), {
    description: 'Seeds initialisation, shuffling, noise and dropout.',
    default: 42,
    section: 'Training',
  }),
  // Learning rate
  learning_rate: key(z.number().gt(0).max(1), {
    description: 'Peak learning rate (UNet or LLM). `2e-4` is read as a number.',
    default: 1e-4,
    section: 'Learning rate',
  }),
  text_encoder_lr: key(z.number().gt(0).max(1), {
    description: 'sd: learning rate of the text encoder when it is trained.',
    section: 'Learning rate',
    task: 'sd',
    defaultText: 'learning_rate',
  }),
  text_encoder_2_lr: key(z.number().gt(0).max(1), {
    description:
      "sd: learning rate of SDXL's second text encoder (OpenCLIP ViT-bigG) when the text encoders are trained.",
    section: 'Learning rate',
    task: 'sd',
    defaultText: 'text_encoder_lr',
  }),
  lr_scheduler: key(z.enum(LR_SCHEDULERS), {
    description: 'How the learning rate moves after warmup.',
    default: 'cosine',
    section: 'Learning rate',
  }),
  lr_cycles: key(z.int().min(1), {
    description: 'Number of hard restarts for `cosine_with_restarts`.',
    default: 1,
    section: 'Learning rate',
  }),
  warmup_steps: key(z.int().min(0), {
    description: 'Optimizer steps of linear warmup from 0. Exclusive with warmup_ratio.',
    section: 'Learning rate',
    defaultText: '0 unless warmup_ratio is set',
  }),
  warmup_ratio: key(z.number().min(0).lt(1), {
    description: 'Warmup as a fraction of all optimizer steps. Exclusive with warmup_steps.',
    section: 'Learning rate',
  }),
  // Optimizer
  optimizer: key(z.enum(OPTIMIZERS), {
    description: 'The optimizer; AdamW runs inside the training graph.',
    default: 'adamw',
    section: 'Optimizer',
  }),
  weight_decay: key(z.number().min(0).max(1), {
    description: 'Decoupled weight decay of AdamW.',
    default: 0.01,
    section: 'Optimizer',
  }),
  betas: key(z.tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)]), {
    description: 'AdamW moment decay rates [beta1, beta2].',
    default: [0.9, 0.999],
    section: 'Optimizer',
  }),
  eps: key(z.number().gt(0).max(1), {
    description: 'AdamW denominator epsilon.',
    default: 1e-8,
    section: 'Optimizer',
  }),
  max_grad_norm: key(z.number().min(0), {
    description: 'Clip the global gradient norm to this; 0 turns clipping off.',
    default: 1,
    section: 'Optimizer',
  }),
  // Precision and device
  mixed_precision: key(z.enum(MIXED_PRECISIONS), {
    description:
      'Compute precision of the frozen model. `auto` is decided at run time: fp16 on CUDA, fp32 elsewhere; `no` is fp32. fp16 works on CUDA and on WebGPU adapters with shader-f16; WebGPU has no bf16 (it computes in fp32 and says so). LoRA weights and optimizer state stay fp32.',
    default: 'auto',
    section: 'Precision and device',
  }),
  base_precision: key(z.enum(BASE_PRECISIONS), {
    description:
      "The type the frozen base model's weights are held in (default: as the file stores them): fp16 or bf16 halves an F32 checkpoint's memory, rounding each weight once when training starts; fp32 widens a half-precision file (twice the memory, no conversion per step). LoRA weights stay fp32.",
    section: 'Precision and device',
  }),
  device: key(z.enum(DEVICES), {
    description:
      '`auto` takes CUDA when its provider is installed and starts, else a WebGPU adapter that is a real GPU (software adapters such as lavapipe are slower than the CPU), else the CPU, and says why it passed the faster ones over. `webgpu` takes any adapter. `lora doctor` shows what this machine has.',
    default: 'auto',
    section: 'Precision and device',
  }),
  device_ids: key(z.array(z.int().min(0)).min(1), {
    description:
      'CUDA device ordinals to use (default: device 0); several train data-parallel, one worker process per device. Not for WebGPU: onnxruntime-node picks its adapter itself.',
    section: 'Precision and device',
  }),
  num_workers: key(z.int().min(1).max(MAX_NUM_WORKERS), {
    description:
      'Data-parallel worker processes on the CPU, each with an equal share of the cores; for GPUs list device_ids instead.',
    default: 1,
    section: 'Precision and device',
  }),
  gradient_checkpointing: key(z.boolean(), {
    description:
      "Keep only each block's input through the step and recompute the block in the backward pass (LLaMA decoder layers; the UNet's ResNet and transformer blocks and the text encoder's layers): less memory for some more time per step. `lora train` prints the memory a step needs before the first one.",
    default: false,
    section: 'Precision and device',
  }),
  memory_efficient_attention: key(z.boolean(), {
    description:
      "sd: attend in blocks of queries, each recomputed in the backward pass, so the whole attention matrix (4096² per head at 512 px) never exists (kohya's `mem_eff_attn`): less memory for a little more time per step.",
    default: false,
    section: 'Precision and device',
    task: 'sd',
  }),
  // Images (sd)
  resolution: key(z.union([side, z.tuple([side, side])]), {
    description: 'sd: training size in pixels, one side or [width, height]; multiples of 64.',
    default: 512,
    section: 'Images (sd)',
    task: 'sd',
  }),
  enable_bucket: key(z.boolean(), {
    description: 'sd: group images into aspect-ratio buckets instead of center-cropping to a square.',
    default: true,
    section: 'Images (sd)',
    task: 'sd',
  }),
  min_bucket_reso: key(side, {
    description: 'sd: smallest bucket side in pixels.',
    default: 256,
    section: 'Images (sd)',
    task: 'sd',
  }),
  max_bucket_reso: key(side, {
    description: 'sd: largest bucket side in pixels.',
    default: 1024,
    section: 'Images (sd)',
    task: 'sd',
  }),
  bucket_reso_steps: key(side, {
    description: 'sd: bucket side increment in pixels.',
    default: 64,
    section: 'Images (sd)',
    task: 'sd',
  }),
  cache_latents: key(z.boolean(), {
    description: 'sd: encode every image with the VAE once, before training.',
    default: true,
    section: 'Images (sd)',
    task: 'sd',
  }),
  flip_aug: key(z.boolean(), {
    description: 'sd: mirror each image left-right with probability 1/2 (cached latents keep both sides).',
    default: false,
    section: 'Images (sd)',
    task: 'sd',
  }),
  random_crop: key(z.boolean(), {
    description:
      'sd: crop each image to its bucket at a random place every epoch instead of centred; needs cache_latents: false.',
    default: false,
    section: 'Images (sd)',
    task: 'sd',
  }),
  follow_symlinks: key(z.boolean(), {
    description:
      'sd: train on images that symbolic links in the dataset folder point to outside it; off, such links are skipped and reported.',
    default: false,
    section: 'Images (sd)',
    task: 'sd',
  }),
  // Captions (sd)
  caption_extension: key(z.string().regex(/^\.[\w-]+$/), {
    description: 'sd: extension of sidecar caption files.',
    default: '.txt',
    section: 'Captions (sd)',
    task: 'sd',
  }),
  shuffle_caption: key(z.boolean(), {
    description: 'sd: shuffle the comma-separated tags of each caption every epoch.',
    default: false,
    section: 'Captions (sd)',
    task: 'sd',
  }),
  keep_tokens: key(z.int().min(0), {
    description: 'sd: leading comma-separated tags (not tokenizer tokens) never shuffled or dropped.',
    default: 0,
    section: 'Captions (sd)',
    task: 'sd',
  }),
  caption_dropout_rate: key(rate, {
    description: 'sd: probability of training an example with an empty caption.',
    default: 0,
    section: 'Captions (sd)',
    task: 'sd',
  }),
  caption_tag_dropout_rate: key(rate, {
    description: 'sd: probability of dropping each tag after keep_tokens.',
    default: 0,
    section: 'Captions (sd)',
    task: 'sd',
  }),
  // Diffusion (sd)
  noise_offset: key(z.number().min(0).max(1), {
    description: 'sd: per-channel noise offset for darker darks and brighter brights; 0.05–0.1 is typical.',
    default: 0,
    section: 'Diffusion (sd)',
    task: 'sd',
  }),
  min_snr_gamma: key(z.number().gt(0), {
    description: 'sd: min-SNR loss weighting gamma (5 is the paper value); unset turns it off.',
    section: 'Diffusion (sd)',
    task: 'sd',
  }),
  prediction_type: key(z.enum(PREDICTION_TYPE_SETTINGS), {
    description:
      "sd: what the UNet predicts; auto reads a diffusers folder's scheduler/scheduler_config.json, else epsilon. An SD 2.x 768-v single file says nothing: set v_prediction (kohya's --v_parameterization).",
    default: 'auto',
    section: 'Diffusion (sd)',
    task: 'sd',
  }),
  clip_skip: key(z.int().min(1).max(MAX_CLIP_SKIP), {
    description:
      "sd: take the text encoder's states this many layers from its end (1 = last layer, 2 = the penultimate, as many anime models expect); SD 1.x.",
    default: 1,
    section: 'Diffusion (sd)',
    task: 'sd',
  }),
  // Text (llm)
  max_seq_len: key(z.int().min(16).max(MAX_SEQ_LEN), {
    description: 'llm: tokens per example; longer examples are truncated.',
    default: 2048,
    section: 'Text (llm)',
    task: 'llm',
  }),
  train_on_prompt: key(z.boolean(), {
    description: 'llm: compute the loss on prompt tokens too, not only on responses.',
    default: false,
    section: 'Text (llm)',
    task: 'llm',
  }),
  template: key(z.string().min(1), {
    description: "llm: chat template name; `auto` uses the model's tokenizer_config.json chat_template.",
    default: 'auto',
    section: 'Text (llm)',
    task: 'llm',
  }),
  packing: key(z.boolean(), {
    description: 'llm: pack several short examples into each max_seq_len sequence.',
    default: false,
    section: 'Text (llm)',
    task: 'llm',
  }),
  // Checkpoints and resume
  save_every_n_epochs: key(z.int().min(1), {
    description: 'Save a resumable checkpoint every N epochs.',
    default: 1,
    section: 'Checkpoints',
  }),
  save_every_n_steps: key(z.int().min(1), {
    description: 'Also save a checkpoint every N optimizer steps.',
    section: 'Checkpoints',
  }),
  keep_last_n_checkpoints: key(z.int().min(0), {
    description: 'Checkpoints kept on disk; older ones are deleted. 0 keeps all.',
    default: 3,
    section: 'Checkpoints',
  }),
  resume: key(z.union([z.literal('auto'), path]), {
    description: 'Continue a run: a checkpoint folder, or `auto` for the latest one in output_dir.',
    section: 'Checkpoints',
    path: 'any',
  }),
  // Samples
  sample_prompts: key(z.union([z.array(z.string().min(1)).min(1), path]), {
    description:
      "Prompts to sample with the LoRA while it trains: a list, or a text file with one per line (relative paths start at the config's folder). sd: A1111 prompt syntax, with kohya's per-line options --n (negative prompt), --s (steps), --l (CFG scale), --d (seed), --w, --h; llm: the user's message, answered greedily. Sampled before the first step, every sample_every_n_steps / sample_every_n_epochs and at the end, into <output_dir>/samples.",
    section: 'Samples',
  }),
  sample_every_n_steps: key(z.int().min(1), {
    description: 'Sample every N optimizer steps (needs sample_prompts).',
    section: 'Samples',
  }),
  sample_every_n_epochs: key(z.int().min(1), {
    description: 'Sample at the end of every N-th epoch (needs sample_prompts).',
    section: 'Samples',
  }),
  // Validation
  validation_split: key(z.number().gt(0).lt(1), {
    description:
      'Hold out this fraction of the training data (chosen with seed; images for sd, records for llm) and report its loss as val/loss; at least one item each way.',
    section: 'Validation',
  }),
  validation_data: key(z.union([path, z.array(path).min(1)]), {
    description:
      'Data for the validation loss instead of a split: sd, folders of captioned images; llm, .json / .jsonl files like train_data.',
    section: 'Validation',
    path: 'any',
  }),
  validation_every_n_steps: key(z.int().min(1), {
    description:
      'Evaluate the validation loss every N optimizer steps (needs validation_split or validation_data); unset: at the end of every epoch. Also before the first step and after the last.',
    section: 'Validation',
  }),
  // Logging
  tensorboard: key(z.boolean(), {
    description: 'Write TensorBoard event files to <output_dir>/logs.',
    default: true,
    section: 'Logging',
  }),
};

const isRecord = (value: unknown) => typeof value === 'object' && value !== null && !Array.isArray(value);

type Fields = typeof fields;
export type ConfigKey = keyof Fields;
export const CONFIG_KEYS = Object.keys(fields) as ConfigKey[];

const schemas = Object.fromEntries(CONFIG_KEYS.map((k) => [k, fields[k].schema])) as {
  [K in ConfigKey]: Fields[K]['schema'];
};

/** The fixed defaults, applied when a config is resolved; the JSON Schema, the README table and the templates show these. */
export const DEFAULTS = Object.fromEntries(
  CONFIG_KEYS.filter((k) => fields[k].default !== undefined).map((k) => [k, fields[k].default]),
) as {
  readonly [K in ConfigKey as Fields[K]['default'] extends undefined ? never : K]: Fields[K]['default'];
};

/** Facts about each key that the zod types do not carry. */
export const KEY_INFO = Object.fromEntries(CONFIG_KEYS.map((k) => [k, fields[k].info])) as Readonly<
  Record<ConfigKey, KeyInfo>
>;

/** The zod schema of the YAML config file (the keys as written, before defaults and path resolution). */
export const configSchema = z
  .strictObject(schemas)
  // Cross-key rules run even when single keys failed, so every problem is reported at once.
  .superRefine(crossCheck, { when: (payload) => isRecord(payload.value) })
  .meta({
    title: '@lora training config',
    description: 'One YAML file describes a LoRA training run: `lora train --config <file>`.',
  });

/** A config as written in YAML, after validation: no defaults applied, paths as written. */
export type ConfigInput = z.output<typeof configSchema>;
