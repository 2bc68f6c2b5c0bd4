import { prepareTaggerImage, TAGGER_IMAGE_SIZE } from '@lora/dataset';
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
import { readTaggerTags, type TagCategory, type TaggerTag, tagText } from './tag-list.ts';

/** SmilingWolf's defaults: general tags above 0.35, characters (rarer, costlier when wrong) above 0.85. */
export const DEFAULT_GENERAL_THRESHOLD = 0.35;
export const DEFAULT_CHARACTER_THRESHOLD = 0.85;

/** Every WD14 tagger's input side. */
const SIZE = TAGGER_IMAGE_SIZE;

export interface TaggerOptions extends LoadOptions {
  /** Keep general tags scoring above this (0–1); default 0.35. */
  generalThreshold?: number;
  /** Keep character tags scoring above this (0–1); default 0.85. */
  characterThreshold?: number;
  /** Images per model run; default 8. */
  batchSize?: number;
}

export interface TagScore {
  /** As the tag list spells it (`long_hair`). */
  readonly tag: string;
  /** As a caption writes it (`long hair`; kaomoji such as `^_^` unchanged). */
  readonly text: string;
  readonly category: TagCategory;
  /** The model's sigmoid output, 0–1. */
  readonly confidence: number;
}

export interface TaggedImage {
  readonly path: string;
  /** General and character tags above their thresholds, highest confidence first. */
  readonly tags: TagScore[];
  /** The most likely rating tag (`general`, `sensitive`, …), when the list has ratings. */
  readonly rating: TagScore | undefined;
}

export type TaggerResult = TaggedImage | LabelFailure;

function checkThreshold(name: string, value: number): number {
  if (!(value >= 0 && value <= 1)) {
    throw new LabelError('E_LABEL_OPTIONS_INVALID', `${name} must be between 0 and 1, got ${value}.`);
  }
  return value;
}

/**
 * A WD14-style tagger (SmilingWolf's exports and models shaped like them): one float32 input
 * `[N, 448, 448, 3]` of BGR 0–255 pixels, white-padded to square, and one output `[N, tags]` of
 * sigmoid scores in `selected_tags.csv` order.
 */
export class Wd14Tagger {
  private constructor(
    private readonly session: Session,
    readonly tags: readonly TaggerTag[],
    private readonly settings: Required<
      Pick<TaggerOptions, 'generalThreshold' | 'characterThreshold' | 'batchSize'>
    >,
  ) {}

  /** Loads `modelPath` (`model.onnx`) with its tag list (`selected_tags.csv`). */
  static async load(modelPath: string, tagsPath: string, options: TaggerOptions = {}): Promise<Wd14Tagger> {
    const settings = {
      generalThreshold: checkThreshold(
        'generalThreshold',
        options.generalThreshold ?? DEFAULT_GENERAL_THRESHOLD,
      ),
      characterThreshold: checkThreshold(
        'characterThreshold',
        options.characterThreshold ?? DEFAULT_CHARACTER_THRESHOLD,
      ),
      batchSize: checkBatchSize(options.batchSize ?? 8),
    };
    const tags = await readTaggerTags(tagsPath);
    await checkModelFile(modelPath, 'tagger');
    const session = await loadSession(modelPath, await labelDevice(options), options.threads);
    if (session.inputNames.length !== 1 || session.outputNames.length < 1) {
      await session.dispose();
      throw new LabelError(
        'E_LABEL_MODEL_MISMATCH',
        `${modelPath} has inputs [${session.inputNames.join(', ')}] and outputs [${session.outputNames.join(', ')}]; a WD14 tagger has one image input [N, ${SIZE}, ${SIZE}, 3] and a score output. Is this the tagger's model.onnx?`,
        { path: modelPath },
      );
    }
    return new Wd14Tagger(session, tags, settings);
  }

  /** Tags each image, `batchSize` at a time; images that cannot be read come back as failures. */
  async tag(
    paths: readonly string[],
    onProgress?: (done: number, total: number) => void,
  ): Promise<TaggerResult[]> {
    const { batchSize } = this.settings;
    const results: TaggerResult[] = [];
    const pixels = SIZE * SIZE * 3;
    for (let start = 0; start < paths.length; start += batchSize) {
      const prepared = await prepareAll(paths.slice(start, start + batchSize), (path) =>
        prepareTaggerImage(path, SIZE),
      );
      const ready = prepared.flatMap((item) => (isLabelFailure(item) ? [] : [item]));
      const input = new Float32Array(ready.length * pixels);
      for (const [i, { data }] of ready.entries()) input.set(data, i * pixels);
      const scores =
        ready.length === 0
          ? new Float32Array(0)
          : await this.run(hostTensor('float32', [ready.length, SIZE, SIZE, 3], input), ready.length);
      let row = 0;
      for (const item of prepared) {
        if (isLabelFailure(item)) {
          results.push(item);
          continue;
        }
        results.push(
          this.select(item.path, scores.subarray(row * this.tags.length, (row + 1) * this.tags.length)),
        );
        row++;
      }
      onProgress?.(results.length, paths.length);
    }
    return results;
  }

  async dispose(): Promise<void> {
    await this.session.dispose();
  }

  private async run(input: HostTensor<'float32'>, count: number): Promise<Float32Array> {
    const [inputName] = this.session.inputNames;
    const [outputName] = this.session.outputNames;
    let output: HostTensor | undefined;
    try {
      output = (await this.session.run({ [inputName!]: input }, [outputName!]))[outputName!];
    } catch (error) {
      if (!TrainerOrtError.isInstance(error) || error.code !== 'E_RUN_FAILED') throw error;
      throw new LabelError(
        'E_LABEL_MODEL_MISMATCH',
        `${this.session.modelPath} does not take a float32 [N, ${SIZE}, ${SIZE}, 3] image batch, the input of a WD14 tagger (${messageOf(error)}). Is this the tagger's model.onnx?`,
        { path: this.session.modelPath, cause: error },
      );
    }
    const expected = [count, this.tags.length];
    if (
      output === undefined ||
      output.dtype !== 'float32' ||
      output.shape.length !== 2 ||
      output.shape[0] !== count
    ) {
      throw new LabelError(
        'E_LABEL_MODEL_MISMATCH',
        `${this.session.modelPath} returned ${output?.dtype} [${output?.shape.join(', ')}] where a tagger returns float32 [${expected.join(', ')}] scores.`,
        { path: this.session.modelPath },
      );
    }
    if (output.shape[1] !== this.tags.length) {
      throw new LabelError(
        'E_LABEL_TAGS_INVALID',
        `${this.session.modelPath} scores ${output.shape[1]} tags but the tag list has ${this.tags.length}; use the selected_tags.csv that came with this model.`,
        { path: this.session.modelPath },
      );
    }
    return output.data as Float32Array;
  }

  private select(path: string, scores: Float32Array): TaggedImage {
    const { generalThreshold, characterThreshold } = this.settings;
    const tags: TagScore[] = [];
    let rating: TagScore | undefined;
    for (const [i, { name, category }] of this.tags.entries()) {
      const score: TagScore = { tag: name, text: tagText(name), category, confidence: scores[i]! };
      if (category === 'rating') {
        if (rating === undefined || score.confidence > rating.confidence) rating = score;
      } else if (score.confidence > (category === 'character' ? characterThreshold : generalThreshold)) {
        tags.push(score);
      }
    }
    // Stable: equal scores keep the list's order.
    tags.sort((a, b) => b.confidence - a.confidence);
    return { path, tags, rating };
  }
}
