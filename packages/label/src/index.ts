// The labelling API.
export {
  type CaptionParts,
  captionParts,
  clipTags,
  DEFAULT_CORE_TAGS,
  isMoodTag,
  type ScoredTag,
  taggerTags,
} from './caption-parts.ts';
export {
  CLIP_CONTEXT_LENGTH,
  type ClipOptions,
  ClipRanker,
  type ClipResult,
  type PhraseScore,
  type RankedImage,
  type RankOptions,
} from './clip.ts';
export { isLabelFailure, type LabelFailure, type LoadOptions, MAX_LABEL_BATCH } from './common.ts';
export { LabelError, type LabelErrorCode } from './label-error.ts';
export { MAX_TAGGER_TAGS, readTaggerTags, type TagCategory, type TaggerTag, tagText } from './tag-list.ts';
export { writeTinyClip, writeTinyTagger } from './tiny-models.ts';
export {
  CLIP_VOCABULARY,
  type ClipVocabulary,
  MAX_VOCABULARY_BYTES,
  MAX_VOCABULARY_PHRASES,
  MOOD_CATEGORIES,
  readVocabulary,
} from './vocabulary.ts';
export {
  DEFAULT_CHARACTER_THRESHOLD,
  DEFAULT_GENERAL_THRESHOLD,
  type TaggedImage,
  type TaggerOptions,
  type TaggerResult,
  type TagScore,
  Wd14Tagger,
} from './wd14.ts';
