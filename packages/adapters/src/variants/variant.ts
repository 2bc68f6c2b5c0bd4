/**
 * The contract every LoRA variant (LoRA, DoRA, …) fulfils: one module owns its trainable
 * tensors and their initialisation, its forward contribution as graph ops (differentiated by the
 * engine's one VJP table), its merge formula, and its tensor names in every file layout it has.
 * `registry.ts` lists the variants; nothing else knows one from another.
 */
import type { ConvOptions, Tensor } from '@lora/engine';
import type { TensorData } from '@lora/safetensors';

/** File layouts an adapter is read from and written in (`layout.ts`). */
export type LoraLayout = 'kohya' | 'diffusers' | 'peft';

/** The settings of one adapted layer. */
export interface NetworkOptions {
  rank: number;
  alpha: number;
  /** rsLoRA: scale alpha / √rank instead of alpha / rank (PEFT's `use_rslora`). */
  rslora?: boolean;
  /**
   * DoRA: which way the weight norm runs. `output`: one magnitude per output row (the paper's
   * code, PEFT, LyCORIS ≥ 3.2); `input`: one per input column (what A1111 applies, LyCORIS < 3.2).
   */
  normAxis?: NormAxis;
}

export type NormAxis = 'output' | 'input';

/** How a trainable tensor starts. */
export type Init =
  /** Uniform in ±1/√fanIn (PyTorch's Linear default, kaiming-uniform with a = √5). */
  | { readonly kind: 'kaiming-uniform'; readonly fanIn: number }
  | { readonly kind: 'zeros' }
  /** Normal with mean 0 and this standard deviation. */
  | { readonly kind: 'normal'; readonly std: number }
  /** The base weight's L2 norm along `axis`, in the tensor's shape (DoRA's magnitude). */
  | { readonly kind: 'weight-norm'; readonly axis: NormAxis };

export interface ParameterSpec {
  readonly role: string;
  readonly shape: readonly number[];
  readonly init: Init;
}

/** What a variant's forward gets, everything in the layer input's float type. */
export interface LayerInputs {
  /** The layer's input. */
  readonly x: Tensor;
  /** `x` with the LoRA dropout applied; `x` itself without dropout. */
  readonly dropped: Tensor;
  /** The frozen weight: `[out, in]`, or `[out, in, k…]` for a convolution. */
  readonly weight: Tensor;
  readonly bias?: Tensor;
  /** Present for a convolution. */
  readonly conv?: ConvOptions;
  /** The trainable tensors by role. */
  readonly parameters: Readonly<Record<string, Tensor>>;
  /** alpha / rank (or alpha / √rank with rsLoRA). */
  readonly scale: number;
  readonly options: NetworkOptions;
}

/** A module's tensors as float32 values with their file shapes, by role. */
export type ModuleValues = Readonly<
  Record<string, { readonly shape: readonly number[]; readonly data: Float32Array }>
>;

export interface Variant {
  readonly id: string;
  /** How people write its name: `LoRA`, `DoRA`. */
  readonly name: string;
  /** Every role the module's tensors may have, in file order. */
  readonly roles: readonly string[];
  /** The role sets a module may be made of (LoKr: a factor full or as a low-rank pair); default: all roles. */
  readonly forms?: readonly (readonly string[])[];
  /** Each role's key suffix per layout (after the module's name); a layout missing here has no form of this variant. */
  readonly keys: Readonly<Partial<Record<LoraLayout, Readonly<Record<string, string>>>>>;
  /** kohya's `ss_network_module` and `ss_network_args` (string values, as sd-scripts writes them). */
  readonly kohyaNetwork: (options: NetworkOptions) => { module: string; args?: Record<string, string> };
  /** Fields this variant adds to PEFT's `adapter_config.json`. */
  readonly peftConfig?: Readonly<Record<string, unknown>>;
  /** The trainable tensors of a layer whose frozen weight has `weightShape`. */
  parameters(weightShape: readonly number[], options: NetworkOptions): ParameterSpec[];
  /** The layer's output with the variant applied. */
  forward(inputs: LayerInputs): Tensor;
  /** The shape of the weight the module adapts. */
  weightShape(tensors: Readonly<Record<string, TensorData>>): number[];
  /** The rank that alpha divides (kohya's `dim`); 0 when nothing is low-rank. */
  rank(tensors: Readonly<Record<string, TensorData>>): number;
  /** The update's scale from the module's tensors and alpha; default alpha / rank. */
  readonly scale?: (
    tensors: Readonly<Record<string, { readonly shape: readonly number[] }>>,
    alpha: number,
  ) => number;
  /** Throws a message naming what is wrong when the tensors cannot form a module. */
  checkShapes(name: string, tensors: Readonly<Record<string, TensorData>>): void;
  /** `weight` (`[out, …]` flattened) merged in place: the variant's `W + multiplier · (W' − W)`. */
  merge(
    weight: Float32Array | Float64Array,
    weightShape: readonly number[],
    module: ModuleValues,
    scale: number,
    multiplier: number,
  ): void;
  /** A tensor as this layout stores it (from the canonical shape), or back; identity when absent. */
  readonly reshapeFor?: (
    layout: LoraLayout,
    role: string,
    shape: readonly number[],
    direction: 'write' | 'read',
  ) => readonly number[];
}
