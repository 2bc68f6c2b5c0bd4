import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, mkdir, mkdtemp, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ChatTemplate, resolveChatTemplate } from './chat-template.ts';
import { DatasetError } from './errors.ts';
import { createRng } from './rng.ts';
import { validationIndices } from './split.ts';
import { detectFormat, type TextFormat, toExample } from './text-formats.ts';
import { readTextRecords } from './text-records.ts';
import { IGNORE_INDEX, tokenizeExample } from './tokenize-example.ts';
import type { TextTokenizer } from './tokenizer.ts';

/** Bump when tokenization or the file layout changes, so stale token caches stop matching. */
const CACHE_FORMAT_VERSION = 1;
/** `createRng(seed, TEXT_ORDER_STREAM, epoch)`: the epoch's example order. */
const TEXT_ORDER_STREAM = 3;
/** Int32 values buffered before a write: 4 MB, few syscalls, bounded memory. */
const WRITE_CHUNK = 1 << 20;

/** Longest sequence accepted: beyond every context window trained here, and a typo guard. */
export const MAX_SEQ_LEN = 1 << 20;

export interface TextDatasetOptions {
  /** A .jsonl, .json or .csv file. */
  path: string;
  tokenizer: TextTokenizer;
  /** Record format (default 'auto': each record's own fields decide). */
  format?: TextFormat | 'auto';
  /** Chat template: a built-in name or Jinja source; default the model's own. */
  template?: string;
  maxSeqLen: number;
  trainOnPrompt?: boolean;
  /** Concatenate examples (in file order) into sequences of up to maxSeqLen tokens. */
  packing?: boolean;
  batchSize: number;
  seed: number;
  /**
   * Where tokenized examples live, keyed by the data file's content, the tokenizer and these
   * settings, so a second run reuses them. Default: a temporary folder removed by `close()`.
   */
  cacheDir?: string;
  /**
   * Only one side of a validation split (`validationIndices` over the file's records): the held-out
   * records (`validation`) or the others (`train`).
   */
  split?: { fraction: number; seed: number; part: 'train' | 'validation' };
}

export interface TextDatasetStats {
  readonly records: number;
  /** Training sequences (fewer than records when packing). */
  readonly sequences: number;
  /** Records cut to maxSeqLen. */
  readonly truncated: number;
  /** Records with nothing left to learn after truncation (the response was cut off entirely). */
  readonly skipped: number;
  readonly tokens: number;
  /** Tokens with a label, i.e. that the loss sees. */
  readonly learnedTokens: number;
  readonly formats: Partial<Record<TextFormat, number>>;
}

export interface TextBatch {
  readonly epoch: number;
  readonly step: number;
  readonly batchSize: number;
  /** Length of the longest sequence in the batch; the others are right-padded to it. */
  readonly seqLen: number;
  /** int32 [batchSize, seqLen]; padding is the tokenizer's pad id. */
  readonly inputIds: Int32Array;
  /** int32 [batchSize, seqLen], aligned with inputIds (not shifted); -100 where nothing is learned. */
  readonly labels: Int32Array;
  /** int32 [batchSize, seqLen]: 1 for tokens, 0 for padding. */
  readonly attentionMask: Int32Array;
  /** Which sequences (0-based, in build order) the batch holds. */
  readonly sequences: number[];
}

/** Token ids and labels of one sequence, as `TextDataset.sequence` returns them. */
export interface TokenSequence {
  readonly inputIds: Int32Array;
  readonly labels: Int32Array;
}

/** Right-pads sequences to the longest into one padded batch with its attention mask. */
export function padSequences(
  sequences: readonly TokenSequence[],
  padId: number,
): Pick<TextBatch, 'batchSize' | 'seqLen' | 'inputIds' | 'labels' | 'attentionMask'> {
  const seqLen = Math.max(...sequences.map((s) => s.inputIds.length));
  const batchSize = sequences.length;
  const inputIds = new Int32Array(batchSize * seqLen).fill(padId);
  const labels = new Int32Array(batchSize * seqLen).fill(IGNORE_INDEX);
  const attentionMask = new Int32Array(batchSize * seqLen);
  for (const [row, sequence] of sequences.entries()) {
    inputIds.set(sequence.inputIds, row * seqLen);
    labels.set(sequence.labels, row * seqLen);
    attentionMask.fill(1, row * seqLen, row * seqLen + sequence.inputIds.length);
  }
  return { batchSize, seqLen, inputIds, labels, attentionMask };
}

async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** A growable Uint32 list: one entry per sequence, 4 bytes each, even for millions of records. */
class Lengths {
  values = new Uint32Array(1024);
  size = 0;
  push(value: number): void {
    if (this.size === this.values.length) {
      const grown = new Uint32Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.size++] = value;
  }
  toArray(): Uint32Array {
    return this.values.slice(0, this.size);
  }
}

/** Appends [ids…, labels…] per sequence to a file through a fixed buffer. */
class SequenceWriter {
  private readonly buffer = new Int32Array(WRITE_CHUNK);
  private used = 0;
  readonly lengths = new Lengths();
  constructor(private readonly handle: FileHandle) {}

  async add(ids: readonly number[], labels: readonly number[]): Promise<void> {
    this.lengths.push(ids.length);
    for (const part of [ids, labels]) {
      for (const value of part) {
        if (this.used === this.buffer.length) await this.flush();
        this.buffer[this.used++] = value;
      }
    }
  }

  async flush(): Promise<void> {
    if (this.used === 0) return;
    await this.handle.write(new Uint8Array(this.buffer.buffer, 0, this.used * 4));
    this.used = 0;
  }
}

/**
 * An instruction or text dataset, tokenized once into a file (so a million records never sit in
 * memory) and served as padded batches. Epoch e's order is a shuffle drawn from
 * `createRng(seed, order, e)`, so training resumes at any (epoch, step) directly.
 */
export class TextDataset {
  readonly stats: TextDatasetStats;
  readonly stepsPerEpoch: number;
  private readonly lengths: Uint32Array;
  private readonly offsets: Float64Array;
  private readonly handle: FileHandle;
  private readonly options: TextDatasetOptions;
  private readonly ownedDir: string | undefined;
  private ordered: { epoch: number; order: Uint32Array } | undefined;

  private constructor(
    options: TextDatasetOptions,
    handle: FileHandle,
    lengths: Uint32Array,
    stats: TextDatasetStats,
    ownedDir: string | undefined,
  ) {
    this.options = options;
    this.handle = handle;
    this.lengths = lengths;
    this.stats = stats;
    this.ownedDir = ownedDir;
    this.offsets = new Float64Array(lengths.length);
    let offset = 0;
    for (const [i, length] of lengths.entries()) {
      this.offsets[i] = offset;
      offset += length * 8; // ids and labels, 4 bytes each
    }
    this.stepsPerEpoch = Math.ceil(lengths.length / options.batchSize);
  }

  /** Reads, validates, tokenizes (or reuses the cache) and opens the dataset. */
  static async build(options: TextDatasetOptions): Promise<TextDataset> {
    for (const [name, value, max] of [
      ['batchSize', options.batchSize, Number.MAX_SAFE_INTEGER],
      ['maxSeqLen', options.maxSeqLen, MAX_SEQ_LEN],
    ] as const) {
      if (!Number.isInteger(value) || value < 1 || value > max) {
        throw new DatasetError(
          'E_INVALID_OPTIONS',
          `${name} must be an integer from 1 to ${max}, got ${value}.`,
        );
      }
    }
    createRng(options.seed); // validates the seed
    const ownedDir =
      options.cacheDir === undefined ? await mkdtemp(join(tmpdir(), 'lora-tokens-')) : undefined;
    const dir = options.cacheDir ?? ownedDir!;
    await mkdir(dir, { recursive: true });
    const key = createHash('sha256')
      .update(
        JSON.stringify([
          CACHE_FORMAT_VERSION,
          await hashFile(options.path),
          options.tokenizer.fingerprint,
          options.format ?? 'auto',
          options.template ?? null,
          options.maxSeqLen,
          options.trainOnPrompt === true,
          options.packing === true,
          options.split ?? null,
        ]),
      )
      .digest('hex');
    const files = {
      tokens: join(dir, `${key}.tokens`),
      index: join(dir, `${key}.index`),
      stats: join(dir, `${key}.json`),
    };
    try {
      let loaded = await TextDataset.loadCached(files);
      if (!loaded) {
        await TextDataset.tokenizeInto(options, files);
        loaded = await TextDataset.loadCached(files);
      }
      if (!loaded)
        throw new DatasetError('E_INVALID_STATE', `The token cache in ${dir} could not be read back.`);
      if (loaded.lengths.length === 0) {
        await loaded.handle.close();
        throw new DatasetError(
          'E_EMPTY_DATASET',
          `${options.path}: no training sequences (${loaded.stats.records} records, ${loaded.stats.skipped} with nothing to learn after truncation to ${options.maxSeqLen} tokens).`,
          { path: options.path },
        );
      }
      return new TextDataset(options, loaded.handle, loaded.lengths, loaded.stats, ownedDir);
    } catch (error) {
      if (ownedDir) await rm(ownedDir, { recursive: true, force: true });
      throw error;
    }
  }

  private static async loadCached(files: { tokens: string; index: string; stats: string }) {
    let stats: TextDatasetStats;
    let index: Buffer;
    try {
      stats = JSON.parse(await readFile(files.stats, 'utf8')) as TextDatasetStats;
      index = await readFile(files.index);
    } catch {
      return undefined;
    }
    const lengths = new Uint32Array(
      index.buffer.slice(index.byteOffset, index.byteOffset + index.byteLength),
    );
    if (lengths.length !== stats.sequences) return undefined;
    const handle = await open(files.tokens, 'r');
    // A token file of the wrong size (a crash, a full disk) is rebuilt rather than read as garbage.
    const expected = lengths.reduce((sum, length) => sum + length * 8, 0);
    if ((await handle.stat()).size !== expected) {
      await handle.close();
      return undefined;
    }
    return { stats, lengths, handle };
  }

  private static async tokenizeInto(
    options: TextDatasetOptions,
    files: { tokens: string; index: string; stats: string },
  ): Promise<void> {
    const suffix = `.${randomUUID()}.tmp`;
    const handle = await open(files.tokens + suffix, 'w');
    const writer = new SequenceWriter(handle);
    let template: ChatTemplate | undefined;
    const counts = { records: 0, truncated: 0, skipped: 0, tokens: 0, learnedTokens: 0 };
    const formats: Partial<Record<TextFormat, number>> = {};
    const pack = { ids: [] as number[], labels: [] as number[] };
    const flushPack = async () => {
      if (pack.ids.length === 0) return;
      await writer.add(pack.ids, pack.labels);
      pack.ids = [];
      pack.labels = [];
    };
    try {
      const held = options.split && (await heldOutRecords(options.path, options.split));
      let index = -1;
      for await (const record of readTextRecords(options.path)) {
        index++;
        if (held && held.has(index) !== (options.split!.part === 'validation')) continue;
        counts.records++;
        const example = toExample(record, options.format ?? 'auto');
        const format =
          options.format && options.format !== 'auto' ? options.format : detectFormat(record.record)!;
        formats[format] = (formats[format] ?? 0) + 1;
        if (example.kind === 'chat') {
          template ??= resolveChatTemplate(options.template, options.tokenizer.chatTemplate);
        }
        const tokenized = (() => {
          try {
            return tokenizeExample(example, options.tokenizer, {
              ...(template === undefined ? {} : { template }),
              maxSeqLen: options.maxSeqLen,
              ...(options.trainOnPrompt === undefined ? {} : { trainOnPrompt: options.trainOnPrompt }),
            });
          } catch (error) {
            if (DatasetError.isInstance(error)) {
              throw new DatasetError(error.code, `${record.where}: ${error.message}`, {
                path: record.path,
                ...(record.line === undefined ? {} : { line: record.line }),
                cause: error,
              });
            }
            throw error;
          }
        })();
        if (tokenized.fullLength > options.maxSeqLen) counts.truncated++;
        const learned = tokenized.labels.filter((label) => label !== IGNORE_INDEX).length;
        if (learned === 0) {
          counts.skipped++;
          continue;
        }
        counts.tokens += tokenized.inputIds.length;
        counts.learnedTokens += learned;
        if (!options.packing) {
          await writer.add(tokenized.inputIds, tokenized.labels);
          continue;
        }
        if (pack.ids.length + tokenized.inputIds.length > options.maxSeqLen) await flushPack();
        pack.ids.push(...tokenized.inputIds);
        pack.labels.push(...tokenized.labels);
      }
      await flushPack();
      await writer.flush();
    } catch (error) {
      await handle.close();
      await rm(files.tokens + suffix, { force: true });
      throw error;
    }
    await handle.close();
    const lengths = writer.lengths.toArray();
    const stats: TextDatasetStats = { ...counts, sequences: lengths.length, formats };
    // The stats file is written last: it marks the cache entry complete.
    await rename(files.tokens + suffix, files.tokens);
    await writeFile(files.index + suffix, new Uint8Array(lengths.buffer, 0, lengths.byteLength));
    await rename(files.index + suffix, files.index);
    await writeFile(files.stats + suffix, JSON.stringify(stats));
    await rename(files.stats + suffix, files.stats);
  }

  /** The order of sequences in `epoch`: a pure function of (seed, epoch). */
  epochOrder(epoch: number): Uint32Array {
    if (!Number.isInteger(epoch) || epoch < 0) {
      throw new DatasetError('E_OUT_OF_RANGE', `epoch must be a non-negative integer, got ${epoch}.`);
    }
    if (this.ordered?.epoch !== epoch) {
      const order = Uint32Array.from({ length: this.lengths.length }, (_, i) => i);
      createRng(this.options.seed, TEXT_ORDER_STREAM, epoch).shuffle(order);
      this.ordered = { epoch, order };
    }
    return this.ordered.order;
  }

  /** One sequence's token ids and labels. */
  async sequence(index: number): Promise<TokenSequence> {
    const length = this.lengths[index];
    if (length === undefined) {
      throw new DatasetError(
        'E_OUT_OF_RANGE',
        `sequence ${index} does not exist (there are ${this.lengths.length}).`,
      );
    }
    const bytes = new Uint8Array(length * 8);
    await this.handle.read(bytes, 0, bytes.length, this.offsets[index]!);
    const values = new Int32Array(bytes.buffer);
    return { inputIds: values.subarray(0, length), labels: values.subarray(length) };
  }

  /** Batch `step` of `epoch`, right-padded to its longest sequence. */
  async loadBatch(epoch: number, step: number): Promise<TextBatch> {
    const order = this.epochOrder(epoch);
    const { batchSize } = this.options;
    if (!Number.isInteger(step) || step < 0 || step >= this.stepsPerEpoch) {
      throw new DatasetError(
        'E_OUT_OF_RANGE',
        `step ${step} is outside epoch ${epoch}, which has ${this.stepsPerEpoch} steps (0..${this.stepsPerEpoch - 1}).`,
      );
    }
    const sequences = [...order.subarray(step * batchSize, (step + 1) * batchSize)];
    const loaded = await Promise.all(sequences.map((index) => this.sequence(index)));
    return { epoch, step, ...padSequences(loaded, this.options.tokenizer.padId), sequences };
  }

  /** Batches of `epoch` from `startStep` (for resume), reading the next batch while one is used. */
  async *batches(epoch: number, startStep = 0): AsyncGenerator<TextBatch> {
    if (!Number.isInteger(startStep) || startStep < 0 || startStep > this.stepsPerEpoch) {
      throw new DatasetError(
        'E_OUT_OF_RANGE',
        `startStep ${startStep} is outside epoch ${epoch} (0..${this.stepsPerEpoch}).`,
      );
    }
    let next = startStep < this.stepsPerEpoch ? this.loadBatch(epoch, startStep) : undefined;
    for (let step = startStep; next !== undefined; step++) {
      const current = await next;
      next = step + 1 < this.stepsPerEpoch ? this.loadBatch(epoch, step + 1) : undefined;
      next?.catch(() => {});
      yield current;
    }
  }

  /** Closes the token file and removes it when it lives in a temporary folder. */
  async close(): Promise<void> {
    await this.handle.close();
    if (this.ownedDir) await rm(this.ownedDir, { recursive: true, force: true });
  }
}

/** The record indices of `path` that a validation split holds out. */
async function heldOutRecords(path: string, split: { fraction: number; seed: number }): Promise<Set<number>> {
  let count = 0;
  for await (const _ of readTextRecords(path)) count++;
  return validationIndices(count, split.fraction, split.seed, `records in ${path}`);
}
