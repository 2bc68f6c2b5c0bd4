import type { TensorData } from '@lora/safetensors';
import { type LoraAdapter, type LoraModule, scalarTensor } from './adapter.ts';
import { AdapterError } from './errors.ts';
import { groupModules, moduleKeys } from './group.ts';
import { flattenedIndex, flattenPath, unflattenPath } from './names.ts';

/** kohya prefix ↔ component of the internal module path (sd-scripts `networks/lora.py`). */
const PREFIXES = [
  ['lora_unet', 'unet'],
  ['lora_te1', 'text_encoder'],
  ['lora_te2', 'text_encoder_2'],
  ['lora_te', 'text_encoder'],
] as const;

export interface FromKohyaOptions {
  /**
   * The base model's module paths in internal form (`unet.down_blocks.0.…`), to undo kohya's
   * dot → underscore flattening exactly. Without them, a built-in vocabulary of SD / CLIP /
   * LLaMA identifiers decides where the dots were.
   */
  readonly modulePaths?: Iterable<string>;
}

/**
 * Reads kohya keys (`lora_unet_…`, `lora_te_…`, `lora_te1_…` / `lora_te2_…` with each variant's
 * suffixes: `.lora_down.weight`, `.lora_up.weight`, DoRA's `.dora_scale`, and `.alpha`). A module
 * without `.alpha` gets alpha = rank (scale 1), as sd-scripts does for old files.
 */
export function fromKohya(
  tensors: ReadonlyMap<string, TensorData>,
  options: FromKohyaOptions = {},
): LoraAdapter {
  const known = options.modulePaths === undefined ? undefined : flattenedIndex(options.modulePaths);
  const adapter = new Map<string, LoraModule>();
  for (const [name, module] of groupModules(tensors, 'kohya')) {
    const prefix = PREFIXES.find(([kohya]) => name.startsWith(`${kohya}_`));
    if (prefix === undefined) {
      throw new AdapterError(
        'E_INVALID_LORA',
        `kohya module ${JSON.stringify(name)} starts with none of lora_unet_, lora_te_, lora_te1_, lora_te2_`,
      );
    }
    const [kohya, component] = prefix;
    const flat = name.slice(kohya.length + 1);
    const path = known?.get(`${component}_${flat}`) ?? `${component}.${unflattenPath(flat)}`;
    adapter.set(path, module);
  }
  return adapter;
}

/**
 * Writes kohya keys, always with `.alpha` (A1111 and ComfyUI use scale 1 when it is missing),
 * saved in the dtype of the module's first tensor (LoRA's down weight) as sd-scripts does.
 */
export function toKohya(adapter: LoraAdapter): Map<string, TensorData> {
  const hasSecondEncoder = [...adapter.keys()].some((path) => path.startsWith('text_encoder_2.'));
  const out = new Map<string, TensorData>();
  for (const [path, module] of adapter) {
    const dot = path.indexOf('.');
    const prefix = kohyaPrefix(path.slice(0, dot), hasSecondEncoder);
    if (prefix === undefined || dot < 0) {
      throw new AdapterError(
        'E_INVALID_LORA',
        `module ${JSON.stringify(path)} has no kohya form: kohya keys exist for paths starting with unet., text_encoder. or text_encoder_2.`,
      );
    }
    const name = `${prefix}_${flattenPath(path.slice(dot + 1))}`;
    const keys = moduleKeys(name, module, 'kohya');
    for (const [key, tensor] of keys) out.set(key, tensor);
    out.set(`${name}.alpha`, scalarTensor(module.alpha, keys[0]![1].dtype));
  }
  return out;
}

function kohyaPrefix(component: string, hasSecondEncoder: boolean): string | undefined {
  if (component === 'unet') return 'lora_unet';
  if (component === 'text_encoder') return hasSecondEncoder ? 'lora_te1' : 'lora_te';
  if (component === 'text_encoder_2') return 'lora_te2';
  return undefined;
}
