import { PEER_KEYS } from './keys.ts';
import { CONFIG_KEYS, type ConfigKey } from './schema.ts';

/** Values other trainers (or habit) use for our enum keys, mapped to ours, with the reason when needed. */
const VALUE_ALIASES: Partial<Record<string, Record<string, string>>> = {
  mixed_precision: {
    fp32: 'no',
    float32: 'no',
    none: 'no',
    false: 'no',
    float16: 'fp16',
    half: 'fp16',
    bfloat16: 'bf16',
    true: 'auto',
  },
  optimizer: {
    adam: 'adamw',
    adamw_torch: 'adamw',
    adamw8bit: 'adamw (8-bit optimizers need bitsandbytes CUDA kernels; LoRA state is small enough for fp32)',
    adamw_8bit:
      'adamw (8-bit optimizers need bitsandbytes CUDA kernels; LoRA state is small enough for fp32)',
    pagedadamw8bit: 'adamw',
  },
  lr_scheduler: { cosine_with_warmup: 'cosine (with warmup_steps)', linear_with_warmup: 'linear' },
  device: { gpu: 'cuda', 'cuda:0': 'cuda (and device_ids: [0] for another GPU)', mps: 'webgpu' },
  dataset_format: { json: 'auto', jsonl: 'auto', openai: 'messages', chatml: 'messages' },
  prediction_type: { v: 'v_prediction', eps: 'epsilon', v_parameterization: 'v_prediction' },
  target_modules: {
    all: 'all-linear',
    'to_out.0': 'to_out',
    attn: 'to_q, to_k, to_v, to_out',
    mlp: 'gate_proj, up_proj, down_proj (llm) or ff (sd)',
  },
};

/** Optimal string alignment distance (Levenshtein plus adjacent transpositions). */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[] = new Array(rows * cols).fill(0);
  for (let i = 0; i < rows; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(
        d[(i - 1) * cols + j]! + 1,
        d[i * cols + j - 1]! + 1,
        d[(i - 1) * cols + j - 1]! + cost,
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, d[(i - 2) * cols + j - 2]! + 1);
      d[i * cols + j] = best;
    }
  }
  return d[rows * cols - 1]!;
}

/** The closest candidate within a typo's reach (about one edit per four characters), if any. */
export function closest(input: string, candidates: readonly string[]): string | undefined {
  const limit = Math.max(1, Math.floor(input.length / 4));
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const candidate of candidates) {
    const distance = editDistance(input, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

const normalise = (text: string) => text.trim().toLowerCase().replaceAll('-', '_');

/** " (did you mean …?)" for an unknown key: another trainer's name first, then case and typos. */
export function suggestKey(unknown: string): string {
  const name = normalise(unknown);
  const peer = Object.hasOwn(PEER_KEYS, name) ? PEER_KEYS[name] : undefined;
  if (peer) return `; did you mean "${peer.key}"? ("${unknown}" is the ${peer.peer} name)`;
  const key = (CONFIG_KEYS as readonly string[]).includes(name)
    ? name
    : closest(name, CONFIG_KEYS as readonly string[]);
  return key ? `; did you mean "${key as ConfigKey}"?` : '';
}

/** " (did you mean …?)" for a value outside an enum. */
export function suggestValue(key: string, value: unknown, allowed: readonly string[]): string {
  if (typeof value !== 'string' && typeof value !== 'boolean') return '';
  const text = normalise(String(value));
  const aliases = Object.hasOwn(VALUE_ALIASES, key) ? VALUE_ALIASES[key] : undefined;
  const alias = aliases && Object.hasOwn(aliases, text) ? aliases[text] : undefined;
  if (alias) return `; did you mean ${alias}?`;
  const match = allowed.find((option) => normalise(option) === text) ?? closest(text, allowed);
  return match ? `; did you mean ${match}?` : '';
}
