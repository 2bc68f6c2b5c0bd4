/** What a validation finding is about; stable strings for tools and tests. */
export type FindingCode =
  | 'missing-caption'
  | 'empty-caption'
  | 'orphan-caption'
  | 'unreadable-caption'
  | 'metadata-problem'
  | 'unreadable-image'
  | 'too-small'
  | 'duplicate-image'
  | 'caption-lint'
  | 'exif-rotation'
  | 'multi-line-caption'
  | 'animated-image'
  | 'no-repeat-prefix'
  | 'link-outside';

/** error: the file is skipped. warning: used, but probably not what was meant. info: FYI. */
export type FindingSeverity = 'error' | 'warning' | 'info';

export interface Finding {
  readonly code: FindingCode;
  readonly severity: FindingSeverity;
  /** The file the finding is about. */
  readonly path: string;
  /** What is wrong and what to do, in a sentence. */
  readonly reason: string;
  /** 1-based line in a CSV, when the finding is about one. */
  readonly line?: number;
  /** [start, end) character offsets in the caption, for caption lint. */
  readonly span?: readonly [number, number];
}
