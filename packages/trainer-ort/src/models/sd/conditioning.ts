/**
 * What the UNet is conditioned on for a prompt and its negative, as A1111 builds it
 * (modules/sd_hijack_clip.py; SDXL: sd_models_xl.py over sgm's GeneralConditioner): the prompt's
 * chunks (`prompt.ts`) through the text encoder, each chunk's states weighted on their own, the
 * chunks joined along the tokens. SDXL runs every chunk through both encoders (OpenCLIP bigG reads
 * the chunk with "!" after its first EOS), weights each encoder's states on their own and sets them
 * side by side; its pooled embedding is bigG's of the first chunk. The shorter prompt is padded
 * with the empty prompt's chunks so cond and uncond run in one UNet batch.
 */
import { type PromptChunks, type PromptTokenizer, promptChunks, weightStates } from './prompt.ts';
import type { SdTextToLatent, TextCondition } from './text-to-latent.ts';

/**
 * SDXL's six size ids at A1111's defaults: original size = target size = the image's (height,
 * width), crop top-left (0, 0).
 */
export function a1111TimeIds(width: number, height: number): number[] {
  return [height, width, 0, 0, height, width];
}

/** A prompt's chunks and, for SDXL, the second encoder's token id rows of the same chunks. */
export interface ChunkedPrompt extends PromptChunks {
  ids2?: number[][];
}

/** A1111's `process_tokens` for an encoder whose pad differs from EOS: `pad` after each row's first EOS. */
export function withSecondEncoderRows(chunks: PromptChunks, eosId: number, pad: number): ChunkedPrompt {
  const ids2 = chunks.ids.map((row) => {
    const end = row.indexOf(eosId) + 1;
    return [...row.slice(0, end), ...Array<number>(row.length - end).fill(pad)];
  });
  return { ...chunks, ids2 };
}

/**
 * The conditions of `[prompt, negativePrompt]` (markup already stripped). SDXL with an empty
 * negative prompt gets zeros for its text states and pooled embedding, as A1111 forces
 * (`force_zero_embeddings`); its size ids stay. Zero states give the cross-attention zero keys and
 * values, so their token count does not matter.
 */
export async function promptConditions(
  text: SdTextToLatent,
  tokenizer: PromptTokenizer,
  prompts: readonly [string, string],
  sdxl: boolean,
): Promise<[TextCondition, TextCondition]> {
  // The vocabulary's "!", as training pads bigG's captions: id 0 in CLIP's, which A1111 and ComfyUI hard-code.
  const chunked = (prompt: string): ChunkedPrompt => {
    const chunks = promptChunks(prompt, tokenizer);
    return sdxl ? withSecondEncoderRows(chunks, tokenizer.eosId, tokenizer.openClipPadId ?? 0) : chunks;
  };
  const zeroNegative = sdxl && prompts[1] === '';
  const encoded = zeroNegative ? [prompts[0]] : prompts;
  const [cond, uncond] = await chunkConditions(text, encoded.map(chunked), chunked(''));
  if (!zeroNegative) return [cond!, uncond!];
  return [
    cond!,
    {
      states: new Float32Array(cond!.states.length),
      ...(cond!.pooled ? { pooled: new Float32Array(cond!.pooled.length) } : {}),
    },
  ];
}

/**
 * The condition of each chunked prompt, padded to one chunk count with `empty`'s chunk; all chunks
 * go through the encoders in one batch.
 */
export async function chunkConditions(
  text: SdTextToLatent,
  prompts: readonly ChunkedPrompt[],
  empty: ChunkedPrompt,
): Promise<TextCondition[]> {
  const count = Math.max(...prompts.map((p) => p.ids.length));
  const padded: ChunkedPrompt[] = prompts.map((p) => {
    const more = <T>(row: T) => Array<T>(count - p.ids.length).fill(row);
    return {
      ids: [...p.ids, ...more(empty.ids[0]!)],
      weights: [...p.weights, ...more(empty.weights[0]!)],
      ...(p.ids2 && empty.ids2 ? { ids2: [...p.ids2, ...more(empty.ids2[0]!)] } : {}),
    };
  });
  const rows = padded.flatMap((p) => p.ids);
  const second = padded.every((p) => p.ids2) ? padded.flatMap((p) => p.ids2!) : undefined;
  const { states, widths, pooled } = await text.textStates(rows, second);
  const tokens = rows[0]!.length;
  const width = states.length / (rows.length * tokens);
  return padded.map((p, i) => {
    const out = states.slice(i * count * tokens * width, (i + 1) * count * tokens * width);
    p.weights.forEach((weights, k) => {
      let offset = 0;
      // Each encoder's part of the chunk's states is weighted with its own mean, as A1111 does per embedder.
      for (const w of widths) {
        const at = (t: number) => (k * tokens + t) * width + offset;
        const part = new Float32Array(tokens * w);
        for (let t = 0; t < tokens; t++) part.set(out.subarray(at(t), at(t) + w), t * w);
        const weighted = weightStates(part, weights);
        for (let t = 0; t < tokens; t++) out.set(weighted.subarray(t * w, (t + 1) * w), at(t));
        offset += w;
      }
    });
    if (!pooled) return { states: out };
    const size = pooled.length / rows.length;
    return { states: out, pooled: pooled.slice(i * count * size, (i * count + 1) * size) };
  });
}
