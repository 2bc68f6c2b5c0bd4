/**
 * The trained SD LoRA as a file A1111, ComfyUI and sd-webui-additional-networks load as it is:
 * kohya keys (`lora_unet_…` / `lora_te_…` from the diffusers module paths, `.lora_down.weight`,
 * `.lora_up.weight`, always `.alpha`), sd-scripts' `ss_*` metadata (all strings) and the
 * `sshs_*` hashes; or the diffusers layout (`pytorch_lora_weights.safetensors`). Also reads an
 * earlier adapter back as starting values (`init_adapter`).
 */
import { basename, join } from 'node:path';
import {
  AdapterError,
  adapterFromParameters,
  kohyaHashes,
  kohyaMetadata,
  type LoraAdapter,
  loraFromTensors,
  type ModuleNetwork,
  type PythonValue,
  parameterValues,
  pythonFloat,
  splitParameterName,
  toDiffusers,
  toKohya,
  VARIANTS,
} from '@lora/adapters';
import type { PredictionType, SdConfig } from '@lora/config';
import { readSafetensors, writeSafetensors } from '@lora/safetensors';
import type { LoraParameter } from '../../lora.ts';
import { ModelError } from '../model-error.ts';
import type { SdFamily } from './config.ts';
import type { SdLoraModule } from './layers.ts';

export type SdAdapterLayout = 'kohya' | 'diffusers';

/** diffusers' file name for an SD LoRA (`LORA_WEIGHT_NAME_SAFE`). */
export const DIFFUSERS_LORA_FILE = 'pytorch_lora_weights.safetensors';

/** What the adapter's modules are: the variant and its settings. */
export type SdNetwork = ModuleNetwork;

/** The trained values (float32, by parameter name) as a layout-independent adapter. */
export function sdLoraAdapter(
  parameters: readonly Pick<LoraParameter, 'name' | 'shape'>[],
  values: ReadonlyMap<string, { readonly data: Float32Array } | Float32Array>,
  network: SdNetwork | ((path: string) => SdNetwork),
): LoraAdapter {
  const data = new Map<string, Float32Array>();
  for (const [name, value] of values) data.set(name, value instanceof Float32Array ? value : value.data);
  try {
    return adapterFromParameters(parameters, data, network);
  } catch (error) {
    throw new ModelError(
      'E_MODEL_ADAPTER',
      `the trained adapter cannot be written: ${(error as Error).message}`,
    );
  }
}

/**
 * The adapter with each DoRA magnitude in the rank of the weight it scales in the checkpoint:
 * A1111 and ComfyUI divide `dora_scale` by a norm shaped like that weight, so a 1×1 convolution
 * (`proj_in` / `proj_out` of SD 1.x, trained here as a linear layer) needs `[1, in, 1, 1]`, not
 * `[1, in]` (which broadcasts into a wrong shape there).
 */
export function magnitudesAsStored(
  adapter: LoraAdapter,
  storedShape: (modulePath: string) => readonly number[] | undefined,
): LoraAdapter {
  return new Map(
    [...adapter].map(([path, module]) => {
      const magnitude = module.tensors['magnitude'];
      const rank = storedShape(path)?.length ?? 0;
      if (!magnitude || rank <= magnitude.shape.length) return [path, module];
      const shape = [...magnitude.shape, ...new Array<number>(rank - magnitude.shape.length).fill(1)];
      return [path, { ...module, tensors: { ...module.tensors, magnitude: { ...magnitude, shape } } }];
    }),
  );
}

/**
 * The adapter keyed by the module paths of kohya's own model, which its file names flatten:
 * SDXL's UNet modules by their LDM paths (`unet.input_blocks.4.1.…`, kohya's sdxl_original_unet),
 * everything else as it is.
 */
export function kohyaPaths(
  adapter: LoraAdapter,
  modules: readonly Pick<SdLoraModule, 'component' | 'path' | 'kohyaPath'>[],
): LoraAdapter {
  const renamed = new Map(modules.map((m) => [`${m.component}.${m.path}`, `${m.component}.${m.kohyaPath}`]));
  return new Map([...adapter].map(([path, module]) => [renamed.get(path) ?? path, module]));
}

/**
 * Writes the adapter into `folder`: kohya keys in `<outputName>.safetensors` with `metadata`
 * (`ss_*`) plus `sshs_model_hash` / `sshs_legacy_hash`, or the diffusers layout in
 * `pytorch_lora_weights.safetensors` with `{"format": "pt"}`. Returns the file's path.
 */
export async function writeSdAdapter(
  folder: string,
  adapter: LoraAdapter,
  options: { layout: SdAdapterLayout; outputName: string; metadata: Readonly<Record<string, string>> },
): Promise<string> {
  if (options.layout === 'diffusers') {
    const path = join(folder, DIFFUSERS_LORA_FILE);
    await writeSafetensors(path, toDiffusers(adapter), { format: 'pt' });
    return path;
  }
  const tensors = toKohya(adapter);
  const path = join(folder, `${options.outputName}.safetensors`);
  await writeSafetensors(path, tensors, {
    ...options.metadata,
    ...kohyaHashes(tensors, options.metadata),
  });
  return path;
}

/** What `ss_*` metadata records beyond the config: facts known once training has run. */
export interface SdRunFacts {
  /** Unix seconds, as sd-scripts' `time.time()`. */
  startedAt: number;
  finishedAt: number;
  steps: number;
  epoch: number;
  /** Optimizer steps the run was set to take, and the epochs they make. */
  maxSteps: number;
  numEpochs: number;
  batchesPerEpoch: number;
  /** fp16 / bf16 / no, as sd-scripts writes `mixed_precision`. */
  mixedPrecision: string;
  /** Images × repeats. */
  numTrainImages: number;
  /** Tag counts per dataset folder, markup removed. */
  tagFrequency: Readonly<Record<string, Readonly<Record<string, number>>>>;
  /** Repeats and image count per dataset folder. */
  datasetDirs: Readonly<Record<string, { n_repeats: number; img_count: number }>>;
  /** The aspect buckets trained (`ss_bucket_info`). */
  bucketInfo: SdBucketInfo;
  /** The base model's family and what its UNet predicts (kohya's --v2 and --v_parameterization). */
  family: SdFamily;
  prediction: PredictionType;
}

/** sd-scripts' `ss_bucket_info`: per bucket `[width, height]` and samples; the mean aspect error with buckets on. */
export interface SdBucketInfo {
  buckets: Record<number, { resolution: number[]; count: number }>;
  mean_img_ar_error?: number;
}

/** sd-scripts' `ss_*` keys (train_network.py) for this run, every value a string. */
export function sdTrainingMetadata(config: SdConfig, facts: SdRunFacts): Record<string, string> {
  const optional = (value: number | undefined) =>
    value === undefined || value === 0 ? null : pythonFloat(value);
  const textEncoderLr = config.train_text_encoder ? (config.text_encoder_lr ?? config.learning_rate) : null;
  const secondLr = config.text_encoder_2_lr ?? textEncoderLr;
  // SDXL with two different rates: kohya's --text_encoder_lr takes one per encoder, a list.
  const textEncoderLrs =
    textEncoderLr === null
      ? null
      : facts.family === 'sdxl' && secondLr !== null && secondLr !== textEncoderLr
        ? `[${pythonFloat(textEncoderLr)}, ${pythonFloat(secondLr)}]`
        : pythonFloat(textEncoderLr);
  const [beta1, beta2] = config.betas;
  const network = VARIANTS[config.network].kohyaNetwork({
    rank: config.lora_rank,
    alpha: config.lora_alpha,
    // SD runs keep DoRA's magnitudes per input column (see train.ts).
    normAxis: 'input',
  });
  // kohya's --network_args as written on its command line (strings); sd-scripts then adds the
  // dropout for LyCORIS (`null` when unset).
  const conv =
    config.conv_rank === undefined
      ? undefined
      : { conv_dim: String(config.conv_rank), conv_alpha: String(config.conv_alpha) };
  const networkArgs =
    network.args || conv ? { ...network.args, ...conv, dropout: optional(config.lora_dropout) } : undefined;
  const values: Record<string, PythonValue> = {
    ss_output_name: config.output_name,
    ss_network_module: network.module,
    ...(networkArgs ? { ss_network_args: networkArgs } : {}),
    ss_network_dim: config.lora_rank,
    // rsLoRA files store alpha · √rank, so alpha / rank gives the scale trained with (as LyCORIS writes it).
    ss_network_alpha: pythonFloat(
      config.use_rslora ? config.lora_alpha * Math.sqrt(config.lora_rank) : config.lora_alpha,
    ),
    ss_network_dropout: optional(config.lora_dropout),
    // model_util.get_model_version_str_for_sd1_sd2: sd_v1 / sd_v2, `_v` for v-parameterization;
    // sdxl_model_util.MODEL_VERSION_SDXL_BASE_V1_0 for SDXL.
    ss_base_model_version:
      facts.family === 'sdxl'
        ? 'sdxl_base_v1-0'
        : `sd_v${facts.family === 'sd2' ? 2 : 1}${facts.prediction === 'v_prediction' ? '_v' : ''}`,
    ss_v2: facts.family === 'sd2',
    ss_sd_model_name: basename(config.base_model),
    ss_training_started_at: facts.startedAt,
    ss_training_finished_at: facts.finishedAt,
    ss_learning_rate: pythonFloat(config.learning_rate),
    ss_unet_lr: pythonFloat(config.learning_rate),
    ss_text_encoder_lr: textEncoderLrs,
    ss_num_train_images: facts.numTrainImages,
    ss_num_reg_images: 0,
    ss_num_batches_per_epoch: facts.batchesPerEpoch,
    ss_num_epochs: facts.numEpochs,
    ss_batch_size_per_device: config.batch_size,
    ss_total_batch_size: config.batch_size * config.gradient_accumulation_steps,
    ss_gradient_accumulation_steps: config.gradient_accumulation_steps,
    ss_gradient_checkpointing: config.gradient_checkpointing,
    ss_max_train_steps: facts.maxSteps,
    ss_steps: facts.steps,
    ss_epoch: facts.epoch,
    ss_lr_warmup_steps: config.warmup_steps ?? 0,
    ss_lr_scheduler: config.lr_scheduler,
    ss_optimizer: `torch.optim.adamw.AdamW(weight_decay=${config.weight_decay},betas=(${beta1}, ${beta2}),eps=${pythonFloat(config.eps)})`,
    ss_max_grad_norm: pythonFloat(config.max_grad_norm),
    ss_mixed_precision: facts.mixedPrecision,
    ss_full_fp16: false,
    ss_seed: config.seed,
    // SDXL has no clip_skip (kohya warns it "will be unexpected" and writes its unset None).
    ss_clip_skip: facts.family === 'sdxl' ? null : config.clip_skip,
    ss_max_token_length: null,
    ss_cache_latents: config.cache_latents,
    ss_noise_offset: optional(config.noise_offset),
    ss_min_snr_gamma: optional(config.min_snr_gamma),
    ss_resolution: `(${config.resolution[0]}, ${config.resolution[1]})`,
    ss_enable_bucket: config.enable_bucket,
    ss_min_bucket_reso: config.min_bucket_reso,
    ss_max_bucket_reso: config.max_bucket_reso,
    ss_bucket_no_upscale: false,
    ss_color_aug: false,
    ss_flip_aug: config.flip_aug,
    ss_random_crop: config.random_crop,
    ss_shuffle_caption: config.shuffle_caption,
    ss_keep_tokens: config.keep_tokens,
    ss_caption_dropout_rate: pythonFloat(config.caption_dropout_rate),
    ss_caption_tag_dropout_rate: pythonFloat(config.caption_tag_dropout_rate),
    ss_dataset_dirs: facts.datasetDirs,
    ss_tag_frequency: facts.tagFrequency,
    ss_bucket_info: { ...facts.bucketInfo },
  };
  return kohyaMetadata(values);
}

/**
 * Starting values for `parameters` from an earlier SD LoRA (kohya, diffusers or PEFT keys). The
 * file must hold exactly the modules being trained, of the same variant, with their shapes and
 * alpha; the message says which setting to change when it does not.
 */
export async function readSdInitAdapter(
  path: string,
  parameters: readonly Pick<LoraParameter, 'name' | 'shape'>[],
  network: SdNetwork | ((path: string) => SdNetwork),
): Promise<Map<string, Float32Array>> {
  const { tensors } = await readSafetensors(path);
  const id = (typeof network === 'function' ? network('') : network).network;
  const modules = new Set(parameters.map((p) => splitParameterName(p.name, id)?.path ?? p.name));
  const fail = (message: string) => new ModelError('E_MODEL_ADAPTER', `init_adapter ${path}: ${message}`);
  const adapter = loraFromTensors(tensors, { modulePaths: modules });
  const missing = [...modules].filter((m) => !adapter.has(m));
  const extra = [...adapter.keys()].filter((m) => !modules.has(m));
  if (missing.length > 0 || extra.length > 0) {
    throw fail(
      `its modules differ from the ones this config trains (${missing.length} missing, e.g. ${missing[0] ?? '-'}; ` +
        `${extra.length} extra, e.g. ${extra[0] ?? '-'}); set target_modules and train_text_encoder as they were`,
    );
  }
  try {
    return parameterValues(adapter, parameters, network);
  } catch (error) {
    if (!AdapterError.isInstance(error)) throw error;
    throw fail(error.message);
  }
}
