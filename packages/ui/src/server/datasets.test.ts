import { mkdtemp, realpath } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pngBytes, writeFileIn } from '../test-fixtures.ts';
import { findDatasets } from './datasets.ts';

describe('findDatasets', () => {
  it('finds image folders, skips models/ and output/, and lists the folders valid configs train on wherever they are', async () => {
    const root = await realpath(await mkdtemp(join(tmpdir(), 'ui-datasets-')));
    const outside = await realpath(await mkdtemp(join(tmpdir(), 'ui-outside-')));
    await writeFileIn(join(root, 'data', 'set', 'a.png'), await pngBytes(1));
    // The SD quick start keeps its images beside its model.
    await writeFileIn(join(root, 'models', 'shapes', 'b.png'), await pngBytes(2));
    await writeFileIn(join(root, 'models', 'held', 'c.png'), await pngBytes(3));
    await writeFileIn(join(root, 'models', 'unused', 'd.png'), await pngBytes(4));
    await writeFileIn(join(outside, 'e.png'), await pngBytes(5));
    const config = (data: string, more = '') =>
      `task: sd\nbase_model: ../models/sd.safetensors\ntrain_data_dir: ${data}\noutput_dir: ../output/x\n${more}`;
    await writeFileIn(
      join(root, 'configs', 'a.yaml'),
      config('../models/shapes', 'validation_data: ../models/held\n'),
    );
    await writeFileIn(join(root, 'configs', 'b.yaml'), config(outside));
    await writeFileIn(join(root, 'configs', 'broken.yaml'), `${config('../models/unused')}lora_rank: many\n`);
    expect((await findDatasets(root)).map((d) => d.path)).toEqual([
      'data/set',
      'models/shapes',
      'models/held',
    ]);
  });
});
