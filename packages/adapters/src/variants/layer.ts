/**
 * A variant on a layer of a graph, and the trained values back as an adapter. Trainable tensors
 * are float32 graph inputs named `<module path><PEFT suffix>` (`….lora_A.weight`,
 * `….lora_magnitude_vector`), so a trained LLM's names are already its PEFT keys.
 */
import { type ConvOptions, cast, castAtUse, type Tensor } from '@lora/engine';
import { type TensorData, toFloat32 } from '@lora/safetensors';
import { formsOf, type LoraAdapter, type LoraModule, rankOf } from '../adapter.ts';
import { AdapterError } from '../errors.ts';
import { loraDropout, nameKey } from './dropout.ts';
import { coreShape, scaleOf } from './low-rank.ts';
import { VARIANTS, type VariantId } from './registry.ts';
import type { NetworkOptions, ParameterSpec } from './variant.ts';

export interface AdaptOptions extends NetworkOptions {
  network: VariantId;
  /** Probability of zeroing an input element on the adapter's path (`loraDropout`); default 0. */
  dropout?: number;
}

export interface AdaptedParameter extends ParameterSpec {
  /** The graph input: `<module path><PEFT suffix>`. */
  readonly name: string;
  readonly tensor: Tensor;
}

export interface AdaptedLayer {
  readonly output: Tensor;
  /** In the variant's role order. */
  readonly parameters: readonly AdaptedParameter[];
  /** alpha / rank, or alpha / √rank with rsLoRA. */
  readonly scale: number;
}

/** A parameter's graph-input name. */
export function parameterName(path: string, network: VariantId, role: string): string {
  return `${path}${VARIANTS[network].keys.peft?.[role] ?? `.${role}`}`;
}

/** A parameter name's module path and role; undefined when it is not one of `network`'s. */
export function splitParameterName(
  name: string,
  network: VariantId,
): { path: string; role: string } | undefined {
  for (const role of VARIANTS[network].roles) {
    const suffix = parameterName('', network, role);
    if (name.endsWith(suffix) && name.length > suffix.length)
      return { path: name.slice(0, -suffix.length), role };
  }
  return undefined;
}

/**
 * The layer `weight` (`[out, in]`, or `[out, in, k…]` with `conv`) with `options.network` applied
 * under the name `path`: the variant's parameters as float32 graph inputs, cast to `x`'s type.
 * The weight and bias are cast to `x`'s type too.
 */
export function adaptLayer(
  x: Tensor,
  weight: Tensor,
  path: string,
  options: AdaptOptions,
  base: { bias?: Tensor; conv?: ConvOptions } = {},
): AdaptedLayer {
  const fail = (message: string) => x.graph.error('E_INVALID_ARGUMENT', `LoRA '${path}'`, message);
  if (!Number.isInteger(options.rank) || options.rank < 1) {
    throw fail(`rank must be a positive integer, got ${options.rank}`);
  }
  const p = options.dropout ?? 0;
  if (!(p >= 0 && p < 1)) throw fail(`dropout must be in [0, 1), got ${p}`);
  const weightShape = weight.shape;
  const convolution = base.conv !== undefined;
  if (
    !weightShape.every((d) => typeof d === 'number') ||
    (convolution ? weight.rank < 3 : weight.rank !== 2) ||
    (base.conv?.group ?? 1) !== 1
  ) {
    throw x.graph.error(
      'E_SHAPE_MISMATCH',
      `LoRA '${path}'`,
      `weight must be static [out, in] (or [out, in, k…] of an ungrouped conv), got ${weight}`,
    );
  }
  const variant = VARIANTS[options.network];
  const parameters = variant.parameters(weightShape as number[], options).map((spec) => {
    const name = parameterName(path, options.network, spec.role);
    return { ...spec, name, tensor: x.graph.input(name, 'float32', spec.shape) };
  });
  const scale = variant.scale
    ? variant.scale(Object.fromEntries(parameters.map((q) => [q.role, q])), options.alpha)
    : scaleOf(options);
  return x.graph.scope(path, () => {
    const output = variant.forward({
      x,
      dropped: p > 0 ? loraDropout(x, p, nameKey(path)) : x,
      weight: castAtUse(weight, x.dtype, x),
      ...(base.bias ? { bias: cast(base.bias, x.dtype) } : {}),
      ...(base.conv ? { conv: base.conv } : {}),
      parameters: Object.fromEntries(parameters.map((q) => [q.role, cast(q.tensor, x.dtype)])),
      scale,
      options,
    });
    return { output, parameters, scale };
  });
}

/**
 * A module's variant settings as files record them; one for all modules, or by module path.
 * `keys` names the config keys that set rank and alpha, for messages (default lora_rank, lora_alpha).
 */
export type ModuleNetwork = Pick<AdaptOptions, 'network' | 'rank' | 'alpha' | 'rslora'> & {
  keys?: { rank: string; alpha: string };
};
type Networks = ModuleNetwork | ((path: string) => ModuleNetwork);

/** alpha as files store it: alpha · √rank for rsLoRA, so that alpha / rank is the trained scale. */
const storedAlpha = (options: ModuleNetwork) =>
  options.rslora ? options.alpha * Math.sqrt(options.rank) : options.alpha;

/**
 * The trained values (float32, by parameter name) as a layout-independent adapter: each
 * module's tensors by role and its alpha as files store it (alpha · √rank for rsLoRA).
 */
export function adapterFromParameters(
  parameters: readonly { readonly name: string; readonly shape: readonly number[] }[],
  values: ReadonlyMap<string, Float32Array>,
  networks: Networks,
): LoraAdapter {
  const settingsOf = typeof networks === 'function' ? networks : () => networks;
  const options = settingsOf('');
  const variant = VARIANTS[options.network];
  const modules = new Map<string, Record<string, TensorData>>();
  for (const p of parameters) {
    const match = splitParameterName(p.name, options.network);
    const data = values.get(p.name);
    if (match === undefined || data?.length !== p.shape.reduce((a, b) => a * b, 1)) {
      throw new AdapterError(
        'E_INVALID_LORA',
        `${p.name} ${match === undefined ? `is not a ${variant.id} parameter` : data ? `has ${data.length} values for [${p.shape.join(', ')}]` : 'has no trained value'}`,
      );
    }
    const module = modules.get(match.path) ?? {};
    module[match.role] = { dtype: 'F32', shape: p.shape, data };
    modules.set(match.path, module);
  }
  const adapter = new Map<string, LoraModule>();
  for (const [path, tensors] of modules) {
    const roles = Object.keys(tensors);
    const complete = formsOf(variant.id as VariantId).some(
      (form) => form.length === roles.length && form.every((role) => tensors[role] !== undefined),
    );
    if (!complete) {
      const missing = variant.roles.filter((role) => tensors[role] === undefined);
      throw new AdapterError(
        'E_INVALID_LORA',
        `${variant.id} module ${path} has no ${missing.join(', ')} value`,
      );
    }
    adapter.set(path, { variant: variant.id as VariantId, tensors, alpha: storedAlpha(settingsOf(path)) });
  }
  return adapter;
}

/**
 * An adapter's values (e.g. an `init_adapter`) for `parameters`, by parameter name: every module
 * must be of `options.network` with the run's rank and alpha (as files store it) and every tensor
 * of the parameter's shape; the message names the config key to change when not. The caller
 * has checked that the adapter holds exactly the modules being trained.
 */
export function parameterValues(
  adapter: LoraAdapter,
  parameters: readonly { readonly name: string; readonly shape: readonly number[] }[],
  networks: Networks,
): Map<string, Float32Array> {
  const settingsOf = typeof networks === 'function' ? networks : () => networks;
  const variant = VARIANTS[settingsOf('').network];
  const fail = (message: string) => new AdapterError('E_INVALID_LORA', message);
  const values = new Map<string, Float32Array>();
  for (const p of parameters) {
    const { path, role } = splitParameterName(p.name, variant.id as VariantId) ?? {};
    const module = path === undefined ? undefined : adapter.get(path);
    if (role === undefined || path === undefined || module === undefined) {
      throw fail(`it has no module for ${p.name}`);
    }
    const options = settingsOf(path);
    const alpha = storedAlpha(options);
    const keys = options.keys ?? { rank: 'lora_rank', alpha: 'lora_alpha' };
    if (module.variant !== variant.id) {
      throw fail(`${path} is a ${module.variant} module; set network: ${module.variant}`);
    }
    const rank = rankOf(module);
    if (rank > 0 && rank !== options.rank) throw fail(`${path} has rank ${rank}; set ${keys.rank}: ${rank}`);
    if (Math.abs(module.alpha - alpha) > 1e-6 * Math.max(1, alpha)) {
      const stored = options.rslora ? module.alpha / Math.sqrt(rank) : module.alpha;
      throw fail(
        `${path} has alpha ${Number(stored.toPrecision(12))}; set ${keys.alpha}: ${Number(stored.toPrecision(12))}`,
      );
    }
    const tensor = module.tensors[role]!;
    if (coreShape(tensor.shape) !== coreShape(p.shape)) {
      throw fail(
        `${path} ${role} is [${tensor.shape.join(', ')}], this model needs [${p.shape.join(', ')}]; was it trained on another base model?`,
      );
    }
    const bytes = new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
    values.set(p.name, toFloat32(bytes, tensor.dtype));
  }
  return values;
}
