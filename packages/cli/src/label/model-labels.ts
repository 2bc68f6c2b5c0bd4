import {
  type CaptionParts,
  CLIP_VOCABULARY,
  ClipRanker,
  clipCaptionParts,
  isLabelFailure,
  readVocabulary,
  taggerCaptionParts,
  Wd14Tagger,
} from '@lora/label';
import type { Device } from '@lora/trainer-ort';
import { ProgressDisplay } from '../run/progress.ts';
import { formatLabelProgress } from './progress.ts';

export interface Wd14Settings {
  model: 'wd14';
  device: Device;
  modelPath: string;
  tagsPath: string;
  generalThreshold?: number;
  characterThreshold?: number;
  ratings: boolean;
}

export interface ClipSettings {
  model: 'clip';
  device: Device;
  folder: string;
  vocabPath?: string;
  topK?: number;
}

/** Caption parts per image path, or the reason an image could not be labelled. */
export type ModelLabels = Map<string, CaptionParts | { error: string }>;

/**
 * Runs the WD14 tagger or CLIP ranking over `images` with a progress line on stderr (stdout stays
 * free for the report and `--json`), and turns each result into caption parts.
 */
export async function labelWithModel(
  settings: Wd14Settings | ClipSettings,
  images: readonly string[],
): Promise<ModelLabels> {
  const progress = new ProgressDisplay(process.stderr);
  const started = Date.now();
  const onNotice = (message: string) => progress.log(`lora: ${message}`);
  const onProgress = (done: number, total: number) =>
    progress.show(formatLabelProgress(done, total, (Date.now() - started) / 1000), done === total);
  const labels: ModelLabels = new Map();
  if (settings.model === 'wd14') {
    const tagger = await Wd14Tagger.load(settings.modelPath, settings.tagsPath, {
      ...(settings.generalThreshold === undefined ? {} : { generalThreshold: settings.generalThreshold }),
      ...(settings.characterThreshold === undefined
        ? {}
        : { characterThreshold: settings.characterThreshold }),
      device: settings.device,
      onNotice,
    });
    try {
      for (const result of await tagger.tag(images, onProgress)) {
        labels.set(
          result.path,
          isLabelFailure(result) ? result : taggerCaptionParts(result, { rating: settings.ratings }),
        );
      }
    } finally {
      progress.finish();
      await tagger.dispose();
    }
    return labels;
  }
  const vocabulary =
    settings.vocabPath === undefined ? CLIP_VOCABULARY : await readVocabulary(settings.vocabPath);
  const ranker = await ClipRanker.load(settings.folder, { device: settings.device, onNotice });
  try {
    const results = await ranker.rank(images, vocabulary, {
      ...(settings.topK === undefined ? {} : { topK: settings.topK }),
      onProgress,
    });
    for (const result of results) {
      labels.set(result.path, isLabelFailure(result) ? result : clipCaptionParts(result));
    }
  } finally {
    progress.finish();
    await ranker.dispose();
  }
  return labels;
}
