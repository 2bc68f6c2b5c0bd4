import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CLIP_IMAGE_SIZE, type ClipImageOptions, prepareClipImage, TextTokenizer } from '@lora/dataset';
import { type HostTensor, hostTensor } from '@lora/engine';
import type { Session } from '@lora/trainer-ort';
import { TrainerOrtError } from '@lora/trainer-ort';
import {
  checkBatchSize,
  checkModelFile,
  isLabelFailure,
  type LabelFailure,
  type LoadOptions,
  labelDevice,
  loadSession,
  messageOf,
  prepareAll,
} from './common.ts';
import { LabelError } from './label-error.ts';
import type { ClipVocabulary } from './vocabulary.ts';

/** CLIP's text context: 77 tokens, start and end markers included. */
export const CLIP_CONTEXT_LENGTH = 77;

/** Phrases per text-encoder run. */
const TEXT_BATCH = 64;

export interface ClipOptions extends LoadOptions {
  /** Images per vision-encoder run; default 8. */
  batchSize?: number;
}

export interface RankOptions {
  /** Phrases kept per category; default 3. */
  topK?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface PhraseScore {
  readonly phrase: string;
  /** Cosine similarity of the image and phrase embeddings, −1–1. */
  readonly score: number;
}

export interface RankedImage {
  readonly path: string;
  /** The `topK` phrases of each vocabulary category, best first. */
  readonly categories: Readonly<Record<string, PhraseScore[]>>;
}

export type ClipResult = RankedImage | LabelFailure;

/** Where Hugging Face exports (optimum, transformers.js) put the two encoders. */
const MODEL_FILES = {
  vision: ['vision_model.onnx', 'onnx/vision_model.onnx'],
  text: ['text_model.onnx', 'onnx/text_model.onnx'],
} as const;

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

async function findModel(folder: string, kind: keyof typeof MODEL_FILES): Promise<string> {
  for (const name of MODEL_FILES[kind]) {
    if (await exists(join(folder, name))) return join(folder, name);
  }
  throw new LabelError(
    'E_LABEL_FILE_NOT_FOUND',
    `${folder} has no CLIP ${kind} encoder (looked for ${MODEL_FILES[kind].join(' and ')}); pass a folder with the vision and text ONNX exports and tokenizer.json.`,
    { path: folder },
  );
}

/** Three per-channel numbers above `min` and below 10 (values far outside are not image statistics). */
const isTriple = (value: unknown, min: number): value is [number, number, number] =>
  Array.isArray(value) &&
  value.length === 3 &&
  value.every((v) => typeof v === 'number' && v > min && v < 10);

/**
 * Image size, mean and std from the export's `preprocessor_config.json` when it has one (models
 * other than OpenAI's CLIP normalise differently); CLIP's defaults otherwise.
 */
async function imageOptions(folder: string): Promise<ClipImageOptions> {
  const path = join(folder, 'preprocessor_config.json');
  if (!(await exists(path))) return {};
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  } catch (error) {
    throw new LabelError(
      'E_LABEL_OPTIONS_INVALID',
      `${path} is not valid JSON (${messageOf(error)}); fix it, or remove it to use CLIP's image settings.`,
      { path, cause: error },
    );
  }
  const crop = config['crop_size'];
  const size =
    typeof crop === 'number' ? crop : ((crop as { height?: unknown } | undefined)?.height ?? undefined);
  return {
    ...(typeof size === 'number' ? { size } : {}),
    ...(isTriple(config['image_mean'], -10) ? { mean: config['image_mean'] } : {}),
    ...(isTriple(config['image_std'], 0) ? { std: config['image_std'] } : {}),
  };
}

/** L2-normalises each `width`-long row in place, so that dot products are cosine similarities. */
function normalizeRows(data: Float32Array, width: number): Float32Array {
  for (let start = 0; start < data.length; start += width) {
    let sum = 0;
    for (let i = start; i < start + width; i++) sum += data[i]! * data[i]!;
    const scale = 1 / Math.max(Math.sqrt(sum), 1e-12);
    for (let i = start; i < start + width; i++) data[i]! *= scale;
  }
  return data;
}

function mismatch(session: Session, message: string, cause?: unknown): LabelError {
  return new LabelError('E_LABEL_MODEL_MISMATCH', `${session.modelPath} ${message}`, {
    path: session.modelPath,
    ...(cause === undefined ? {} : { cause }),
  });
}

/** Runs `session` and returns `output` as float32 `[rows, width]`, with errors that name the model. */
async function embed(
  session: Session,
  feeds: Record<string, HostTensor>,
  output: string,
  rows: number,
): Promise<{ data: Float32Array; width: number }> {
  let result: HostTensor | undefined;
  try {
    result = (await session.run(feeds, [output]))[output];
  } catch (error) {
    if (!TrainerOrtError.isInstance(error) || error.code !== 'E_RUN_FAILED') throw error;
    const shapes = Object.entries(feeds).map(([name, t]) => `${name} ${t.dtype} [${t.shape.join(', ')}]`);
    throw mismatch(session, `does not accept ${shapes.join(', ')} (${messageOf(error)}).`, error);
  }
  if (
    result === undefined ||
    result.dtype !== 'float32' ||
    result.shape.length !== 2 ||
    result.shape[0] !== rows
  ) {
    throw mismatch(
      session,
      `returned ${output} as ${result?.dtype} [${result?.shape.join(', ')}], not float32 [${rows}, dim].`,
    );
  }
  return { data: result.data as Float32Array, width: result.shape[1]! };
}

/**
 * CLIP zero-shot ranking, as CLIP Interrogator does it: image and phrase embeddings are
 * L2-normalised and each category's phrases ranked by cosine similarity. Loads a Hugging Face
 * ONNX export folder: `vision_model.onnx` (`pixel_values` → `image_embeds`), `text_model.onnx`
 * (`input_ids` → `text_embeds`; also `onnx/`), `tokenizer.json` + `tokenizer_config.json`.
 */
export class ClipRanker {
  private constructor(
    private readonly vision: Session,
    private readonly text: Session,
    private readonly tokenizer: TextTokenizer,
    private readonly image: ClipImageOptions,
    private readonly batchSize: number,
  ) {}

  static async load(folder: string, options: ClipOptions = {}): Promise<ClipRanker> {
    const batchSize = checkBatchSize(options.batchSize ?? 8);
    const visionPath = await findModel(folder, 'vision');
    const textPath = await findModel(folder, 'text');
    const tokenizer = await TextTokenizer.fromDir(folder);
    const image = await imageOptions(folder);
    await checkModelFile(visionPath, 'CLIP vision');
    await checkModelFile(textPath, 'CLIP text');
    const device = await labelDevice(options);
    const vision = await loadSession(visionPath, device, options.threads);
    const text = await loadSession(textPath, device, options.threads).catch(async (error: unknown) => {
      await vision.dispose();
      throw error;
    });
    const problem =
      checkIo(vision, ['pixel_values'], 'image_embeds') ?? checkIo(text, ['input_ids'], 'text_embeds');
    if (problem) {
      await Promise.all([vision.dispose(), text.dispose()]);
      throw problem;
    }
    return new ClipRanker(vision, text, tokenizer, image, batchSize);
  }

  /** Ranks every category of `vocabulary` against each image; unreadable images come back as failures. */
  async rank(
    paths: readonly string[],
    vocabulary: ClipVocabulary,
    options: RankOptions = {},
  ): Promise<ClipResult[]> {
    const topK = options.topK ?? 3;
    if (!Number.isInteger(topK) || topK < 1) {
      throw new LabelError('E_LABEL_OPTIONS_INVALID', `topK must be a whole number ≥ 1, got ${topK}.`);
    }
    const categories = Object.entries(vocabulary).filter(([, phrases]) => phrases.length > 0);
    if (categories.length === 0) {
      throw new LabelError('E_LABEL_VOCABULARY_INVALID', 'the vocabulary has no phrases to rank.');
    }
    const phrases = categories.flatMap(([, list]) => list);
    const text = await this.encodeText(phrases);
    const results: ClipResult[] = [];
    const size = this.image.size ?? CLIP_IMAGE_SIZE;
    const pixels = 3 * size * size;
    for (let start = 0; start < paths.length; start += this.batchSize) {
      const prepared = await prepareAll(paths.slice(start, start + this.batchSize), (path) =>
        prepareClipImage(path, this.image),
      );
      const ready = prepared.flatMap((item) => (isLabelFailure(item) ? [] : [item]));
      let images: Float32Array = new Float32Array(0);
      if (ready.length > 0) {
        const input = new Float32Array(ready.length * pixels);
        for (const [i, { data }] of ready.entries()) input.set(data, i * pixels);
        const feeds = { pixel_values: hostTensor('float32', [ready.length, 3, size, size], input) };
        const embedded = await embed(this.vision, feeds, 'image_embeds', ready.length);
        if (embedded.width !== text.width) {
          throw mismatch(
            this.vision,
            `embeds images in ${embedded.width} dimensions but the text model in ${text.width}; the two files come from different models.`,
          );
        }
        images = normalizeRows(embedded.data, text.width);
      }
      let row = 0;
      for (const item of prepared) {
        if (isLabelFailure(item)) {
          results.push(item);
          continue;
        }
        const image = images.subarray(row * text.width, (row + 1) * text.width);
        row++;
        let offset = 0;
        const ranked: Record<string, PhraseScore[]> = {};
        for (const [category, list] of categories) {
          const scored = list.map((phrase, i) => {
            const embedding = text.data.subarray((offset + i) * text.width, (offset + i + 1) * text.width);
            let score = 0;
            for (let d = 0; d < text.width; d++) score += image[d]! * embedding[d]!;
            return { phrase, score };
          });
          offset += list.length;
          ranked[category] = scored.sort((a, b) => b.score - a.score).slice(0, topK);
        }
        results.push({ path: item.path, categories: ranked });
      }
      options.onProgress?.(results.length, paths.length);
    }
    return results;
  }

  async dispose(): Promise<void> {
    await Promise.all([this.vision.dispose(), this.text.dispose()]);
  }

  /** Normalised text embeddings of `phrases`, padded to CLIP's 77-token context. */
  private async encodeText(phrases: readonly string[]): Promise<{ data: Float32Array; width: number }> {
    const chunks: Float32Array[] = [];
    let width = 0;
    const withMask = this.text.inputNames.includes('attention_mask');
    for (let start = 0; start < phrases.length; start += TEXT_BATCH) {
      const batch = phrases.slice(start, start + TEXT_BATCH);
      const { ids, mask } = clipInputIds(this.tokenizer, batch);
      const shape = [batch.length, CLIP_CONTEXT_LENGTH];
      const feeds: Record<string, HostTensor> = { input_ids: hostTensor('int64', shape, ids) };
      if (withMask) feeds['attention_mask'] = hostTensor('int64', shape, mask);
      const embedded = await embed(this.text, feeds, 'text_embeds', batch.length);
      width = embedded.width;
      chunks.push(normalizeRows(embedded.data, width));
    }
    const data = new Float32Array(phrases.length * width);
    let offset = 0;
    for (const chunk of chunks) {
      data.set(chunk, offset);
      offset += chunk.length;
    }
    return { data, width };
  }
}

/**
 * Token ids `[phrases, 77]` padded with the pad id, and the attention mask. A phrase longer than
 * the context is cut but keeps its end marker, the position CLIP pools the text embedding from.
 */
export function clipInputIds(
  tokenizer: TextTokenizer,
  phrases: readonly string[],
): { ids: BigInt64Array; mask: BigInt64Array } {
  const ids = new BigInt64Array(phrases.length * CLIP_CONTEXT_LENGTH).fill(BigInt(tokenizer.padId));
  const mask = new BigInt64Array(phrases.length * CLIP_CONTEXT_LENGTH);
  for (const [row, phrase] of phrases.entries()) {
    let tokens = tokenizer.encode(phrase, true);
    if (tokens.length > CLIP_CONTEXT_LENGTH)
      tokens = [...tokens.slice(0, CLIP_CONTEXT_LENGTH - 1), tokens.at(-1)!];
    for (const [i, id] of tokens.entries()) {
      ids[row * CLIP_CONTEXT_LENGTH + i] = BigInt(id);
      mask[row * CLIP_CONTEXT_LENGTH + i] = 1n;
    }
  }
  return { ids, mask };
}

/** A mismatch error when `session` lacks `required` inputs, has others, or lacks `output`. */
function checkIo(session: Session, required: readonly string[], output: string): LabelError | undefined {
  const optional = ['attention_mask'];
  const missing = required.filter((name) => !session.inputNames.includes(name));
  const unknown = session.inputNames.filter((name) => !required.includes(name) && !optional.includes(name));
  if (missing.length === 0 && unknown.length === 0 && session.outputNames.includes(output)) return undefined;
  return mismatch(
    session,
    `has inputs [${session.inputNames.join(', ')}] and outputs [${session.outputNames.join(', ')}]; a CLIP export needs ${required.join(', ')} in and ${output} out. Is it the right file of a CLIP ONNX export?`,
  );
}
