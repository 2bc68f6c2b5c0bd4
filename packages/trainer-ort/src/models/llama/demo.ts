/**
 * The demo base model: a tiny `LlamaForCausalLM` with random weights and a byte-level BPE
 * tokenizer learned from the demo data, written as a Hugging Face model folder (what a real
 * download looks like). It knows nothing: it exists so that a first run needs no download and
 * trains in a minute on a CPU. The same seed always gives the same bytes.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createRng, writeFileAtomically } from '@lora/dataset';
import { serialize } from '@lora/safetensors';
import { parseLlamaConfig } from './config.ts';
import { byteLevelTokenizerJson, learnByteLevelBpe } from './demo-bpe.ts';
import { demoRecords } from './demo-data.ts';
import { llamaTensorShapes } from './weights.ts';

/** `<|endoftext|>` pads, `<|im_end|>` ends each turn (and so is EOS), as in Qwen2's chatml. */
const SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] as const;
/** Merges learned from the demo data; it has fewer frequent pairs than this, so all are kept. */
const MAX_MERGES = 512;
/** Embedding rows are padded to a multiple of this, as real checkpoints pad their vocabularies. */
const VOCAB_MULTIPLE = 64;
const WEIGHTS_STREAM = 0x57656967; // 'Weig'

const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** The files of the demo model folder, by name. */
export type DemoModelFiles = ReadonlyMap<string, Uint8Array>;

/** The folder name `lora init --demo` gives the model under `models/`. */
export const DEMO_MODEL_NAME = 'tiny-llama';

/**
 * `config.json`, `model.safetensors` (float32), `tokenizer.json` and `tokenizer_config.json` of
 * the demo model, in memory (about 3 MB: 740 thousand float32 parameters).
 */
export function demoModelFiles(seed = 0): DemoModelFiles {
  const texts = demoRecords(seed).flatMap((r) => [r.instruction, r.output]);
  const bpe = learnByteLevelBpe(['user', 'assistant', ...texts], MAX_MERGES);
  const tokenizer = byteLevelTokenizerJson(bpe, SPECIAL_TOKENS);
  const tokens = bpe.vocab.size + SPECIAL_TOKENS.length;
  const idOf = (token: (typeof SPECIAL_TOKENS)[number]) => bpe.vocab.size + SPECIAL_TOKENS.indexOf(token);
  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: 128,
    intermediate_size: 256,
    num_hidden_layers: 4,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 32,
    vocab_size: Math.ceil(tokens / VOCAB_MULTIPLE) * VOCAB_MULTIPLE,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    hidden_act: 'silu',
    attention_bias: false,
    bos_token_id: null,
    eos_token_id: idOf('<|im_end|>'),
    pad_token_id: idOf('<|endoftext|>'),
    torch_dtype: 'float32',
  };
  const tokenizerConfig = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: null,
    eos_token: '<|im_end|>',
    pad_token: '<|endoftext|>',
    unk_token: null,
    model_max_length: config.max_position_embeddings,
    clean_up_tokenization_spaces: false,
    chat_template: CHATML_TEMPLATE,
  };
  const json = (value: object) => new TextEncoder().encode(`${JSON.stringify(value, null, 2)}\n`);
  return new Map([
    ['config.json', json(config)],
    ['model.safetensors', randomWeights(config, seed)],
    ['tokenizer.json', json(tokenizer)],
    ['tokenizer_config.json', json(tokenizerConfig)],
  ]);
}

/**
 * Norms are 1, embeddings ~ N(0, 1) and each matrix ~ N(0, 1 / fan_in), so activations keep
 * their scale through the layers. (transformers' N(0, 0.02²) for every matrix leaves a frozen
 * random model with near-uniform logits that no LoRA update can sharpen.)
 */
function randomWeights(config: Record<string, unknown>, seed: number): Uint8Array {
  const shapes = llamaTensorShapes(parseLlamaConfig(config));
  const rng = createRng(seed, WEIGHTS_STREAM);
  const tensors = [...shapes].map(([name, shape]) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const std = name === 'model.embed_tokens.weight' ? 1 : 1 / Math.sqrt(shape[1]!);
    const data = name.endsWith('norm.weight')
      ? new Float32Array(size).fill(1)
      : Float32Array.from({ length: size }, () => rng.normal() * std);
    return [name, { dtype: 'F32' as const, shape, data }] as const;
  });
  return serialize(tensors, { format: 'pt' });
}

/** Writes the demo model into `folder` (created if needed), each file atomically. */
export async function writeDemoModel(folder: string, seed = 0): Promise<void> {
  await mkdir(folder, { recursive: true });
  for (const [name, bytes] of demoModelFiles(seed)) {
    const path = join(folder, name);
    await writeFileAtomically(path, bytes);
  }
}
