import type { TensorData } from '@lora/safetensors';
import type { LoraAdapter } from './adapter.ts';
import { fromDiffusers } from './diffusers.ts';
import { AdapterError } from './errors.ts';
import { type FromKohyaOptions, fromKohya } from './kohya.ts';
import { fromPeft, type PeftAdapterConfig } from './peft.ts';
import type { LoraLayout } from './variants/variant.ts';

/** Which layout a LoRA state dict uses, from its key names. */
export function detectLoraLayout(names: Iterable<string>): LoraLayout {
  let first: string | undefined;
  for (const name of names) {
    first ??= name;
    if (/^lora_(unet|te[12]?)_/.test(name)) return 'kohya';
    if (name.startsWith('base_model.model.')) return 'peft';
    if (/\.(lora\.|lora_linear_layer\.|lora_[AB]\.|processor\.)/.test(name)) return 'diffusers';
  }
  throw new AdapterError(
    'E_INVALID_LORA',
    first === undefined ? 'the file has no tensors' : `${JSON.stringify(first)} matches no known LoRA layout`,
  );
}

export interface ReadLoraOptions extends FromKohyaOptions {
  /** `adapter_config.json` of a PEFT adapter; without it PEFT modules get alpha = rank. */
  readonly peftConfig?: PeftAdapterConfig;
}

/** Reads a LoRA state dict in whichever layout it uses. */
export function loraFromTensors(
  tensors: ReadonlyMap<string, TensorData>,
  options: ReadLoraOptions = {},
): LoraAdapter {
  switch (detectLoraLayout(tensors.keys())) {
    case 'kohya':
      return fromKohya(tensors, options);
    case 'diffusers':
      return fromDiffusers(tensors);
    case 'peft':
      return fromPeft(tensors, options.peftConfig);
  }
}
