import type { TensorData } from '@lora/safetensors';
import { type LoraAdapter, type LoraModule, rankOf } from './adapter.ts';
import { AdapterError } from './errors.ts';
import { groupModules, moduleKeys } from './group.ts';
import { VARIANTS } from './variants/registry.ts';

/** PEFT state-dict keys always start with this (`developer_guides/checkpoint.md`). */
const PREFIX = 'base_model.model.';

/** The components of a Stable Diffusion adapter's module paths (`LoraAdapter`). */
const SD_COMPONENT = /^(unet|text_encoder|text_encoder_2)\./;

/** The `adapter_config.json` fields this package reads and writes; others pass through. */
export interface PeftAdapterConfig {
  readonly peft_type: 'LORA';
  readonly task_type?: string;
  readonly r: number;
  readonly lora_alpha: number;
  readonly target_modules: readonly string[] | string;
  readonly base_model_name_or_path?: string;
  readonly rank_pattern?: Readonly<Record<string, number>>;
  readonly alpha_pattern?: Readonly<Record<string, number>>;
  readonly use_rslora?: boolean;
  readonly [key: string]: unknown;
}

/**
 * Reads `base_model.model.<path>.lora_A.weight` / `lora_B.weight` with the adapter's config
 * (without one, alpha = rank): alpha from `alpha_pattern` (matched the way PEFT does) or `lora_alpha`, and rsLoRA's
 * `alpha / sqrt(r)` scale turned into the equivalent alpha for `alpha / r`.
 */
export function fromPeft(tensors: ReadonlyMap<string, TensorData>, config?: PeftAdapterConfig): LoraAdapter {
  const adapter = new Map<string, LoraModule>();
  const patterns = Object.entries(config?.alpha_pattern ?? {});
  for (const [name, module] of groupModules(tensors, 'peft')) {
    if (!name.startsWith(PREFIX)) {
      throw new AdapterError(
        'E_INVALID_LORA',
        `PEFT key ${JSON.stringify(name)} does not start with "${PREFIX}"`,
      );
    }
    const path = name.slice(PREFIX.length);
    const rank = rankOf(module);
    const alpha = patternValue(patterns, path) ?? config?.lora_alpha ?? rank;
    adapter.set(path, { ...module, alpha: config?.use_rslora === true ? alpha * Math.sqrt(rank) : alpha });
  }
  return adapter;
}

export interface ToPeftOptions {
  /** Written as `base_model_name_or_path`; `AutoPeftModel*` loads the base model from it. */
  readonly baseModelNameOrPath: string;
  /** Default `CAUSAL_LM`. */
  readonly taskType?: string;
  /** Write `use_rslora: true`, with each module's alpha as PEFT's `lora_alpha` for alpha / √r. */
  readonly rslora?: boolean;
}

/**
 * PEFT's `lora_alpha` for a module: with rsLoRA the stored alpha (alpha · √r) over √r, kept to 12
 * significant digits so that the alpha the user set comes back exactly (16 · √8 / √8 is not 16 in
 * binary floating point).
 */
function peftAlpha(module: LoraModule, rslora: boolean): number {
  return rslora ? Number((module.alpha / Math.sqrt(rankOf(module))).toPrecision(12)) : module.alpha;
}

/**
 * Writes the PEFT state dict and a minimal `adapter_config.json`: the most common rank and
 * alpha as `r` / `lora_alpha`, `rank_pattern` / `alpha_pattern` for modules that differ (PEFT
 * needs them to build matching shapes), and the modules' leaf names as `target_modules`.
 * Refuses Stable Diffusion adapters (`unet.` / `text_encoder.` paths), which nothing loads as PEFT.
 */
export function toPeft(
  adapter: LoraAdapter,
  options: ToPeftOptions,
): { tensors: Map<string, TensorData>; config: PeftAdapterConfig } {
  const sd = [...adapter.keys()].find((path) => SD_COMPONENT.test(path));
  if (sd !== undefined) {
    throw new AdapterError(
      'E_INVALID_LORA',
      `${sd} is a Stable Diffusion module; PEFT files describe transformers models (task_type, ` +
        'base_model.model. keys) and no UNet or text-encoder loader reads them: write the kohya ' +
        'layout (A1111, ComfyUI, sd-scripts) or the diffusers layout (load_lora_weights) instead',
    );
  }
  const tensors = new Map<string, TensorData>();
  const rank = mostCommon([...adapter.values()].map(rankOf)) ?? 8;
  const rslora = options.rslora === true;
  const alpha = mostCommon([...adapter.values()].map((module) => peftAlpha(module, rslora))) ?? rank;
  const rankPattern: Record<string, number> = {};
  const alphaPattern: Record<string, number> = {};
  const targets = new Set<string>();
  const variantFields: Record<string, unknown> = {};
  for (const [path, module] of adapter) {
    for (const [key, tensor] of moduleKeys(`${PREFIX}${path}`, module, 'peft')) tensors.set(key, tensor);
    Object.assign(variantFields, VARIANTS[module.variant].peftConfig);
    const key = escapeRegExp(path);
    if (rankOf(module) !== rank) rankPattern[key] = rankOf(module);
    if (peftAlpha(module, rslora) !== alpha) alphaPattern[key] = peftAlpha(module, rslora);
    targets.add(leafName(path));
  }
  const config: PeftAdapterConfig = {
    peft_type: 'LORA',
    task_type: options.taskType ?? 'CAUSAL_LM',
    base_model_name_or_path: options.baseModelNameOrPath,
    r: rank,
    lora_alpha: alpha,
    target_modules: [...targets].sort(),
    ...(Object.keys(rankPattern).length > 0 ? { rank_pattern: rankPattern } : {}),
    ...(Object.keys(alphaPattern).length > 0 ? { alpha_pattern: alphaPattern } : {}),
    ...variantFields,
    ...(rslora ? { use_rslora: true } : {}),
  };
  return { tensors, config };
}

/** PEFT's `get_pattern_key`: an exact key first, else the first `(.*\.)?(key)$` match. */
function patternValue(patterns: ReadonlyArray<[string, number]>, path: string): number | undefined {
  const exact = patterns.find(([key]) => key === path);
  if (exact !== undefined) return exact[1];
  for (const [key, value] of patterns) {
    let pattern: RegExp;
    try {
      pattern = new RegExp(`^(?:.*\\.)?(?:${key})$`);
    } catch (cause) {
      throw new AdapterError(
        'E_INVALID_LORA',
        `alpha_pattern key ${JSON.stringify(key)} is not a valid pattern`,
        {
          cause,
        },
      );
    }
    if (pattern.test(path)) return value;
  }
  return undefined;
}

/** The name PEFT matches in `target_modules`: the last segment, or the last two after a digit. */
function leafName(path: string): string {
  const segments = path.split('.');
  const last = segments.at(-1) ?? path;
  return /^\d+$/.test(last) && segments.length > 1 ? segments.slice(-2).join('.') : last;
}

function mostCommon(values: readonly number[]): number | undefined {
  const counts = new Map<number, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  let best: number | undefined;
  for (const [value, count] of counts) if (best === undefined || count > counts.get(best)!) best = value;
  return best;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
