/**
 * The validation split (`validation_split`): which items of a dataset are held out. A seeded
 * shuffle picks exactly round(count · fraction) of them (at least one, and at least one left to
 * train on), so the split is the same on every run with the same seed and data.
 */
import { DatasetError } from './errors.ts';
import { createRng } from './rng.ts';

/** `createRng(seed, SPLIT_STREAM)`: the shuffle that chooses the held-out items. */
const SPLIT_STREAM = 4;

/**
 * The indices (0 … count − 1) held out for validation. `what` names the items in the error a
 * dataset too small to split gets (e.g. `records in data.jsonl`).
 */
export function validationIndices(count: number, fraction: number, seed: number, what: string): Set<number> {
  if (!(fraction > 0 && fraction < 1)) {
    throw new DatasetError('E_INVALID_OPTIONS', `validation_split must be between 0 and 1, got ${fraction}.`);
  }
  if (count < 2) {
    throw new DatasetError(
      'E_EMPTY_DATASET',
      `validation_split needs at least 2 ${what} (one to train on, one to validate with), there are ${count}; add data or give validation_data instead.`,
    );
  }
  const held = Math.min(Math.max(Math.round(count * fraction), 1), count - 1);
  const order = Uint32Array.from({ length: count }, (_, i) => i);
  createRng(seed, SPLIT_STREAM).shuffle(order);
  return new Set(order.subarray(0, held));
}
