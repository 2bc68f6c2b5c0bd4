import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from './load.ts';
import { earlierRuns, newestRun, outputNameOf, runFolder } from './run-folder.ts';

const config = (extra: string) =>
  parseConfig(`task: llm\nbase_model: m\ntrain_data: d.jsonl\n${extra}`, '/p/configs/c.yaml');

describe('timestamped run folders', () => {
  it('fills {timestamp} and {date} with sortable local time when a run starts', () => {
    const now = new Date(2026, 11, 7, 4, 12, 5);
    expect(runFolder('/p/output/style-{timestamp}', undefined, now)).toBe('/p/output/style-20261207-041205');
    expect(runFolder('/p/output/{date}_style', undefined, now)).toBe('/p/output/20261207_style');
    expect(runFolder('/p/output/style', 'auto', now)).toBe('/p/output/style');
  });

  it('goes on in the newest folder of the pattern with resume: auto, and starts a new one without', () => {
    const root = mkdtempSync(join(tmpdir(), 'run-folder-'));
    for (const name of [
      'style-20261207-041205',
      'style-20261208-000001',
      'style-20261207-235959',
      'style-x',
      'other-20261209-000000',
    ]) {
      mkdirSync(join(root, name));
    }
    const pattern = join(root, 'style-{timestamp}');
    expect(earlierRuns(pattern).map((p) => p.slice(root.length + 1))).toEqual([
      'style-20261207-041205',
      'style-20261207-235959',
      'style-20261208-000001',
    ]);
    const now = new Date(2026, 11, 9, 10, 0, 0);
    expect(runFolder(pattern, 'auto', now)).toBe(join(root, 'style-20261208-000001'));
    expect(runFolder(pattern, undefined, now)).toBe(join(root, 'style-20261209-100000'));
    expect(runFolder(join(root, 'none-{timestamp}'), 'auto', now)).toBe(join(root, 'none-20261209-100000'));
    // The latest run of a pattern, none before the first, and a plain folder as it is.
    expect(newestRun(pattern)).toBe(join(root, 'style-20261208-000001'));
    expect(newestRun(join(root, 'none-{timestamp}'))).toBeUndefined();
    expect(newestRun(join(root, 'plain'))).toBe(join(root, 'plain'));
  });

  it('names the output after the folder without its placeholders, and fills {output_name}', () => {
    expect(outputNameOf('/p/output/style_lora-{timestamp}')).toBe('style_lora');
    expect(outputNameOf('/p/output/{timestamp}')).toBe('output');
    expect(outputNameOf('/p/output/style_')).toBe('style_');
    expect(config('output_dir: ../output/cyber-{timestamp}')).toMatchObject({
      output_dir: '/p/output/cyber-{timestamp}',
      output_name: 'cyber',
    });
    expect(config('output_dir: ../output/{output_name}-{date}\noutput_name: neon')).toMatchObject({
      output_dir: '/p/output/neon-{date}',
      output_name: 'neon',
    });
  });

  it.each([
    [
      'output_dir: ../output/{time}',
      /output_dir has \{time\}, which is not one of \{timestamp\}, \{date\}, \{output_name\}/,
    ],
    [
      'output_dir: ../output/{date}/run',
      /put \{timestamp\} and \{date\} in the last folder name of output_dir/,
    ],
    ['output_dir: ../output/{output_name}', /output_dir has \{output_name\}, so set output_name/],
  ])('refuses %s', (line, message) => {
    expect(() => config(line)).toThrow(message);
  });
});
