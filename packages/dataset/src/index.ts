export { writeFileAtomically } from './atomic.ts';
export { MAX_IMAGE_PIXELS } from './bmp.ts';
export {
  type BucketAssignment,
  type BucketOptions,
  type BucketSelector,
  createBucketSelector,
  cropOffset,
  makeBucketResolutions,
  type Size,
} from './buckets.ts';
export {
  type CaptionConflict,
  type CaptionEdit,
  type CaptionTarget,
  type CaptionUpdate,
  MAX_SAVE_ATTEMPTS,
  updateCaptions,
} from './caption-files.ts';
export {
  type CaptionOptions,
  datasetTagFrequency,
  MAX_LINT_FINDINGS_PER_KIND,
  processCaption,
} from './captions.ts';
export {
  BUILTIN_TEMPLATES,
  type BuiltinTemplateName,
  type ChatTemplate,
  resolveChatTemplate,
} from './chat-template.ts';
export {
  type CheckOptions,
  checkDataset,
  type DatasetImage,
  type DatasetReport,
  type DatasetSummary,
} from './check.ts';
export { type CsvRecord, MAX_CSV_FIELD_CHARS, readCsvRecords } from './csv.ts';
export { DatasetError, type DatasetErrorCode } from './errors.ts';
export type { Finding, FindingCode, FindingSeverity } from './findings.ts';
export {
  type BucketInfo,
  type ImageBatch,
  ImageDataset,
  type ImageDatasetOptions,
  MAX_EPOCH_SAMPLES,
  type PlannedBatch,
} from './image-dataset.ts';
export { IMAGE_EXTENSIONS, isImagePath, MAX_IMAGE_FILE_BYTES, makeThumbnail } from './image-io.ts';
export {
  formatMetadataCsv,
  type MetadataCaption,
  type MetadataCsv,
  type MetadataProblem,
  type MetadataRow,
  readMetadataCsv,
  writeMetadataCsv,
} from './metadata-csv.ts';
export {
  CLIP_IMAGE_MEAN,
  CLIP_IMAGE_SIZE,
  CLIP_IMAGE_STD,
  type ClipImageOptions,
  MAX_MODEL_INPUT_SIZE,
  prepareClipImage,
  prepareTaggerImage,
  TAGGER_IMAGE_SIZE,
} from './model-input.ts';
export { createRng, Rng, type RngState } from './rng.ts';
export {
  type CaptionSource,
  MAX_CAPTION_BYTES,
  MAX_REPEATS,
  MAX_SCAN_DEPTH,
  type ScannedImage,
  type ScanOptions,
  type ScanResult,
  scanImageFolders,
} from './scan.ts';
export { validationIndices } from './split.ts';
export {
  MAX_RENDERED_BYTES,
  TEMPLATE_MEMORY_MB,
  TEMPLATE_TIME_BUDGET_MS,
} from './template-sandbox.ts';
export {
  checkTextDataset,
  MAX_REPORTED_PROBLEMS,
  type TextDatasetReport,
  type TextProblem,
} from './text-check.ts';
export {
  MAX_SEQ_LEN,
  padSequences,
  type TextBatch,
  TextDataset,
  type TextDatasetOptions,
  type TextDatasetStats,
  type TokenSequence,
} from './text-dataset.ts';
export {
  type ChatMessage,
  type ChatRole,
  detectFormat,
  TEXT_FORMATS,
  type TextExample,
  type TextFormat,
  toExample,
} from './text-formats.ts';
export { MAX_JSON_ARRAY_BYTES, readTextRecords, type TextRecord } from './text-records.ts';
export {
  IGNORE_INDEX,
  type TokenizedExample,
  type TokenizeOptions,
  tokenizeExample,
} from './tokenize-example.ts';
export { MAX_TOKENIZER_BYTES, TextTokenizer } from './tokenizer.ts';
