/**
 * 8-bit RGB PNG files (one IDAT, no filtering) with text chunks: what `lora sample` writes, with
 * A1111's `parameters` text so its PNG Info tab and civitai read the settings back. Text goes in a
 * tEXt chunk when it is Latin-1, else in an uncompressed iTXt chunk (UTF-8), as Pillow's PngInfo
 * writes A1111's.
 */
import { crc32, deflateSync } from 'node:zlib';

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

function textChunk(keyword: string, text: string): Buffer {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: Latin-1 is U+0000–U+00FF.
  if (/^[\u0000-\u00ff]*$/.test(text)) return chunk('tEXt', Buffer.from(`${keyword}\0${text}`, 'latin1'));
  // keyword, NUL, compression flag 0, method 0, empty language tag, NUL, empty translated keyword, NUL.
  return chunk(
    'iTXt',
    Buffer.concat([Buffer.from(`${keyword}\0\0\0\0\0`, 'latin1'), Buffer.from(text, 'utf8')]),
  );
}

/** A PNG of `rgb` (row-major, 3 bytes a pixel) with `text` chunks by keyword. */
export function encodePng(
  width: number,
  height: number,
  rgb: Uint8Array,
  text: Readonly<Record<string, string>> = {},
): Uint8Array {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit, truecolour, deflate, no filter, no interlace
  const rows = Buffer.alloc(height * (1 + 3 * width));
  for (let y = 0; y < height; y++)
    rows.set(rgb.subarray(y * 3 * width, (y + 1) * 3 * width), y * (1 + 3 * width) + 1);
  return Buffer.concat([
    Buffer.from(SIGNATURE),
    chunk('IHDR', header),
    ...Object.entries(text).map(([keyword, value]) => textChunk(keyword, value)),
    chunk('IDAT', deflateSync(rows)),
    chunk('IEND', new Uint8Array()),
  ]);
}
