import type { Dtype, TensorData } from '@lora/safetensors';
import { fromFloat32, toFloat32 } from '@lora/safetensors';
import { AdapterError } from './errors.ts';
import { type VariantId, variantOf } from './variants/registry.ts';

/**
 * One adapted module: a variant's tensors by role (LoRA: down `[rank, in]` and up `[out, rank]`,
 * or `[rank, in, k, k]` and `[out, rank, 1, 1]` for a convolution; DoRA adds its magnitude) and
 * alpha, with scale = alpha / rank (an rsLoRA module's alpha is stored as alpha · √rank, as
 * LyCORIS does, so the file formula holds). The bytes stay in their file dtype, so conversions
 * are lossless. The variant's module (`variants/`) says what the tensors mean.
 */
export interface LoraModule {
  readonly variant: VariantId;
  readonly tensors: Readonly<Record<string, TensorData>>;
  readonly alpha: number;
}

/**
 * A LoRA in one layout-independent form: module path in the base model → module. Paths are
 * dotted and start with the component for Stable Diffusion (`unet.down_blocks.0.attentions.0.
 * transformer_blocks.0.attn1.to_q`, `text_encoder.text_model.encoder.layers.0.self_attn.q_proj`,
 * `text_encoder_2.…` for SDXL) and are plain transformers paths for LLMs
 * (`model.layers.0.self_attn.q_proj`).
 */
export type LoraAdapter = ReadonlyMap<string, LoraModule>;

/** A plain LoRA module: down, up and alpha. */
export function loraModule(down: TensorData, up: TensorData, alpha: number): LoraModule {
  return { variant: 'lora', tensors: { down, up }, alpha };
}

export function rankOf(module: LoraModule): number {
  return variantOf(module.variant).rank(module.tensors);
}

/** The scale the module's update is applied with: its variant's rule, alpha / rank by default. */
export function scaleOfModule(module: LoraModule): number {
  const variant = variantOf(module.variant);
  return variant.scale
    ? variant.scale(module.tensors, module.alpha)
    : module.alpha / variant.rank(module.tensors);
}

/** The role sets a variant's module may be made of. */
export function formsOf(variant: VariantId): readonly (readonly string[])[] {
  const { forms, roles } = variantOf(variant);
  return forms ?? [roles];
}

/** A 0-rank (or one-element) tensor's value; alphas are stored this way. */
export function scalarOf(name: string, tensor: TensorData): number {
  const bytes = new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength).slice();
  switch (tensor.dtype) {
    case 'F64':
      if (bytes.length === 8) return new Float64Array(bytes.buffer)[0]!;
      break;
    case 'F32':
    case 'F16':
    case 'BF16': {
      const values = toFloat32(bytes, tensor.dtype);
      if (values.length === 1) return values[0]!;
      break;
    }
    case 'I64':
      if (bytes.length === 8) return Number(new BigInt64Array(bytes.buffer)[0]);
      break;
    case 'I32':
      if (bytes.length === 4) return new Int32Array(bytes.buffer)[0]!;
      break;
  }
  throw new AdapterError(
    'E_INVALID_LORA',
    `${name} should be one float (the LoRA alpha) but is ${tensor.dtype} [${tensor.shape.join(', ')}]`,
  );
}

/** A 0-rank tensor holding `value` in `dtype` (kohya saves alpha in the weights' dtype). */
export function scalarTensor(value: number, dtype: Dtype): TensorData {
  if (dtype === 'F64') return { dtype, shape: [], data: new Float64Array([value]) };
  if (dtype === 'F16' || dtype === 'BF16' || dtype === 'F32') {
    return { dtype, shape: [], data: fromFloat32(new Float32Array([value]), dtype) };
  }
  return { dtype: 'F32', shape: [], data: new Float32Array([value]) };
}

/**
 * `tensor · factor` in the same dtype (F16 / BF16 rounded to nearest even, F64 kept in double),
 * for baking a LoRA's alpha / rank into its weights.
 */
export function scaledTensor(name: string, tensor: TensorData, factor: number): TensorData {
  const bytes = new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  if (tensor.dtype === 'F64') {
    const values = new Float64Array(bytes.slice().buffer);
    for (let i = 0; i < values.length; i++) values[i]! *= factor;
    return { ...tensor, data: values };
  }
  if (tensor.dtype !== 'F32' && tensor.dtype !== 'F16' && tensor.dtype !== 'BF16') {
    throw new AdapterError(
      'E_INVALID_LORA',
      `${name} is ${tensor.dtype}; a LoRA weight must be F64, F32, F16 or BF16 to be scaled`,
    );
  }
  const values = toFloat32(bytes, tensor.dtype);
  for (let i = 0; i < values.length; i++) values[i]! *= factor;
  return { ...tensor, data: fromFloat32(values, tensor.dtype) };
}
