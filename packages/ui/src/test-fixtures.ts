import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { startUi, type UiServer } from './server/start.ts';

// Helpers for tests only (not exported from the package): every fixture is generated.

/** The built page; the tests run after `build` (turbo's test task depends on it). */
export const ASSETS_DIR = fileURLToPath(new URL('../dist/client/', import.meta.url));

export async function writeFileIn(path: string, content: string | Uint8Array): Promise<string> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, content);
  return path;
}

/** A small PNG of one colour, distinct per `seed`. */
export const pngBytes = (seed: number, width = 96, height = 64): Promise<Buffer> =>
  sharp({
    create: {
      width,
      height,
      channels: 3,
      background: { r: (seed * 67) % 256, g: (seed * 131) % 256, b: (seed * 29 + 90) % 256 },
    },
  })
    .png()
    .toBuffer();

/**
 * A project as `lora init` lays it out: `data/style_train/10_neon/` with a metadata.csv for
 * three images, one image captioned by a sidecar, one without a caption and one corrupt file.
 */
export async function makeProject(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'lora-ui-'));
  const data = join(root, 'data', 'style_train', '10_neon');
  for (const [index, name] of ['a.png', 'b.png', 'c.png', 'd.png', 'e.png'].entries()) {
    await writeFileIn(join(data, name), await pngBytes(index));
  }
  await writeFileIn(join(data, 'broken.png'), 'not an image');
  await writeFileIn(
    join(data, 'metadata.csv'),
    'file_name,text,score\na.png,"**neon city**, rain, *moody*",5\nb.png,"**neon city**, (night:1.2)",4\nc.png,"street, neon city, street",3\n',
  );
  await writeFileIn(join(data, 'd.txt'), 'rain, <lora:film:0.6>\n');
  await writeFileIn(join(root, 'configs', 'style_v1.yaml'), 'task: sd\n');
  return root;
}

export async function serve(root: string): Promise<UiServer> {
  return startUi({ folder: root, assetsDir: ASSETS_DIR });
}
