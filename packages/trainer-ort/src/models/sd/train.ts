/**
 * One Stable Diffusion LoRA training run, end to end, as the `ort` backend runs `task: sd`:
 * checkpoint + sizes + CLIP tokenizer → dataset (buckets, captions) → latents (cached on disk or
 * encoded per batch) → the training loop → the kohya (or diffusers) adapter with its metadata.
 */

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { VARIANTS } from '@lora/adapters';
import {
  resolveTargetModules,
  type SdConfig,
  type TrainingResult,
  type TrainingRun,
  type WarningCode,
} from '@lora/config';
import {
  type CaptionOptions,
  checkDataset,
  createBucketSelector,
  type DatasetImage,
  datasetTagFrequency,
  ImageDataset,
  type ImageDatasetOptions,
  type Size,
  validationIndices,
} from '@lora/dataset';
import { Graph } from '@lora/engine';
import { type AdapterState, type ModelFamily, type PreparedRun, runFamily } from '../../train/run.ts';
import { GRAPHS_FOLDER } from '../../train/step-graphs.ts';
import { type MemoryOptions, memoryOptions } from '../memory.ts';
import { ModelError } from '../model-error.ts';
import {
  kohyaPaths,
  magnitudesAsStored,
  readSdInitAdapter,
  type SdAdapterLayout,
  type SdBucketInfo,
  type SdNetwork,
  sdLoraAdapter,
  sdTrainingMetadata,
  writeSdAdapter,
} from './adapter.ts';
import { type SdBatch, SdBatchSource, SdValidationBatches } from './batches.ts';
import { openSdCheckpoint, type SdCheckpoint } from './checkpoint.ts';
import { SD_FAMILY_NAMES, type SdFamily } from './config.ts';
import { BESIDE_THE_MODEL } from './find-tokenizer.ts';
import type { SdComponent } from './keys.ts';
import { EncodedLatents, LatentCache, type LatentSource, VaeEncoder, vaeFingerprint } from './latents.ts';
import { type ConvNetwork, isLoconConv } from './layers.ts';
import { ClipTokenizer, OPENCLIP_PAD, singleFileConfig } from './model-files.ts';
import { VALIDATION_TIMESTEPS } from './noise.ts';
import { sdPrediction } from './prediction.ts';
import { writeImageSamples } from './samples.ts';
import { TextConditioningCache } from './text-cache.ts';
import { SdTrainableModel, sdShapeKey } from './trainable.ts';

export type { SdAdapterLayout } from './adapter.ts';

export interface TrainSdOptions {
  /** `kohya` (default): `<output_name>.safetensors` with `ss_*` metadata; `diffusers`: `pytorch_lora_weights.safetensors`. */
  layout?: SdAdapterLayout;
}

/** Where the text-encoder output cache lives in the run folder. */
const TEXT_CACHE = join('cache', 'text');

/** Stable Diffusion 1.x, 2.x and XL: a single file or diffusers folder, captioned images, a kohya (or diffusers) LoRA. */
export function sdFamily(options: TrainSdOptions = {}): ModelFamily {
  return { task: 'sd', prepare: (run) => prepareSd(run, options) };
}

/**
 * Trains a Stable Diffusion 1.x / 2.x LoRA as `run.config` says, reporting through `run.emit` (step,
 * epoch, checkpoint and warning events, then `done`), and resolves with the run's files — also
 * when `run.signal` stops it early (a resumable checkpoint and the adapter so far are written).
 */
export function trainSd(run: TrainingRun, options: TrainSdOptions = {}): Promise<TrainingResult> {
  return runFamily(run, sdFamily(options));
}

async function prepareSd(run: TrainingRun, options: TrainSdOptions): Promise<PreparedRun<SdBatch>> {
  const { config, outputDir, logger } = run;
  if (config.task !== 'sd') {
    throw new ModelError('E_MODEL_CONFIG', `trainSd trains task: sd, the config says task: ${config.task}`);
  }
  if (config.random_crop && config.cache_latents) {
    throw new ModelError(
      'E_MODEL_CONFIG',
      'random_crop crops each image anew every epoch, so its latents cannot be cached; set cache_latents: false',
    );
  }
  const warn = (code: WarningCode, message: string) => run.emit({ type: 'warning', code, message });
  const startedAt = Date.now() / 1000;
  const targets = resolveTargetModules(config);

  const base = config.base_model;
  const opened = await openSdCheckpoint(base, await singleFileConfig(base));
  const { family } = opened.checkpoint;
  let latents: LatentSource | undefined;
  const close = async () => {
    await latents?.dispose();
    await opened.close();
  };
  try {
    const { checkpoint } = opened;
    const layers = checkpoint.config.textEncoder.numLayers;
    if (config.clip_skip > layers) {
      throw new ModelError(
        'E_MODEL_CONFIG',
        `clip_skip ${config.clip_skip} skips more than the ${layers} layers of this text encoder; set clip_skip from 1 to ${layers}`,
      );
    }
    const prediction = await sdPrediction(config.prediction_type, base, family);
    if (prediction.mismatch) warn('prediction_mismatch', prediction.mismatch);
    logger.info(
      `sd: ${SD_FAMILY_NAMES[family]} (${checkpoint.familyEvidence}); the UNet predicts ${prediction.type} (${prediction.source})`,
    );
    const tokenizer = await ClipTokenizer.forModel(
      base,
      checkpoint.config.textEncoder.maxPositions,
      config.tokenizer,
      family,
    );
    // SDXL's second text encoder reads the same vocabulary, padded with "!" (kohya, open_clip).
    const tokenizer2 =
      family === 'sdxl'
        ? await ClipTokenizer.forModel(base, tokenizer.length, config.tokenizer, family, OPENCLIP_PAD)
        : undefined;
    if (family === 'sdxl') checkSdxlSettings(config, logger);
    if (tokenizer.foundIn !== BESIDE_THE_MODEL)
      logger.info(`CLIP tokenizer: ${tokenizer.source} (${tokenizer.foundIn})`);
    const { images, validationImages } = await splitImages(await trainingImages(config, warn), config, warn);
    reportLongCaptions(images, tokenizer, warn);
    const settings = imageDatasetOptions(config);
    const dataset = new ImageDataset(images, settings);
    // Scored as they are: each image once, centred, its caption unchanged.
    const validationDataset =
      validationImages.length === 0
        ? undefined
        : new ImageDataset(validationImages, { ...unaugmented(settings), flipAug: false, randomCrop: false });

    const encoder = new VaeEncoder(checkpoint, {
      folder: join(outputDir, GRAPHS_FOLDER),
      device: config.device,
      onNotice: (message) => warn('device_fallback', message),
    });
    if (config.cache_latents) {
      const cache = new LatentCache(
        await latentCacheFolder(config, outputDir, warn),
        [...images, ...validationImages],
        encoder,
        await vaeFingerprint(checkpoint),
        settings,
      );
      latents = cache;
      const stats = await cache.fill();
      logger.info(
        `latents: ${stats.encoded} encoded, ${stats.reused} read from the cache in ${cache.folder}`,
      );
    } else {
      latents = new EncodedLatents(encoder);
    }

    const layout = options.layout ?? 'kohya';
    const network = sdNetwork(config, layout);
    const conv =
      config.conv_rank === undefined ? undefined : { rank: config.conv_rank, alpha: config.conv_alpha! };
    const moduleNetwork = sdModuleNetwork(network, conv);
    const lora = {
      ...network,
      ...(conv ? { conv } : {}),
      seed: config.seed,
      ...(config.lora_dropout > 0 ? { dropout: config.lora_dropout } : {}),
      unet: targets.task === 'sd' ? targets.unet : [],
      textEncoder: targets.task === 'sd' ? targets.text_encoder : [],
      // SDXL trains both text encoders' modules of these names (kohya's --network_train_text_encoder).
      textEncoder2: targets.task === 'sd' && family === 'sdxl' ? targets.text_encoder : [],
    };
    reportPartialAttention(family, lora.textEncoder, warn);
    const text = await textCache(
      checkpoint,
      [dataset, validationDataset],
      lora.textEncoder.length + lora.textEncoder2.length > 0,
      { tokenizer, tokenizer2, config, outputDir, logger, warn },
    );
    const model = new SdTrainableModel(checkpoint, {
      prediction: prediction.type,
      clipSkip: config.clip_skip,
      lora,
      memory: memoryOptions(config),
      ...(config.min_snr_gamma === undefined ? {} : { minSnrGamma: config.min_snr_gamma }),
      ...(text ? { cachedText: true } : {}),
    });
    const latentShape = (bucket: Size) => encoder.latentShape(bucket);
    const initial = config.init_adapter
      ? await initAdapterValues(
          config.init_adapter,
          model,
          sdShapeKey(latentShape(dataset.buckets[0]!.bucket)),
          moduleNetwork,
        )
      : undefined;
    const trained = initial ? new SdTrainableModel(checkpoint, { ...model.options, initial }) : model;
    const inputs = {
      latents,
      tokenizer,
      latentShape,
      ...(tokenizer2 ? { tokenizer2 } : {}),
      ...(text ? { text } : {}),
    };
    const data = new SdBatchSource(dataset, inputs, { seed: config.seed, noiseOffset: config.noise_offset });
    const bucketList = dataset.buckets.map(
      (b) => `${b.bucket.join('x')} (${b.samples} sample(s), latents ${latentShape(b.bucket).join('×')})`,
    );
    logger.info(
      `sd: ${images.length} image(s) in ${dataset.buckets.length} bucket(s): ${bucketList.join(', ')}; ` +
        `${dataset.stepsPerEpoch} micro-batch(es) per epoch; ${VARIANTS[config.network].name}${config.use_rslora ? ' (rsLoRA scale)' : ''} rank ${config.lora_rank} on UNet ${lora.unet.join(', ')}` +
        (lora.textEncoder.length > 0 ? ` and text encoder ${lora.textEncoder.join(', ')}` : ''),
    );

    // The LoRA of some values as its files hold it (DoRA magnitudes in the checkpoint's weight rank).
    const adapterOf = (values: ReadonlyMap<string, { readonly data: Float32Array } | Float32Array>) =>
      magnitudesAsStored(
        sdLoraAdapter(
          trained.modules.flatMap((m) => m.layer.parameters),
          values,
          moduleNetwork,
        ),
        (path) => {
          const dot = path.indexOf('.');
          return checkpoint.storedShape(path.slice(0, dot) as SdComponent, `${path.slice(dot + 1)}.weight`);
        },
      );
    const writeAdapter = async (result: AdapterState, folder: string) => {
      const stepsPerEpoch = Math.ceil(data.microBatchesPerEpoch / config.gradient_accumulation_steps);
      const metadata = sdTrainingMetadata(config, {
        startedAt,
        finishedAt: Date.now() / 1000,
        steps: result.step,
        epoch: result.epoch,
        maxSteps: config.max_steps ?? (config.epochs ?? 1) * stepsPerEpoch,
        numEpochs: config.epochs ?? Math.ceil((config.max_steps ?? 0) / stepsPerEpoch),
        batchesPerEpoch: data.microBatchesPerEpoch,
        mixedPrecision: result.precision === 'fp32' ? 'no' : result.precision,
        numTrainImages: images.reduce((sum, image) => sum + image.repeats, 0),
        tagFrequency: Object.fromEntries(
          Object.entries(datasetTagFrequency(images)).map(([name, f]) => [name, f.counts]),
        ),
        datasetDirs: datasetDirs(images),
        bucketInfo: bucketInfo(dataset, settings),
        family,
        prediction: prediction.type,
      });
      const trainedAdapter = adapterOf(result.values);
      // kohya names SDXL's UNet modules by their LDM paths; diffusers keys keep the diffusers ones.
      const named = layout === 'kohya' ? kohyaPaths(trainedAdapter, trained.modules) : trainedAdapter;
      const adapter = await writeSdAdapter(folder, named, {
        layout,
        outputName: config.output_name,
        metadata,
      });
      return { adapter };
    };
    const memory = {
      dims: { batch: config.batch_size },
      modelWith: (options: MemoryOptions) =>
        new SdTrainableModel(checkpoint, { ...trained.options, memory: options }),
    };
    const sample = async (
      prompts: readonly string[],
      values: ReadonlyMap<string, Float32Array>,
      folder: string,
      name: string,
    ) => {
      const [width, height] = config.resolution;
      return writeImageSamples(base, tokenizer, adapterOf(values), prompts, {
        folder,
        name,
        defaults: { seed: config.seed, width, height },
        clipSkip: config.clip_skip,
        modelConfig: checkpoint.config,
        prediction: prediction.type,
      });
    };
    const { dropout: _, ...undropped } = lora;
    const validation = validationDataset && {
      model: new SdTrainableModel(checkpoint, { ...trained.options, lora: undropped }),
      data: new SdValidationBatches(validationDataset, inputs, config.seed),
      description: `${validationImages.length} ${config.validation_split === undefined ? '' : 'held-out '}image(s) × ${VALIDATION_TIMESTEPS.length} timesteps (${VALIDATION_TIMESTEPS.join(', ')}) with fixed noise`,
    };
    return {
      model: trained,
      data,
      writeAdapter,
      close,
      memory,
      sample,
      ...(validation ? { validation } : {}),
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * A1111 applies an SD 2.x text-encoder layer's q, k and v LoRA to OpenCLIP's fused in_proj only
 * when q, k, v and out_proj all have modules (extensions-builtin/Lora networks.py); ComfyUI applies
 * each. Training some of them is said once.
 */
function reportPartialAttention(
  family: SdFamily,
  textEncoder: readonly string[],
  warn: (code: WarningCode, message: string) => void,
): void {
  const attention = ['q_proj', 'k_proj', 'v_proj', 'out_proj'];
  const trained = attention.filter((m) => textEncoder.includes(m));
  if (family === 'sd1' || trained.length === 0 || trained.length === attention.length) return;
  warn(
    'partial_attention',
    `the text encoder trains ${trained.join(', ')} of its attention; on ${SD_FAMILY_NAMES[family]} (OpenCLIP's fused in_proj), A1111 applies text-encoder attention LoRA only when q_proj, k_proj, v_proj and out_proj are all trained (ComfyUI applies each), so add ${attention.filter((m) => !trained.includes(m)).join(', ')} to target_modules for a LoRA A1111 applies in full`,
  );
}

/**
 * What SDXL asks of a run beyond SD's: its VAE runs in float32 whatever mixed_precision says,
 * since SDXL's VAE overflows in fp16 (the run log says so). Its
 * buckets need steps of a multiple of 32 (kohya's `verify_bucket_reso_steps(32)`), which the
 * config's multiple of 64 already is.
 */
function checkSdxlSettings(config: SdConfig, logger: TrainingRun['logger']): void {
  if (config.mixed_precision !== 'no') {
    logger.info(
      `sd: the VAE encodes in fp32 whatever mixed_precision (${config.mixed_precision}) says: SDXL's VAE overflows in fp16`,
    );
  }
}

/**
 * The text-encoder output cache, filled with every training and validation caption, when no text
 * encoder is trained and the captions never change (kohya's --cache_text_encoder_outputs, which
 * needs the same); undefined otherwise, and the run says why not when a text encoder is frozen.
 */
async function textCache(
  checkpoint: SdCheckpoint,
  datasets: readonly (ImageDataset | undefined)[],
  trainsTextEncoder: boolean,
  run: {
    tokenizer: ClipTokenizer;
    tokenizer2: ClipTokenizer | undefined;
    config: SdConfig;
    outputDir: string;
    logger: TrainingRun['logger'];
    warn: (code: WarningCode, message: string) => void;
  },
): Promise<TextConditioningCache | undefined> {
  if (trainsTextEncoder) return undefined;
  const captions = datasets.map((dataset) => dataset?.fixedCaptions());
  // The validation dataset is never augmented; the training one decides.
  if (captions[0] === undefined) {
    run.logger.info(
      'text encoders: run every step, as the captions change from epoch to epoch (shuffle_caption, caption_dropout_rate, caption_tag_dropout_rate); without those their outputs would be computed once',
    );
    return undefined;
  }
  const cache = await TextConditioningCache.open(checkpoint, run.tokenizer, run.tokenizer2, {
    folder: join(run.outputDir, TEXT_CACHE),
    graphs: join(run.outputDir, GRAPHS_FOLDER),
    device: run.config.device,
    clipSkip: run.config.clip_skip,
    onNotice: (message) => run.warn('device_fallback', message),
  });
  const stats = await cache.fill(captions.flatMap((list) => list ?? []));
  run.logger.info(
    `text encoders: not trained, so their outputs are computed once per caption and the training graph leaves them out (${stats.encoded} encoded, ${stats.reused} read from ${join(run.outputDir, TEXT_CACHE)})`,
  );
  return cache;
}

/** Captions longer than the text encoder's window lose their end in every step: said once. */
function reportLongCaptions(
  images: readonly DatasetImage[],
  tokenizer: ClipTokenizer,
  warn: (code: WarningCode, message: string) => void,
): void {
  const { count, window, longest } = tokenizer.longCaptions(images);
  if (longest === undefined) return;
  warn(
    'long_captions',
    `${count} of ${images.length} caption(s) are longer than the text encoder's ${window} tokens and lose their end in training (the longest, ${longest.path}, has ${longest.tokens}); put what matters first (**core** tags stay first) or shorten them`,
  );
}

/** The images of the dataset folder, with a warning for any that will be skipped. */
async function trainingImages(
  config: SdConfig,
  warn: (code: WarningCode, message: string) => void,
): Promise<DatasetImage[]> {
  const report = await checkDataset({
    dirs: [config.train_data_dir],
    ...(config.metadata_path ? { metadataPath: config.metadata_path } : {}),
    captionExtension: config.caption_extension,
    followLinksOutside: config.follow_symlinks,
    resolution: config.resolution,
  });
  const { imagesSkipped, uncaptioned } = report.summary;
  if (imagesSkipped > 0) {
    warn(
      'images_skipped',
      `${imagesSkipped} image(s) in ${config.train_data_dir} cannot be read and are skipped; \`lora dataset check\` lists them`,
    );
  }
  if (uncaptioned > 0) {
    warn('uncaptioned_images', `${uncaptioned} image(s) have no caption and train with an empty one`);
  }
  return report.images;
}

/**
 * The training images and the validation images: a seeded `validation_split` of the dataset, or
 * the images of the `validation_data` folders; validation images count once, whatever their
 * folder's repeats.
 */
async function splitImages(
  all: DatasetImage[],
  config: SdConfig,
  warn: (code: WarningCode, message: string) => void,
): Promise<{ images: DatasetImage[]; validationImages: DatasetImage[] }> {
  const once = (images: DatasetImage[]) => images.map((image) => ({ ...image, repeats: 1 }));
  if (config.validation_split !== undefined) {
    const held = validationIndices(
      all.length,
      config.validation_split,
      config.seed,
      `images in ${config.train_data_dir}`,
    );
    return {
      images: all.filter((_, i) => !held.has(i)),
      validationImages: once(all.filter((_, i) => held.has(i))),
    };
  }
  if (config.validation_data === undefined) return { images: all, validationImages: [] };
  const report = await checkDataset({
    dirs: config.validation_data,
    captionExtension: config.caption_extension,
    followLinksOutside: config.follow_symlinks,
    resolution: config.resolution,
  });
  if (report.summary.imagesSkipped > 0) {
    warn(
      'images_skipped',
      `${report.summary.imagesSkipped} image(s) in validation_data cannot be read and are skipped; \`lora dataset check\` lists them`,
    );
  }
  if (report.images.length === 0) {
    throw new ModelError(
      'E_MODEL_CONFIG',
      `validation_data ${config.validation_data.join(', ')} holds no readable image; give folders of captioned images, or use validation_split`,
    );
  }
  return { images: all, validationImages: once(report.images) };
}

/**
 * The image dataset's settings: kohya's aspect buckets (each bucket size trains through its own
 * graph), crops, flips and per-epoch caption augmentation.
 */
function imageDatasetOptions(config: SdConfig): ImageDatasetOptions {
  const caption: CaptionOptions | undefined =
    config.shuffle_caption || config.caption_dropout_rate > 0 || config.caption_tag_dropout_rate > 0
      ? {
          shuffle: config.shuffle_caption,
          keepTokens: config.keep_tokens,
          tagDropout: config.caption_tag_dropout_rate,
          captionDropout: config.caption_dropout_rate,
        }
      : undefined;
  return {
    resolution: config.resolution,
    enableBucket: config.enable_bucket,
    minBucketReso: config.min_bucket_reso,
    maxBucketReso: config.max_bucket_reso,
    bucketResoSteps: config.bucket_reso_steps,
    batchSize: config.batch_size,
    seed: config.seed,
    flipAug: config.flip_aug,
    randomCrop: config.random_crop,
    ...(caption ? { caption } : {}),
  };
}

function unaugmented({ caption: _, ...settings }: ImageDatasetOptions): ImageDatasetOptions {
  return settings;
}

/**
 * sd-scripts' `ss_bucket_info`: each bucket's resolution and sample count (images × repeats),
 * numbered in bucket order, and with buckets on the mean |bucket aspect − image aspect|.
 */
function bucketInfo(dataset: ImageDataset, settings: ImageDatasetOptions): SdBucketInfo {
  const buckets = Object.fromEntries(
    dataset.buckets.map((b, i) => [i, { resolution: [...b.bucket], count: b.samples }]),
  );
  if (!settings.enableBucket) return { buckets };
  const selector = createBucketSelector(settings);
  const errors = dataset.images.map((image) =>
    Math.abs(selector.select(image.width, image.height).aspectError),
  );
  return { buckets, mean_img_ar_error: errors.reduce((a, b) => a + b, 0) / errors.length };
}

/** Latents live beside the images (as kohya's `.npz` files do), or in the run folder when that is read-only. */
async function latentCacheFolder(
  config: SdConfig,
  outputDir: string,
  warn: (code: WarningCode, message: string) => void,
): Promise<string> {
  const beside = join(config.train_data_dir, '.cache', 'latents');
  try {
    await mkdir(beside, { recursive: true });
    return beside;
  } catch (error) {
    const fallback = join(outputDir, 'cache', 'latents');
    warn(
      'latent_cache_moved',
      `cannot write the latent cache to ${beside} (${(error as Error).message}); using ${fallback}, which the next run in another folder will not find`,
    );
    return fallback;
  }
}

function datasetDirs(
  images: readonly DatasetImage[],
): Record<string, { n_repeats: number; img_count: number }> {
  const dirs: Record<string, { n_repeats: number; img_count: number }> = {};
  for (const image of images) {
    const entry = dirs[image.dataset] ?? { n_repeats: image.repeats, img_count: 0 };
    entry.img_count++;
    dirs[image.dataset] = entry;
  }
  return dirs;
}

/**
 * Builds the loss graph of one shape once to learn the parameter names and shapes (the same for
 * every shape), then reads the adapter for them.
 */
async function initAdapterValues(
  path: string,
  model: SdTrainableModel,
  shapeKey: string,
  network: SdNetwork | ((path: string) => SdNetwork),
): Promise<Map<string, Float32Array>> {
  const parameters = model.build(new Graph('parameters'), { computeDtype: 'float32', shapeKey }).parameters;
  return readSdInitAdapter(path, parameters, network);
}

/** Each module's settings: LoCon's 3×3 convolutions take conv_rank and conv_alpha. */
function sdModuleNetwork(network: SdNetwork, conv: ConvNetwork | undefined): (path: string) => SdNetwork {
  const convNetwork = conv && { ...network, ...conv, keys: { rank: 'conv_rank', alpha: 'conv_alpha' } };
  return (path) => (convNetwork && isLoconConv(path) ? convNetwork : network);
}

/**
 * The variant settings of an SD run, whose layout must hold the variant. DoRA's magnitudes are per
 * input column, the form A1111 applies (it reads `dora_scale` no other way) and ComfyUI tells by
 * its shape.
 */
function sdNetwork(config: SdConfig, layout: SdAdapterLayout): SdNetwork & { normAxis?: 'input' } {
  if (VARIANTS[config.network].keys[layout] === undefined) {
    throw new ModelError(
      'E_MODEL_CONFIG',
      `network: ${config.network} has no ${layout} form (${VARIANTS[config.network].name} files are ${Object.keys(VARIANTS[config.network].keys).join(' or ')}); write the kohya layout, which A1111 and ComfyUI load`,
    );
  }
  return {
    network: config.network,
    rank: config.lora_rank,
    alpha: config.lora_alpha,
    ...(config.use_rslora ? { rslora: true } : {}),
    ...(config.network === 'dora' ? { normAxis: 'input' as const } : {}),
  };
}
