import {
  type CaptionParts,
  CLIP_VOCABULARY,
  ClipRanker,
  captionParts,
  clipTags,
  isLabelFailure,
  readVocabulary,
  type ScoredTag,
  taggerTags,
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

/** Each image's tags (with their roles and scores) and its caption parts, or why it could not be labelled. */
export type ModelLabels = Map<string, { tags: ScoredTag[]; parts: CaptionParts } | { error: string }>;

const labelled = (tags: ScoredTag[]) => ({ tags, parts: captionParts(tags) });

/**
 * Runs the WD14 tagger or CLIP ranking over `images` with a progress line on stderr (stdout stays
 * free for the report and `--json`), and gives each tag found its role in a caption.
 */
export async function labelWithModel(
  settings: Wd14Settings | ClipSettings,
  images: readonly string[],
): Promise<ModelLabels> {
  const progress = new ProgressDisplay(process.stderr);
  const started = Date.now();
  const onNotice = (message: string) => progress.log(`lora: ${message}`);
  const onProgress = (done: number, total: number) =>
    progress.show(formatLabelProgress(done, total, (Date.now() - started) / 1000), {
      last: done === total,
      fraction: done / total,
    });
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
          isLabelFailure(result) ? result : labelled(taggerTags(result, { rating: settings.ratings })),
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
      labels.set(result.path, isLabelFailure(result) ? result : labelled(clipTags(result)));
    }
  } finally {
    progress.finish();
    await ranker.dispose();
  }
  return labels;
}
