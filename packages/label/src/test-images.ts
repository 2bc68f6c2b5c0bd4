import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

// Test helper: images built byte by byte as 24-bit BMP, which @lora/dataset decodes itself.

/** Writes a `width`×`height` BMP filled with one RGB colour. */
export async function writeBmp(
  path: string,
  [r, g, b]: readonly [number, number, number],
  width = 8,
  height = 8,
): Promise<string> {
  const stride = Math.ceil((width * 3) / 4) * 4;
  const bytes = Buffer.alloc(54 + stride * height);
  bytes.write('BM', 0, 'latin1');
  bytes.writeUInt32LE(bytes.length, 2);
  bytes.writeUInt32LE(54, 10);
  bytes.writeUInt32LE(40, 14);
  bytes.writeInt32LE(width, 18);
  bytes.writeInt32LE(height, 22);
  bytes.writeUInt16LE(1, 26);
  bytes.writeUInt16LE(24, 28);
  bytes.writeUInt32LE(stride * height, 34);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) bytes.set([b, g, r], 54 + y * stride + x * 3);
  }
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, bytes);
  return path;
}
