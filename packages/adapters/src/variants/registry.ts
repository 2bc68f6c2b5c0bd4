/** Every LoRA variant, by the id the config's `network` key and the files' modules use. */
import { dora } from './dora.ts';
import { loha } from './loha.ts';
import { lokr } from './lokr.ts';
import { lora } from './lora.ts';
import type { Variant } from './variant.ts';

export const VARIANTS = { lora, dora, loha, lokr } as const satisfies Record<string, Variant>;

export type VariantId = keyof typeof VARIANTS;

export function variantOf(id: VariantId): Variant {
  return VARIANTS[id];
}
