import { describe, expect, it } from 'vitest';
import { decodeBmp } from './bmp.ts';
import { bmpBytes, patternPixel } from './test-fixtures.ts';

function paletteBmp(
  bitsPerPixel: 1 | 4 | 8,
  width: number,
  height: number,
  indexAt: (x: number, y: number) => number,
) {
  const colours = 1 << bitsPerPixel;
  const stride = Math.ceil((width * bitsPerPixel) / 32) * 4;
  const offset = 54 + colours * 4;
  const bytes = Buffer.alloc(offset + stride * height);
  bytes.write('BM', 0, 'latin1');
  bytes.writeUInt32LE(offset, 10);
  bytes.writeUInt32LE(40, 14);
  bytes.writeInt32LE(width, 18);
  bytes.writeInt32LE(-height, 22); // top-down
  bytes.writeUInt16LE(bitsPerPixel, 28);
  for (let i = 0; i < colours; i++) bytes.set([i, 255 - i, (i * 3) % 256, 0], 54 + i * 4); // B, G, R
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const bit = x * bitsPerPixel;
      const at = offset + y * stride + (bit >> 3);
      bytes[at]! |= indexAt(x, y) << (8 - bitsPerPixel - (bit & 7));
    }
  }
  return bytes;
}

describe('decodeBmp', () => {
  it('decodes a bottom-up 24-bit file with row padding', () => {
    const image = decodeBmp(bmpBytes(5, 3, 2), 'x.bmp');
    expect([image.width, image.height]).toEqual([5, 3]);
    for (const [x, y] of [
      [0, 0],
      [4, 0],
      [2, 1],
      [4, 2],
    ] as const) {
      expect([...image.data.subarray((y * 5 + x) * 3, (y * 5 + x) * 3 + 3)]).toEqual(patternPixel(x, y, 2));
    }
  });

  it.each([1, 4, 8] as const)('decodes a top-down %i-bit palette file', (bits) => {
    const max = (1 << bits) - 1;
    const indexAt = (x: number, y: number) => (x + y * 3) % (max + 1);
    const image = decodeBmp(paletteBmp(bits, 7, 2, indexAt), 'p.bmp');
    for (const [x, y] of [
      [0, 0],
      [6, 0],
      [3, 1],
    ] as const) {
      const i = indexAt(x, y);
      expect([...image.data.subarray((y * 7 + x) * 3, (y * 7 + x) * 3 + 3)]).toEqual([
        (i * 3) % 256,
        255 - i,
        i,
      ]);
    }
  });

  it('decodes 32-bit BI_BITFIELDS with custom masks', () => {
    const bytes = Buffer.alloc(54 + 12 + 4);
    bytes.write('BM', 0, 'latin1');
    bytes.writeUInt32LE(66, 10);
    bytes.writeUInt32LE(40, 14);
    bytes.writeInt32LE(1, 18);
    bytes.writeInt32LE(1, 22);
    bytes.writeUInt16LE(32, 28);
    bytes.writeUInt32LE(3, 30);
    bytes.writeUInt32LE(0x000000ff, 54); // red in the low byte
    bytes.writeUInt32LE(0x0000ff00, 58);
    bytes.writeUInt32LE(0x00ff0000, 62);
    bytes.writeUInt32LE(0x00302010, 66);
    expect([...decodeBmp(bytes, 'f.bmp').data]).toEqual([0x10, 0x20, 0x30]);
  });

  it.each([
    [
      'not a BMP',
      Buffer.from('PNG not really a bitmap at all, padded to be long enough....'),
      /no BM header/,
    ],
    ['truncated pixels', bmpBytes(8, 8).subarray(0, 100), /truncated/],
    [
      'RLE',
      (() => {
        const b = bmpBytes(2, 2);
        b.writeUInt32LE(1, 30);
        return b;
      })(),
      /RLE/,
    ],
    [
      'huge dimensions',
      (() => {
        const b = bmpBytes(2, 2);
        b.writeInt32LE(100000, 18);
        b.writeInt32LE(100000, 22);
        return b;
      })(),
      /MAX_IMAGE_PIXELS/,
    ],
  ])('refuses %s with IMAGE_DECODE', (_name, bytes, message) => {
    expect(() => decodeBmp(bytes, 'bad.bmp')).toThrow(message);
    expect(() => decodeBmp(bytes, 'bad.bmp')).toThrow(expect.objectContaining({ code: 'E_IMAGE_DECODE' }));
  });
});
