import type { TensorData } from '@lora/safetensors';
import { type LoraAdapter, scaledTensor, scaleOfModule } from './adapter.ts';
import { groupModules, layoutSuffixes, moduleKeys } from './group.ts';

/** The other forms the diffusers loader accepts (`lora_conversion_utils.py`, `PEFT_TO_DIFFUSERS`). */
const SUFFIXES = layoutSuffixes('diffusers', [
  ['.lora_linear_layer.down.weight', 'down'],
  ['.lora_linear_layer.up.weight', 'up'],
  ['.lora_A.weight', 'down'],
  ['.lora_B.weight', 'up'],
]);

/** The old attention-processor form: `….attn1.processor.to_q_lora.down.weight`. */
const PROCESSOR = /\.processor\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$/;

/**
 * Reads diffusers keys (`unet.….lora.down.weight` / `.lora.up.weight`, `lora_linear_layer`,
 * PEFT-style `lora_A` / `lora_B`, the old `processor.to_q_lora` form, optional `.alpha`).
 * The module path is the key without its suffix, so `unet.` / `text_encoder.` stay as the
 * component. Without `.alpha`, alpha = rank: diffusers applies `up @ down` unscaled.
 */
export function fromDiffusers(tensors: ReadonlyMap<string, TensorData>): LoraAdapter {
  const normalised = new Map<string, TensorData>();
  for (const [key, tensor] of tensors) {
    normalised.set(
      key.replace(PROCESSOR, (_, projection: string, role: string) => {
        const path = projection === 'to_out' ? 'to_out.0' : projection;
        return `.${path}.lora.${role}.weight`;
      }),
      tensor,
    );
  }
  return groupModules(normalised, 'diffusers', SUFFIXES);
}

/**
 * Writes `<path>.lora.down.weight` / `<path>.lora.up.weight` in diffusers' native form, which has
 * no alpha (diffusers applies `up @ down` at scale 1): a module whose alpha differs from its
 * rank gets alpha / rank baked into its up weight, so the update `scale · up @ down` is the same
 * (and reads back with alpha = rank). Modules with alpha = rank keep their bytes.
 */
export function toDiffusers(adapter: LoraAdapter): Map<string, TensorData> {
  const out = new Map<string, TensorData>();
  for (const [path, module] of adapter) {
    const scale = scaleOfModule(module);
    for (const [key, tensor] of moduleKeys(path, module, 'diffusers')) {
      out.set(key, scale !== 1 && key.endsWith('.up.weight') ? scaledTensor(key, tensor, scale) : tensor);
    }
  }
  return out;
}
