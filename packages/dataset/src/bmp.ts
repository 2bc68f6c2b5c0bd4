import { DatasetError } from './errors.ts';

/**
 * Largest image accepted, in pixels: sharp's own default `limitInputPixels` (0x3FFF²), so a
 * forged header cannot make either decoder allocate gigabytes.
 */
export const MAX_IMAGE_PIXELS = 0x3fff * 0x3fff;

export interface RawImage {
  readonly width: number;
  readonly height: number;
  readonly channels: 3;
  /** RGB, row-major, top row first. */
  readonly data: Buffer;
}

const fail = (path: string, reason: string): DatasetError =>
  new DatasetError('E_IMAGE_DECODE', `${path}: not a readable BMP (${reason}).`, { path });

/**
 * Decodes an uncompressed Windows BMP (1/4/8-bit palette, 24-bit, 32-bit BI_RGB or BI_BITFIELDS),
 * which libvips (and so sharp) cannot read. Alpha in 32-bit files is ignored: almost every
 * writer leaves it zero. RLE-compressed files are refused with a message saying so.
 */
export function decodeBmp(bytes: Uint8Array, path: string): RawImage {
  if (bytes.length < 54 || bytes[0] !== 0x42 || bytes[1] !== 0x4d) throw fail(path, 'no BM header');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dataOffset = view.getUint32(10, true);
  const headerSize = view.getUint32(14, true);
  if (headerSize < 40) throw fail(path, `OS/2 header of ${headerSize} bytes is not supported`);
  const width = view.getInt32(18, true);
  const rawHeight = view.getInt32(22, true);
  const bitsPerPixel = view.getUint16(28, true);
  const compression = view.getUint32(30, true);
  const topDown = rawHeight < 0;
  const height = Math.abs(rawHeight);
  if (width <= 0 || height === 0) throw fail(path, `size ${width}x${rawHeight}`);
  if (width * height > MAX_IMAGE_PIXELS) throw fail(path, `${width}x${height} exceeds MAX_IMAGE_PIXELS`);
  const bitfields = compression === 3 && bitsPerPixel === 32;
  if (compression !== 0 && !bitfields) throw fail(path, `compression ${compression} (RLE) is not supported`);
  if (![1, 4, 8, 24, 32].includes(bitsPerPixel)) throw fail(path, `${bitsPerPixel} bits per pixel`);

  let masks: [number, number, number] = [0xff0000, 0xff00, 0xff];
  if (bitfields) {
    // The masks follow a 40-byte header, or sit inside a V4/V5 header at the same offset.
    masks = [view.getUint32(54, true), view.getUint32(58, true), view.getUint32(62, true)];
    if (masks.some((mask) => mask === 0)) throw fail(path, 'a zero colour mask');
  }
  let palette: Uint8Array | undefined;
  if (bitsPerPixel <= 8) {
    const declared = view.getUint32(46, true);
    const colours = declared === 0 ? 1 << bitsPerPixel : declared;
    const start = 14 + headerSize;
    if (colours > 256 || start + colours * 4 > bytes.length) throw fail(path, 'a truncated palette');
    palette = bytes.subarray(start, start + colours * 4);
  }
  const stride = Math.ceil((width * bitsPerPixel) / 32) * 4;
  if (dataOffset + stride * height > bytes.length) throw fail(path, 'truncated pixel data');

  const out = Buffer.alloc(width * height * 3);
  const shifts = masks.map((mask) => Math.clz32(mask & -mask) ^ 31);
  const scales = masks.map((mask, i) => 255 / (mask >>> shifts[i]!));
  for (let y = 0; y < height; y++) {
    const row = dataOffset + (topDown ? y : height - 1 - y) * stride;
    let o = y * width * 3;
    for (let x = 0; x < width; x++, o += 3) {
      if (palette) {
        const bitOffset = x * bitsPerPixel;
        const byte = bytes[row + (bitOffset >> 3)]!;
        const index = (byte >> (8 - bitsPerPixel - (bitOffset & 7))) & ((1 << bitsPerPixel) - 1);
        if (index * 4 + 2 >= palette.length) throw fail(path, `palette index ${index} out of range`);
        out[o] = palette[index * 4 + 2]!;
        out[o + 1] = palette[index * 4 + 1]!;
        out[o + 2] = palette[index * 4]!;
      } else if (bitsPerPixel === 24) {
        const p = row + x * 3;
        out[o] = bytes[p + 2]!;
        out[o + 1] = bytes[p + 1]!;
        out[o + 2] = bytes[p]!;
      } else {
        const pixel = view.getUint32(row + x * 4, true);
        for (let c = 0; c < 3; c++) {
          out[o + c] = Math.round(((pixel & masks[c]!) >>> shifts[c]!) * scales[c]!);
        }
      }
    }
  }
  return { width, height, channels: 3, data: out };
}
