/**
 * Images side by side in one: A1111's grid (`images.image_grid`: round(√n) rows, as many columns
 * as that needs, filled row by row), each cell the size of the largest image, smaller images in
 * the top-left corner of a white cell.
 */

export interface RgbImage {
  /** 8-bit RGB, row-major. */
  readonly rgb: Uint8Array;
  readonly width: number;
  readonly height: number;
}

/** The grid of `images`, in `rows` rows (default A1111's round(√n)). */
export function imageGrid(
  images: readonly RgbImage[],
  rows = Math.round(Math.sqrt(images.length)),
): RgbImage {
  const count = Math.max(1, Math.min(rows, images.length));
  const columns = Math.ceil(images.length / count);
  const cellWidth = Math.max(...images.map((image) => image.width));
  const cellHeight = Math.max(...images.map((image) => image.height));
  const width = columns * cellWidth;
  const height = count * cellHeight;
  const rgb = new Uint8Array(3 * width * height).fill(255);
  images.forEach((image, i) => {
    const left = (i % columns) * cellWidth;
    const top = Math.floor(i / columns) * cellHeight;
    for (let y = 0; y < image.height; y++) {
      const from = 3 * y * image.width;
      rgb.set(image.rgb.subarray(from, from + 3 * image.width), 3 * ((top + y) * width + left));
    }
  });
  return { rgb, width, height };
}
