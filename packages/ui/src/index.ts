export { UiError, type UiErrorCode } from './errors.ts';
export type { ImageEntry } from './server/api.ts';
export { MAX_DATASET_DEPTH } from './server/datasets.ts';
export { openBrowser } from './server/open-browser.ts';
export { MAX_PATH_CHARS } from './server/project-path.ts';
export { MAX_BODY_BYTES, startUi, type UiOptions, type UiServer } from './server/start.ts';
export { THUMBNAIL_CONCURRENCY, THUMBNAIL_SIDE } from './server/thumbnails.ts';
