import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkDataset } from '@lora/dataset';
import { writeTinySdModel } from '@lora/trainer-ort';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { tempDir, writeImage } from '../test-fixtures.ts';
import { datasetCommand, formatImageReport } from './dataset.ts';

afterEach(() => vi.restoreAllMocks());

function captureStdout(): string[] {
  const out: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    out.push(String(chunk));
    return true;
  });
  return out;
}

describe('dataset check', () => {
  it('reports used, skipped and uncaptioned images, each with a reason and a pointer to the guide', async () => {
    const dir = tempDir();
    await writeImage(join(dir, '10_neon', 'a.png'), '#f00');
    writeFileSync(join(dir, '10_neon', 'a.txt'), 'neon, city');
    await writeImage(join(dir, '10_neon', 'b.png'), '#0f0');
    writeFileSync(join(dir, '10_neon', 'c.png'), 'not a png');
    const report = await checkDataset({ dirs: [dir] });
    const text = formatImageReport('data', report);
    expect(text.split('\n')[0]).toBe(
      'data: 3 images found, 2 used, 1 skipped; 1 without caption, 0 duplicates; 20 samples per epoch',
    );
    expect(text).toContain('  10_neon: 2 images × 10 repeats');
    expect(text).toMatch(/errors \(these files are skipped\):\n\s+\S*c\.png: cannot decode/);
    expect(text).toMatch(/warnings:\n\s+\S*b\.png: no caption/);
    expect(text).toContain('1 image has no caption. See https://');
    expect(text).toContain('#captions-not-found');
    expect(text).toContain('1 image is skipped. See https://');
    expect(text).toContain('#images-skipped');
  });

  it('checks the folder, metadata and caption extension a config names', async () => {
    const dir = tempDir();
    await writeImage(join(dir, 'data', 'a.png'), '#f00', 512, 512);
    writeFileSync(join(dir, 'data', 'a.caption'), 'from kohya');
    writeFileSync(
      join(dir, 'style.yaml'),
      'base_model: ./missing-model.safetensors\ntrain_data_dir: ./data\noutput_dir: ./out\ncaption_extension: .caption\n',
    );
    const out = captureStdout();
    // The base model does not exist yet: checking the data must not need it.
    expect(await datasetCommand('check', join(dir, 'style.yaml'), { json: true })).toBe(0);
    const report = JSON.parse(out.join(''));
    expect(report).toMatchObject({ kind: 'images', summary: { imagesUsed: 1, uncaptioned: 0 } });
    expect(report.images[0]).toMatchObject({ caption: 'from kohya', captionFrom: 'sidecar', width: 512 });
    // Without the model's tokenizer the caption length is not counted, and the report says why.
    expect(report.longCaptions.unchecked).toMatch(/base_model .*missing-model\.safetensors cannot be read/);
  });

  it("counts the captions the model's CLIP tokenizer cuts, and names the longest", async () => {
    const dir = tempDir();
    await writeTinySdModel(join(dir, 'model'));
    await writeImage(join(dir, 'data', 'a.png'), '#f00');
    writeFileSync(join(dir, 'data', 'a.txt'), 'red, square');
    await writeImage(join(dir, 'data', 'b.png'), '#0f0');
    writeFileSync(join(dir, 'data', 'b.txt'), Array.from({ length: 100 }, (_, i) => `tag${i}`).join(', '));
    writeFileSync(
      join(dir, 'style.yaml'),
      'base_model: ./model/tiny-sd.safetensors\ntrain_data_dir: ./data\noutput_dir: ./out\n',
    );
    const out = captureStdout();
    expect(await datasetCommand('check', join(dir, 'style.yaml'), {})).toBe(0);
    expect(out.join('')).toMatch(
      /^captions: 1 caption longer than the text encoder's 75 tokens, cut there in training \(the longest, .*b\.png, has \d{3}\)/m,
    );
  });

  it('checks the text files of an llm config', async () => {
    const dir = tempDir();
    writeFileSync(
      join(dir, 'train.jsonl'),
      '{"instruction": "Say hi", "output": "hi"}\n{"instruction": "no output"}\n',
    );
    writeFileSync(
      join(dir, 'llm.yaml'),
      'base_model: ./model\ntrain_data: ./train.jsonl\noutput_dir: ./out\n',
    );
    const out = captureStdout();
    // One invalid record stops training: the check fails.
    expect(await datasetCommand('check', join(dir, 'llm.yaml'), {})).toBe(1);
    expect(out.join('')).toMatch(
      /train\.jsonl: 2 records, 1 valid, 1 invalid \(alpaca 1\)\n\s+\S+train\.jsonl:2: missing field "output"/,
    );
  });

  it('checks a .jsonl file given directly, and passes when every record is valid', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'good.jsonl'), '{"instruction": "Say hi", "output": "hi"}\n{"text": "plain"}\n');
    const out = captureStdout();
    expect(await datasetCommand('check', join(dir, 'good.jsonl'), {})).toBe(0);
    expect(out.join('')).toMatch(/good\.jsonl: 2 records, 2 valid, 0 invalid \(alpaca 1, text 1\)/);
  });

  it('exits 1 when some images would be skipped, 0 when all are usable', async () => {
    const dir = tempDir();
    await writeImage(join(dir, 'data', 'a.png'), '#f00');
    writeFileSync(join(dir, 'data', 'a.txt'), 'red');
    const out = captureStdout();
    expect(await datasetCommand('check', join(dir, 'data'), {})).toBe(0);
    // Without a config, the default resolution (512) tells a small image.
    expect(out.join('')).toMatch(/a\.png: 32x24 is smaller than the training resolution 512x512/);
    writeFileSync(join(dir, 'data', 'b.png'), 'not a png');
    expect(await datasetCommand('check', join(dir, 'data'), {})).toBe(1);
  });
});
