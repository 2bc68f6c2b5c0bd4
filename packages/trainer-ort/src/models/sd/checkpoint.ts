/**
 * Stable Diffusion weights by their diffusers names, from an original LDM single-file
 * checkpoint or a diffusers folder. Nothing is read or copied: each weight becomes an
 * external-data initializer pointing into the user's file, in the file's dtype, cast to float32
 * in the graph. The checkpoint records which tensors the graphs used, so a caller can prove that
 * every tensor of the models was consumed (and learn which were not).
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { unetKeyToDiffusers } from '@lora/adapters';
import type { DType, Graph, Tensor } from '@lora/engine';
import { reshape, transpose } from '@lora/engine';
import type { SafetensorsFile, SafetensorsHeader, TensorInfo } from '@lora/safetensors';
import { openWeightsFile, safetensorsWeight } from '../../weights.ts';
import { ModelError } from '../model-error.ts';
import {
  parseClipTextConfig,
  parseUnetConfig,
  parseVaeConfig,
  SD_FAMILY_NAMES,
  type SdFamily,
  type SdModelConfig,
  sdFamilyOf,
} from './config.ts';
import {
  type ClipTarget,
  isOpenClip,
  isVaeDecoderKey,
  normalizeClipKey,
  normalizeDiffusersVaeKey,
  openClipKeyToClip,
  type SdComponent,
  SINGLE_FILE_PREFIXES,
  vaeKeyToDiffusers,
} from './keys.ts';
import { sdFamilyOfKeys, singleFileSdConfig } from './single-file-config.ts';

/** A safetensors file as the graph needs it: path, tensor table, data offset (`openSafetensors` gives one). */
export type WeightFile = Pick<SafetensorsHeader, 'tensors' | 'dataStart'> & { readonly path: string };

const COMPONENTS: readonly SdComponent[] = ['unet', 'text_encoder', 'text_encoder_2', 'vae'];

/** OpenCLIP's pooled-output projection, which SDXL's second text encoder runs. */
const OPENCLIP_PROJECTION = 'text_projection';
const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16']);

interface Entry {
  readonly file: WeightFile;
  /** The key as stored in the file. */
  readonly stored: string;
  /** Where the weight lies: the stored tensor, or a block of its rows (q, k or v of a fused in_proj). */
  readonly info: TensorInfo;
  /** Stored as the transpose of the weight (OpenCLIP's `text_projection`). */
  readonly transposed?: boolean;
}

/** Rows `part` of 3 of a tensor stored with q, k and v stacked: a contiguous byte range of its own. */
function rowsOf(info: TensorInfo, part: 0 | 1 | 2 | undefined, stored: string, path: string): TensorInfo {
  if (part === undefined) return info;
  const [rows, ...rest] = info.shape;
  if (rows === undefined || rows % 3 !== 0) {
    throw new ModelError(
      'E_MODEL_TENSOR',
      `${path}: '${stored}' is [${info.shape.join(', ')}]; a fused q/k/v tensor needs a multiple of 3 rows`,
    );
  }
  const byteLength = info.byteLength / 3;
  return { ...info, shape: [rows / 3, ...rest], byteOffset: info.byteOffset + part * byteLength, byteLength };
}

/** Shape without trailing 1s: LDM stores the VAE attention projections as 1×1 convs, diffusers as linears. */
const core = (shape: readonly number[]): string => {
  let end = shape.length;
  while (end > 2 && shape[end - 1] === 1) end--;
  return shape.slice(0, end).join(',');
};

export class SdCheckpoint {
  private readonly entries = new Map<SdComponent, Map<string, Entry>>(COMPONENTS.map((c) => [c, new Map()]));
  /** Stored keys under a model prefix that fit no naming rule. */
  private readonly unrecognised = new Map<SdComponent, string[]>(COMPONENTS.map((c) => [c, []]));
  private readonly used = new Set<Entry>();
  private readonly perGraph = new WeakMap<Graph, Map<string, Tensor>>();

  private constructor(
    readonly config: SdModelConfig,
    /** For messages: the file or folder the weights came from. */
    readonly source: string,
    readonly family: SdFamily,
    /** What says the family, for the run log. */
    readonly familyEvidence: string,
  ) {}

  /**
   * An original LDM single-file checkpoint (`model.diffusion_model.…`, `first_stage_model.…`, and
   * `cond_stage_model.transformer.…` for SD 1.x, OpenCLIP's `cond_stage_model.model.…` for SD 2.x,
   * or sgm's `conditioner.embedders.0.transformer.…` + `conditioner.embedders.1.model.…` for SDXL,
   * which name the family). Sizes come from the tensor shapes unless `config` gives them. EMA
   * copies, schedule buffers and what SD never runs of OpenCLIP are ignored.
   */
  static fromSingleFile(file: WeightFile, config?: SdModelConfig): SdCheckpoint {
    const read = config === undefined ? singleFileSdConfig(file.tensors, file.path) : undefined;
    const family = read?.family ?? sdFamilyOfKeys(file.tensors.keys()) ?? sdFamilyOf(config!);
    const sizes = config ?? read!.config;
    if (sdFamilyOf(sizes) !== family) {
      throw new ModelError(
        'E_MODEL_CONFIG',
        `${file.path} holds a ${SD_FAMILY_NAMES[family]} text encoder, but the model sizes given are ` +
          `${SD_FAMILY_NAMES[sdFamilyOf(sizes)]}'s (text_encoder/config.json hidden_act, text_encoder_2/); give the sizes of this checkpoint, or none`,
      );
    }
    const prefixes = SINGLE_FILE_PREFIXES[family];
    const evidence = family === 'sdxl' ? prefixes.text_encoder_2 : prefixes.text_encoder;
    const checkpoint = new SdCheckpoint(sizes, file.path, family, `text-encoder keys ${evidence}…`);
    const components = COMPONENTS.filter((c) => prefixes[c] !== undefined);
    for (const [stored, info] of file.tensors) {
      const component = components.find((c) => stored.startsWith(prefixes[c]!));
      if (!component) continue;
      const key = stored.slice(prefixes[component]!.length);
      if (component === 'text_encoder_2' && key === OPENCLIP_PROJECTION) {
        // OpenCLIP multiplies by text_projection [width, dim]; the Linear it becomes holds its transpose.
        checkpoint.add(component, 'text_projection.weight', { file, stored, info, transposed: true });
        continue;
      }
      const encoder = component === 'text_encoder' ? sizes.textEncoder : sizes.textEncoder2;
      const mapped =
        component === 'unet'
          ? unetKeyToDiffusers(key, sizes.unet.layersPerBlock)
          : component === 'vae'
            ? vaeKeyToDiffusers(key, sizes.vae.blockOutChannels.length)
            : isOpenClip(family, component)
              ? openClipKeyToClip(key, encoder!.numLayers)
              : normalizeClipKey(key);
      checkpoint.addAll(component, mapped, file, stored, info);
    }
    return checkpoint;
  }

  /** The weight files of a diffusers folder (`unet/`, `text_encoder/`, SDXL's `text_encoder_2/`, `vae/`). */
  static fromDiffusers(
    files: Readonly<Partial<Record<SdComponent, WeightFile>>>,
    config: SdModelConfig,
  ): SdCheckpoint {
    const family = sdFamilyOf(config);
    const evidence =
      family === 'sdxl'
        ? 'a text_encoder_2/ folder'
        : `text_encoder hidden_act ${family === 'sd2' ? 'gelu' : 'quick_gelu'}`;
    const checkpoint = new SdCheckpoint(config, files.unet!.path, family, evidence);
    for (const component of COMPONENTS) {
      const file = files[component];
      if (!file) continue;
      for (const [stored, info] of file.tensors) {
        const mapped =
          component === 'vae'
            ? normalizeDiffusersVaeKey(stored)
            : component === 'unet' || stored === 'text_projection.weight'
              ? stored
              : normalizeClipKey(stored);
        checkpoint.add(component, mapped, { file, stored, info });
      }
    }
    return checkpoint;
  }

  private add(component: SdComponent, key: string | null | undefined, entry: Entry): void {
    if (key === undefined) return;
    if (key === null) this.unrecognised.get(component)!.push(entry.stored);
    else this.entries.get(component)!.set(key, entry);
  }

  /** A stored tensor that provides several weights (OpenCLIP's fused q/k/v), or one, or none. */
  private addAll(
    component: SdComponent,
    targets: string | readonly ClipTarget[] | null | undefined,
    file: WeightFile,
    stored: string,
    info: TensorInfo,
  ): void {
    if (typeof targets === 'string' || !targets) {
      this.add(component, targets, { file, stored, info });
      return;
    }
    for (const { key, part } of targets) {
      this.add(component, key, { file, stored, info: rowsOf(info, part, stored, file.path) });
    }
  }

  /** Whether the checkpoint has `key` (diffusers name) for `component`. */
  has(component: SdComponent, key: string): boolean {
    return this.entries.get(component)!.has(key);
  }

  /** The shape a weight has in the file (`proj_in` is a 1×1 convolution in SD 1.x single files). */
  storedShape(component: SdComponent, key: string): readonly number[] | undefined {
    return this.entries.get(component)!.get(key)?.info.shape;
  }

  /**
   * Tensor `key` (diffusers name) of `component` as a graph initializer in its stored type (or
   * held as `held`, see `safetensorsWeight`), checked against `shape`. Asking twice in one graph
   * gives the same tensor.
   */
  weight(graph: Graph, component: SdComponent, key: string, shape: readonly number[], held?: DType): Tensor {
    let cache = this.perGraph.get(graph);
    if (!cache) {
      cache = new Map();
      this.perGraph.set(graph, cache);
    }
    const name = `${component}.${key}`;
    const cacheKey = `${name}:${held ?? 'stored'}`;
    const cached = cache.get(cacheKey);
    if (cached) return cached;
    const entry = this.entries.get(component)!.get(key);
    if (!entry) {
      throw new ModelError(
        'E_MODEL_TENSOR',
        `${this.source}: the ${component} needs '${key}' (diffusers name), which is not in the checkpoint; ` +
          'is it a Stable Diffusion 1.x, 2.x or XL checkpoint, and does the model config match it?',
      );
    }
    const { file, stored, info, transposed } = entry;
    const storedAs = transposed ? [...shape].reverse() : shape;
    if (core(info.shape) !== core(storedAs)) {
      throw new ModelError(
        'E_MODEL_TENSOR',
        `${file.path}: '${stored}' is [${info.shape.join(', ')}], but the ${component} config needs ` +
          `[${shape.join(', ')}]; pass the model config that matches this checkpoint`,
      );
    }
    if (!FLOAT_DTYPES.has(info.dtype)) {
      throw new ModelError(
        'E_MODEL_TENSOR',
        `${file.path}: '${stored}' is ${info.dtype}; model weights must be F32, F16 or BF16`,
      );
    }
    // A view of the file in which `stored` is the entry's own range (a third of a fused tensor, or all of it).
    const view = { path: file.path, dataStart: file.dataStart, tensors: new Map([[stored, info]]) };
    let tensor = safetensorsWeight(graph, view, stored, name, held);
    if (transposed) tensor = transpose(tensor, [1, 0]);
    else if (info.shape.join(',') !== shape.join(',')) tensor = reshape(tensor, shape);
    this.used.add(entry);
    cache.set(cacheKey, tensor);
    return tensor;
  }

  /**
   * Where the tensors of `component` whose diffusers name passes `select` lie on disk (absolute
   * byte ranges), sorted by name: what a content fingerprint of part of a model reads.
   */
  storedRanges(
    component: SdComponent,
    select: (key: string) => boolean = () => true,
  ): { key: string; path: string; dtype: string; start: number; length: number }[] {
    return [...this.entries.get(component)!]
      .filter(([key]) => select(key))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, { file, info }]) => ({
        key,
        path: file.path,
        dtype: info.dtype,
        start: file.dataStart + info.byteOffset,
        length: info.byteLength,
      }));
  }

  /**
   * Stored keys of the given models that no graph built so far has used, unrecognised keys
   * included. Empty after building every model of a matching checkpoint (the VAE decoder, which
   * only sampling runs, EMA keys and buffers never count).
   */
  unusedKeys(components: readonly SdComponent[] = COMPONENTS): string[] {
    const unused = components.flatMap((c) => [
      ...[...this.entries.get(c)!]
        .filter(([key, e]) => !this.used.has(e) && !(c === 'vae' && isVaeDecoderKey(key)))
        .map(([, e]) => e.stored),
      ...this.unrecognised.get(c)!,
    ]);
    // A fused tensor is listed once, however many of its parts went unused.
    return [...new Set(unused)];
  }
}

/** Diffusers weight files, preferring full precision when a folder has both. */
const DIFFUSERS_FILES: Readonly<Record<SdComponent, readonly string[]>> = {
  unet: ['diffusion_pytorch_model.safetensors', 'diffusion_pytorch_model.fp16.safetensors'],
  text_encoder: ['model.safetensors', 'model.fp16.safetensors'],
  text_encoder_2: ['model.safetensors', 'model.fp16.safetensors'],
  vae: ['diffusion_pytorch_model.safetensors', 'diffusion_pytorch_model.fp16.safetensors'],
};

export interface OpenedSdCheckpoint {
  readonly checkpoint: SdCheckpoint;
  /** Closes the weight files (the graphs keep pointing into them by path). */
  close(): Promise<void>;
}

/**
 * Opens a `.safetensors` single-file checkpoint (sizes from `config`, else from its tensor shapes)
 * or a diffusers folder (sizes from its `config.json` files unless `config` is given). Only
 * headers are read.
 */
export async function openSdCheckpoint(path: string, config?: SdModelConfig): Promise<OpenedSdCheckpoint> {
  if (!(await stat(path)).isDirectory()) {
    const file = await openWeightsFile(path);
    return { checkpoint: SdCheckpoint.fromSingleFile(file, config), close: () => file.close() };
  }
  const opened: SafetensorsFile[] = [];
  const close = async () => {
    await Promise.all(opened.map((f) => f.close()));
  };
  try {
    // A text_encoder_2/ folder (SDXL's OpenCLIP ViT-bigG) is the one optional model.
    const sdxl = await isFolder(join(path, 'text_encoder_2'));
    const files: Partial<Record<SdComponent, WeightFile>> = {};
    for (const component of COMPONENTS) {
      if (component === 'text_encoder_2' && !sdxl) continue;
      const name = await firstExisting(join(path, component), DIFFUSERS_FILES[component]);
      const file = await openWeightsFile(join(path, component, name));
      opened.push(file);
      files[component] = file;
    }
    const json = async (folder: string) =>
      [await readJson(join(path, folder, 'config.json')), join(path, folder, 'config.json')] as const;
    const resolved = config ?? {
      unet: parseUnetConfig(...(await json('unet'))),
      textEncoder: parseClipTextConfig(...(await json('text_encoder'))),
      ...(sdxl ? { textEncoder2: parseClipTextConfig(...(await json('text_encoder_2'))) } : {}),
      vae: parseVaeConfig(...(await json('vae'))),
    };
    return { checkpoint: SdCheckpoint.fromDiffusers(files, resolved), close };
  } catch (error) {
    await close();
    throw error;
  }
}

const isFolder = (path: string): Promise<boolean> =>
  stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );

async function firstExisting(folder: string, names: readonly string[]): Promise<string> {
  for (const name of names) {
    if (
      await stat(join(folder, name)).then(
        (s) => s.isFile(),
        () => false,
      )
    )
      return name;
  }
  throw new ModelError(
    'E_MODEL_ARCHITECTURE',
    `${folder} has none of ${names.join(', ')}; a diffusers Stable Diffusion folder needs unet/, text_encoder/ (SDXL: and text_encoder_2/) and vae/ weights in safetensors`,
  );
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ModelError(
      'E_MODEL_CONFIG',
      `${path} cannot be read (${(error as Error).message}); pass the model config instead`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ModelError('E_MODEL_CONFIG', `${path} is not valid JSON: ${(error as Error).message}`);
  }
}
