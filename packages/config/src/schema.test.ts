import { describe, expect, it } from 'vitest';
import { configSchema } from './schema.ts';

describe('configSchema on its own', () => {
  it.each([null, [], 'text', 3])('fails without throwing for %j', (input) => {
    expect(configSchema.safeParse(input).success).toBe(false);
  });

  it('keeps the values as written, with no defaults', () => {
    const input = { train_data_dir: 'd', base_model: 'm', output_dir: 'o' };
    expect(configSchema.parse(input)).toEqual(input);
  });

  it('checks cross-key rules even when single keys fail', () => {
    const result = configSchema.safeParse({
      train_data_dir: 'd',
      base_model: 'm',
      output_dir: 'o',
      lora_rank: 'x',
      max_seq_len: 512,
      epochs: 2,
      max_steps: 10,
    });
    const found = result.error?.issues.map((issue) => [issue.code, issue.path.join('.')]);
    expect(found).toEqual([
      ['invalid_type', 'lora_rank'],
      ['custom', 'max_seq_len'],
      ['custom', 'max_steps'],
    ]);
  });
});
