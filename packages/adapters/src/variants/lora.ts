/**
 * LoRA (Hu et al.): `y = W·x + scale · up(down(dropout(x)))` with down kaiming-uniform and up
 * zero, so training starts from the base model. For a convolution, down is a k×k convolution to
 * `rank` channels and up a 1×1 one back (kohya's LoCon form). Merge: `W + multiplier · scale · up @ down`.
 */
import { add, mul } from '@lora/engine';
import {
  addLowRank,
  checkLowRankShapes,
  frozenLayer,
  lowRankParameters,
  lowRankPath,
  lowRankRank,
  lowRankWeightShape,
} from './low-rank.ts';
import type { Variant } from './variant.ts';

export const lora: Variant = {
  id: 'lora',
  name: 'LoRA',
  roles: ['down', 'up'],
  keys: {
    kohya: { down: '.lora_down.weight', up: '.lora_up.weight' },
    peft: { down: '.lora_A.weight', up: '.lora_B.weight' },
    diffusers: { down: '.lora.down.weight', up: '.lora.up.weight' },
  },
  kohyaNetwork: () => ({ module: 'networks.lora' }),
  parameters: (weightShape, options) => lowRankParameters(weightShape, options.rank),
  forward: (inputs) =>
    add(frozenLayer(inputs, inputs.x, true), mul(lowRankPath(inputs, inputs.dropped), inputs.scale)),
  weightShape: lowRankWeightShape,
  rank: lowRankRank,
  checkShapes: checkLowRankShapes,
  merge(weight, _shape, module, scale, multiplier) {
    addLowRank(weight, module, multiplier * scale);
  },
};
