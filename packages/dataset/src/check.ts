import { availableParallelism } from 'node:os';
import { resolutionSize, type Size } from './buckets.ts';
import { lintCaption } from './captions.ts';
import { DatasetError } from './errors.ts';
import type { Finding } from './findings.ts';
import { type ImageProbe, probeImage, readImageFile } from './image-io.ts';
import { mapPool } from './pool.ts';
import { type ScannedImage, type ScanOptions, scanImageFolders } from './scan.ts';

export interface CheckOptions extends ScanOptions {
  /** Training resolution; images with less area are reported as upscaled. */
  resolution?: number | Size;
  /** Images decoded at once (default: the number of CPUs, at most 8). */
  concurrency?: number;
  /** Called after each image is decoded (or found unreadable): decoding is the slow part. */
  onProgress?: (decoded: number, total: number) => void;
  /**
   * Stops the check: no image starts decoding after it fires, and the check rejects with
   * `E_ABORTED` once the decodes in flight (at most `concurrency`) have ended.
   */
  signal?: AbortSignal;
}

/** An image that passed the checks and will be trained on. */
export interface DatasetImage extends ScannedImage, Omit<ImageProbe, 'pages'> {}

export interface DatasetSummary {
  readonly imagesFound: number;
  readonly imagesUsed: number;
  /** Unreadable images, which never abort the run. */
  readonly imagesSkipped: number;
  readonly uncaptioned: number;
  readonly duplicates: number;
  /** Σ used images × repeats: the samples in one epoch. */
  readonly samplesPerEpoch: number;
  readonly datasets: readonly { name: string; repeats: number; images: number }[];
  readonly errors: number;
  readonly warnings: number;
}

export interface DatasetReport {
  readonly images: DatasetImage[];
  readonly findings: Finding[];
  readonly summary: DatasetSummary;
}

/**
 * The validation report: scans the folders, decodes every image once (corrupt ones are skipped
 * and reported, never fatal), and lists every finding with its path and reason. Its `images`
 * are what training uses.
 */
export async function checkDataset(options: CheckOptions): Promise<DatasetReport> {
  const { signal } = options;
  const stopIfAborted = () => {
    if (signal?.aborted)
      throw new DatasetError('E_ABORTED', 'The dataset check was cancelled.', { cause: signal.reason });
  };
  stopIfAborted();
  const scan = await scanImageFolders(options);
  stopIfAborted();
  const findings = [...scan.findings];
  const minimum = options.resolution === undefined ? undefined : resolutionSize(options.resolution);
  const limit = options.concurrency ?? Math.min(8, availableParallelism());
  if (!Number.isInteger(limit) || limit < 1) {
    throw new DatasetError('E_INVALID_OPTIONS', `concurrency must be a positive integer, got ${limit}.`);
  }

  let decoded = 0;
  options.onProgress?.(0, scan.images.length);
  const probes = await mapPool(scan.images, limit, async (image): Promise<ImageProbe | DatasetError> => {
    // Outside the try: an abort is thrown to mapPool, which then starts no other image.
    stopIfAborted();
    try {
      return await probeImage(image.path, await readImageFile(image.path));
    } catch (error) {
      if (DatasetError.isInstance(error)) return error;
      throw error;
    } finally {
      options.onProgress?.(++decoded, scan.images.length);
    }
  });

  const images: DatasetImage[] = [];
  const firstByHash = new Map<string, string>();
  let duplicates = 0;
  let uncaptioned = 0;
  for (const [index, image] of scan.images.entries()) {
    const probe = probes[index]!;
    if (DatasetError.isInstance(probe)) {
      findings.push({ code: 'unreadable-image', severity: 'error', path: image.path, reason: probe.message });
      continue;
    }
    const { pages, ...facts } = probe;
    const where = image.path;
    const original = firstByHash.get(probe.contentHash);
    if (original === undefined) {
      firstByHash.set(probe.contentHash, where);
    } else {
      duplicates++;
      findings.push({
        code: 'duplicate-image',
        severity: 'warning',
        path: where,
        reason: `same content as ${original}; it is trained on twice as often. Remove one copy or make the repeat explicit.`,
      });
    }
    if (minimum && probe.width * probe.height < minimum[0] * minimum[1]) {
      findings.push({
        code: 'too-small',
        severity: 'warning',
        path: where,
        reason: `${probe.width}x${probe.height} is smaller than the training resolution ${minimum.join('x')}; it will be upscaled and look soft.`,
      });
    }
    if (probe.orientation > 1) {
      findings.push({
        code: 'exif-rotation',
        severity: 'info',
        path: where,
        reason: `EXIF orientation ${probe.orientation}: rotated upright before training (${probe.width}x${probe.height}).`,
      });
    }
    if (pages > 1) {
      findings.push({
        code: 'animated-image',
        severity: 'info',
        path: where,
        reason: `${pages} frames; only the first is used.`,
      });
    }
    if (image.caption === null) {
      if (options.captions !== 'none') {
        uncaptioned++;
        findings.push({
          code: 'missing-caption',
          severity: 'warning',
          path: where,
          reason: `no caption (no metadata.csv row, no ${options.captionExtension ?? '.txt'} file); trained with an empty caption.`,
        });
      }
    } else if (image.caption === '') {
      uncaptioned++;
      findings.push({
        code: 'empty-caption',
        severity: 'warning',
        path: where,
        reason: 'the caption is empty; trained with an empty caption.',
      });
    } else {
      for (const diagnostic of lintCaption(image.caption)) {
        findings.push({
          code: 'caption-lint',
          severity: diagnostic.severity,
          path: where,
          reason: diagnostic.message,
          span: diagnostic.span,
        });
      }
    }
    images.push({ ...image, ...facts });
  }

  const datasets = new Map<string, { name: string; repeats: number; images: number }>();
  for (const image of images) {
    const entry = datasets.get(image.dataset) ?? { name: image.dataset, repeats: image.repeats, images: 0 };
    entry.images++;
    datasets.set(image.dataset, entry);
  }
  const count = (severity: Finding['severity']) => findings.filter((f) => f.severity === severity).length;
  return {
    images,
    findings,
    summary: {
      imagesFound: scan.images.length,
      imagesUsed: images.length,
      imagesSkipped: scan.images.length - images.length,
      uncaptioned,
      duplicates,
      samplesPerEpoch: images.reduce((sum, image) => sum + image.repeats, 0),
      datasets: [...datasets.values()],
      errors: count('error'),
      warnings: count('warning'),
    },
  };
}
