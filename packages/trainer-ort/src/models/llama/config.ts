import { ModelError } from '../model-error.ts';

export type LlamaArchitecture = 'LlamaForCausalLM' | 'Qwen2ForCausalLM' | 'MistralForCausalLM';
const ARCHITECTURES: readonly LlamaArchitecture[] = [
  'LlamaForCausalLM',
  'Qwen2ForCausalLM',
  'MistralForCausalLM',
];

export type RopeScaling =
  | { type: 'default' }
  | { type: 'linear'; factor: number }
  | {
      type: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositions: number;
    };

/** A LLaMA-family decoder, normalised from a Hugging Face `config.json`. */
export interface LlamaSpec {
  architecture: LlamaArchitecture;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  tieWordEmbeddings: boolean;
  ropeTheta: number;
  ropeScaling: RopeScaling;
  /** Qwen2: q/k/v projections have a bias. */
  qkvBias: boolean;
  /** Mistral (and Qwen2 with use_sliding_window): tokens attend to at most this many positions. */
  slidingWindow: number | undefined;
}

type Json = Record<string, unknown>;

function number(config: Json, key: string, fallback?: number): number {
  const value = config[key] ?? fallback;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new ModelError(
      'E_MODEL_CONFIG',
      `config.json: "${key}" must be a number (found ${JSON.stringify(value)})`,
    );
  }
  return value;
}

function ropeScaling(params: Json): RopeScaling {
  const type = params['rope_type'] ?? params['type'] ?? 'default';
  switch (type) {
    case 'default':
      return { type: 'default' };
    case 'linear':
      return { type: 'linear', factor: number(params, 'factor') };
    case 'llama3':
      return {
        type: 'llama3',
        factor: number(params, 'factor'),
        lowFreqFactor: number(params, 'low_freq_factor'),
        highFreqFactor: number(params, 'high_freq_factor'),
        originalMaxPositions: number(params, 'original_max_position_embeddings'),
      };
    default:
      throw new ModelError(
        'E_MODEL_CONFIG',
        `config.json: rope type "${String(type)}" is not supported (supported: default, linear, llama3)`,
      );
  }
}

/** Reads both the legacy `rope_theta` / `rope_scaling` keys and transformers v5's `rope_parameters`. */
export function parseLlamaConfig(config: Json): LlamaSpec {
  const architecture = (config['architectures'] as unknown[] | undefined)?.[0];
  if (!ARCHITECTURES.includes(architecture as LlamaArchitecture)) {
    throw new ModelError(
      'E_MODEL_ARCHITECTURE',
      `config.json: architecture ${JSON.stringify(architecture)} is not supported; supported: ${ARCHITECTURES.join(', ')}`,
    );
  }
  const arch = architecture as LlamaArchitecture;
  const numHeads = number(config, 'num_attention_heads');
  const hiddenSize = number(config, 'hidden_size');
  const ropeParameters = (config['rope_parameters'] ?? config['rope_scaling'] ?? {}) as Json;
  const ropeTheta = number(
    { rope_theta: ropeParameters['rope_theta'] ?? config['rope_theta'] ?? 10000 },
    'rope_theta',
  );
  const usesSlidingWindow =
    arch === 'MistralForCausalLM' || (arch === 'Qwen2ForCausalLM' && config['use_sliding_window'] === true);
  const window = config['sliding_window'];
  const spec: LlamaSpec = {
    architecture: arch,
    hiddenSize,
    intermediateSize: number(config, 'intermediate_size'),
    numLayers: number(config, 'num_hidden_layers'),
    numHeads,
    numKvHeads: number(config, 'num_key_value_heads', numHeads),
    headDim: number(config, 'head_dim', hiddenSize / numHeads),
    vocabSize: number(config, 'vocab_size'),
    rmsNormEps: number(config, 'rms_norm_eps', 1e-6),
    tieWordEmbeddings: config['tie_word_embeddings'] === true,
    ropeTheta,
    ropeScaling: ropeScaling(ropeParameters),
    qkvBias: arch === 'Qwen2ForCausalLM' || config['attention_bias'] === true,
    slidingWindow: usesSlidingWindow && typeof window === 'number' ? window : undefined,
  };
  if (spec.numHeads % spec.numKvHeads !== 0 || !Number.isInteger(spec.headDim) || spec.headDim % 2 !== 0) {
    throw new ModelError(
      'E_MODEL_CONFIG',
      `config.json: ${spec.numHeads} heads, ${spec.numKvHeads} key/value heads and head_dim ${spec.headDim} do not fit (heads must be a multiple of kv heads, head_dim even)`,
    );
  }
  return spec;
}

/** RoPE inverse frequencies as transformers computes them (float32 results, float64 arithmetic). */
export function ropeInverseFrequencies(spec: LlamaSpec): Float64Array {
  const half = spec.headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = Math.fround(1 / spec.ropeTheta ** ((2 * i) / spec.headDim));
  const scaling = spec.ropeScaling;
  if (scaling.type === 'linear') for (let i = 0; i < half; i++) inv[i] = inv[i]! / scaling.factor;
  if (scaling.type === 'llama3') {
    const { factor, lowFreqFactor, highFreqFactor, originalMaxPositions } = scaling;
    const lowWavelen = originalMaxPositions / lowFreqFactor;
    const highWavelen = originalMaxPositions / highFreqFactor;
    for (let i = 0; i < half; i++) {
      const f = inv[i]!;
      const wavelen = (2 * Math.PI) / f;
      const scaled = wavelen > lowWavelen ? f / factor : f;
      if (wavelen < highWavelen || wavelen > lowWavelen) inv[i] = scaled;
      else {
        const smooth = (originalMaxPositions / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
        inv[i] = ((1 - smooth) * scaled) / factor + smooth * scaled;
      }
    }
  }
  return inv;
}
