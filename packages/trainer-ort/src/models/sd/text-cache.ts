/**
 * Text-encoder outputs computed once, before training, when no text encoder is trained and the
 * captions never change (no shuffling, no caption or tag dropout), as kohya's
 * `--cache_text_encoder_outputs` does: each distinct caption's conditioning — the states the
 * UNet's cross-attention reads and, for SDXL, the pooled embedding — comes from an inference graph
 * of the text encoder(s) and is stored on disk, so the training graph holds neither the encoders'
 * weights nor their work. A file's name is a hash of the token ids, the encoders' weights and
 * sizes, and clip_skip, so a changed model or tokenizer is never read from the cache.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomically } from '@lora/dataset';
import { Graph, hostTensor, writeModel } from '@lora/engine';
import { chooseDevice, type Device } from '../../device.ts';
import { Session } from '../../session.ts';
import { ModelError } from '../model-error.ts';
import type { SdCheckpoint } from './checkpoint.ts';
import { weightsFingerprint } from './latents.ts';
import { buildTextEncoding, SD_LOSS_INPUTS } from './loss.ts';
import type { ClipTokenizer } from './model-files.ts';

/** Bumped when the cached bytes would mean something else. */
const CACHE_FORMAT = 1;
/** Captions encoded per session run. */
const ENCODE_BATCH = 8;

export interface TextCacheOptions {
  /** Where the cached conditionings go (`<output_dir>/cache/text`). */
  folder: string;
  /** Folder the encoder graph is written to (the run's `graphs/`). */
  graphs: string;
  device: Device;
  clipSkip: number;
  onNotice?: (message: string) => void;
}

/** The conditioning of a batch of captions, as the loss graph's `text: 'states'` inputs take it. */
export interface CachedText {
  /** `[b, tokens, cross-attention dim]`. */
  states: Float32Array;
  /** SDXL: `[b, pooled dim]`. */
  textEmbeds?: Float32Array;
}

export class TextConditioningCache {
  private constructor(
    private readonly checkpoint: SdCheckpoint,
    private readonly tokenizer: ClipTokenizer,
    private readonly tokenizer2: ClipTokenizer | undefined,
    private readonly options: TextCacheOptions,
    private readonly fingerprint: string,
  ) {}

  /** The cache of `checkpoint`'s text encoders (SDXL: both, with `tokenizer2` for the second). */
  static async open(
    checkpoint: SdCheckpoint,
    tokenizer: ClipTokenizer,
    tokenizer2: ClipTokenizer | undefined,
    options: TextCacheOptions,
  ): Promise<TextConditioningCache> {
    const { textEncoder, textEncoder2 } = checkpoint.config;
    const hash = createHash('sha256').update(JSON.stringify([CACHE_FORMAT, options.clipSkip]));
    hash.update(await weightsFingerprint(checkpoint, 'text_encoder', textEncoder));
    if (textEncoder2) hash.update(await weightsFingerprint(checkpoint, 'text_encoder_2', textEncoder2));
    await mkdir(options.folder, { recursive: true });
    return new TextConditioningCache(checkpoint, tokenizer, tokenizer2, options, hash.digest('hex'));
  }

  private get tokens(): number {
    return this.checkpoint.config.textEncoder.maxPositions;
  }

  private get widths(): { states: number; pooled: number } {
    const { unet, textEncoder2 } = this.checkpoint.config;
    return { states: this.tokens * unet.crossAttentionDim, pooled: textEncoder2?.projectionDim ?? 0 };
  }

  /** The file of one caption's conditioning: the hash of its token ids and the encoders'. */
  private fileOf(caption: string): string {
    const ids = [this.tokenizer.encode([caption]), this.tokenizer2?.encode([caption])];
    const key = createHash('sha256').update(this.fingerprint);
    for (const part of ids)
      if (part) key.update(new Uint8Array(part.buffer, part.byteOffset, part.byteLength));
    return join(this.options.folder, `${key.digest('hex')}.f32`);
  }

  /** Encodes every distinct caption whose conditioning is not on disk yet, then frees the encoders. */
  async fill(captions: readonly string[]): Promise<{ encoded: number; reused: number }> {
    const missing: string[] = [];
    const distinct = [...new Set(captions)];
    for (const caption of distinct) if (!(await this.read(caption))) missing.push(caption);
    if (missing.length === 0) return { encoded: 0, reused: distinct.length };
    const session = await this.session();
    try {
      const { states, pooled } = this.widths;
      for (let at = 0; at < missing.length; at += ENCODE_BATCH) {
        const part = missing.slice(at, at + ENCODE_BATCH);
        const feeds = {
          [SD_LOSS_INPUTS.inputIds]: hostTensor(
            'int64',
            [part.length, this.tokens],
            this.tokenizer.encode(part),
          ),
          ...(this.tokenizer2
            ? {
                [SD_LOSS_INPUTS.inputIds2]: hostTensor(
                  'int64',
                  [part.length, this.tokens],
                  this.tokenizer2.encode(part),
                ),
              }
            : {}),
        };
        const out = await session.run(feeds);
        const stateData = out['states']!.data as Float32Array;
        const pooledData = out['pooled']?.data as Float32Array | undefined;
        for (const [i, caption] of part.entries()) {
          const record = new Float32Array(states + pooled);
          record.set(stateData.subarray(i * states, (i + 1) * states));
          if (pooledData) record.set(pooledData.subarray(i * pooled, (i + 1) * pooled), states);
          await writeFileAtomically(
            this.fileOf(caption),
            new Uint8Array(record.buffer, record.byteOffset, record.byteLength),
          );
        }
      }
    } finally {
      await session.dispose();
    }
    return { encoded: missing.length, reused: distinct.length - missing.length };
  }

  /** The cached conditioning of `captions`, in order. */
  async conditioning(captions: readonly string[]): Promise<CachedText> {
    const { states, pooled } = this.widths;
    const out = new Float32Array(captions.length * states);
    const embeds = pooled > 0 ? new Float32Array(captions.length * pooled) : undefined;
    for (const [i, caption] of captions.entries()) {
      const record = await this.read(caption);
      if (!record) {
        throw new ModelError(
          'E_MODEL_BATCH',
          `no cached text-encoder output for the caption "${caption}" in ${this.options.folder}; was the cache removed during the run? Start the run again (resume: auto) to rebuild it`,
        );
      }
      out.set(record.subarray(0, states), i * states);
      embeds?.set(record.subarray(states), i * pooled);
    }
    return { states: out, ...(embeds ? { textEmbeds: embeds } : {}) };
  }

  private async read(caption: string): Promise<Float32Array | undefined> {
    const { states, pooled } = this.widths;
    let bytes: Buffer;
    try {
      bytes = await readFile(this.fileOf(caption));
    } catch {
      return undefined;
    }
    // Written whole or not at all (renamed into place): another length is another format's file.
    if (bytes.byteLength !== (states + pooled) * 4) return undefined;
    return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  }

  /** The text encoder(s) alone, in float32, without LoRA. */
  private async session(): Promise<Session> {
    const { checkpoint, options } = this;
    const graph = new Graph('text_encoders');
    const ids = graph.input(SD_LOSS_INPUTS.inputIds, 'int64', ['batch', this.tokens]);
    const ids2 = this.tokenizer2 && graph.input(SD_LOSS_INPUTS.inputIds2, 'int64', ['batch', this.tokens]);
    const { states, pooled } = buildTextEncoding(checkpoint, ids, ids2, {
      clipSkip: options.clipSkip,
      dtype: 'float32',
    });
    graph.output(states, 'states');
    if (pooled) graph.output(pooled, 'pooled');
    const path = await writeModel(graph, options.graphs, {
      fileName: 'text_encoders.onnx',
      ...(options.onNotice ? { onNotice: options.onNotice } : {}),
    });
    return Session.create(path, { device: (await chooseDevice(options.device)).device });
  }
}
