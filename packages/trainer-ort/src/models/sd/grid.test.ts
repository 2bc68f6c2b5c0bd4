import { describe, expect, it } from 'vitest';
import { imageGrid, type RgbImage } from './grid.ts';

/** A `width`×`height` image of one colour. */
const solid = (width: number, height: number, value: number): RgbImage => ({
  rgb: new Uint8Array(3 * width * height).fill(value),
  width,
  height,
});

const pixel = (image: RgbImage, x: number, y: number) => image.rgb[3 * (y * image.width + x)];

describe('imageGrid', () => {
  it("lays n images out in A1111's round(√n) rows, row by row", () => {
    const images = [1, 2, 3, 4, 5].map((v) => solid(2, 3, v));
    const grid = imageGrid(images);
    // round(√5) = 2 rows of 3 columns; the sixth cell stays white.
    expect([grid.width, grid.height]).toEqual([6, 6]);
    expect([0, 2, 4].map((x) => pixel(grid, x, 0))).toEqual([1, 2, 3]);
    expect([0, 2, 4].map((x) => pixel(grid, x, 5))).toEqual([4, 5, 255]);
  });

  it('puts a smaller image in the top-left of a cell the size of the largest', () => {
    const grid = imageGrid([solid(4, 4, 10), solid(2, 2, 20)], 1);
    expect([grid.width, grid.height]).toEqual([8, 4]);
    expect([pixel(grid, 4, 0), pixel(grid, 5, 1), pixel(grid, 6, 0), pixel(grid, 4, 2)]).toEqual([
      20, 20, 255, 255,
    ]);
    expect(pixel(grid, 3, 3)).toBe(10);
  });

  it('keeps one image as it is', () => {
    const image = solid(3, 2, 7);
    expect(imageGrid([image])).toEqual({ rgb: image.rgb, width: 3, height: 2 });
  });
});
