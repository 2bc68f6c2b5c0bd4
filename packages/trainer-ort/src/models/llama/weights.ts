import { LLM_MODULES } from '@lora/config';
import type { LlamaSpec } from './config.ts';

/** The linear modules of one decoder layer, by their PEFT target name (one list, in @lora/config). */
export const LLAMA_LINEAR_MODULES = LLM_MODULES;
export type LlamaLinearModule = (typeof LLAMA_LINEAR_MODULES)[number];

const PARENT: Record<LlamaLinearModule, 'self_attn' | 'mlp'> = {
  q_proj: 'self_attn',
  k_proj: 'self_attn',
  v_proj: 'self_attn',
  o_proj: 'self_attn',
  gate_proj: 'mlp',
  up_proj: 'mlp',
  down_proj: 'mlp',
};

export function linearModulePath(layer: number, module: LlamaLinearModule): string {
  return `model.layers.${layer}.${PARENT[module]}.${module}`;
}

/** `[out, in]` of each linear module, as stored in the checkpoint. */
export function linearShape(spec: LlamaSpec, module: LlamaLinearModule): [number, number] {
  const { hiddenSize: h, intermediateSize: i, numHeads, numKvHeads, headDim } = spec;
  switch (module) {
    case 'q_proj':
      return [numHeads * headDim, h];
    case 'k_proj':
    case 'v_proj':
      return [numKvHeads * headDim, h];
    case 'o_proj':
      return [h, numHeads * headDim];
    case 'gate_proj':
    case 'up_proj':
      return [i, h];
    case 'down_proj':
      return [h, i];
  }
}

/** Every tensor the model reads, with its shape: the loader requires exactly these. */
export function llamaTensorShapes(spec: LlamaSpec): Map<string, number[]> {
  const shapes = new Map<string, number[]>([
    ['model.embed_tokens.weight', [spec.vocabSize, spec.hiddenSize]],
    ['model.norm.weight', [spec.hiddenSize]],
  ]);
  if (!spec.tieWordEmbeddings) shapes.set('lm_head.weight', [spec.vocabSize, spec.hiddenSize]);
  for (let layer = 0; layer < spec.numLayers; layer++) {
    shapes.set(`model.layers.${layer}.input_layernorm.weight`, [spec.hiddenSize]);
    shapes.set(`model.layers.${layer}.post_attention_layernorm.weight`, [spec.hiddenSize]);
    for (const module of LLAMA_LINEAR_MODULES) {
      const path = linearModulePath(layer, module);
      const shape = linearShape(spec, module);
      shapes.set(`${path}.weight`, shape);
      if (spec.qkvBias && (module === 'q_proj' || module === 'k_proj' || module === 'v_proj')) {
        shapes.set(`${path}.bias`, [shape[0]]);
      }
    }
  }
  return shapes;
}
