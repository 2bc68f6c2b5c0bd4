import { describe, expect, it } from 'vitest';
import { DatasetError } from './errors.ts';
import { validationIndices } from './split.ts';

describe('validationIndices', () => {
  it('holds out exactly round(count · fraction), the same set for the same seed', () => {
    const held = validationIndices(100, 0.2, 7, 'images');
    expect(held.size).toBe(20);
    for (const i of held) expect(i >= 0 && i < 100 && Number.isInteger(i)).toBe(true);
    expect([...validationIndices(100, 0.2, 7, 'images')]).toEqual([...held]);
    expect([...validationIndices(100, 0.2, 8, 'images')].sort()).not.toEqual([...held].sort());
  });

  it('keeps at least one item on each side', () => {
    expect(validationIndices(5, 0.01, 1, 'images').size).toBe(1);
    expect(validationIndices(5, 0.99, 1, 'images').size).toBe(4);
  });

  it('refuses a dataset too small to split, saying what to do', () => {
    try {
      validationIndices(1, 0.5, 1, 'records in a.jsonl');
      expect.unreachable();
    } catch (error) {
      expect(DatasetError.isInstance(error) && error.code).toBe('E_EMPTY_DATASET');
      expect((error as Error).message).toMatch(/at least 2 records in a\.jsonl.*validation_data/);
    }
  });
});
