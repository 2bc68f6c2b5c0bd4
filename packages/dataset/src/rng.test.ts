import { describe, expect, it } from 'vitest';
import { DatasetError } from './errors.ts';
import { createRng, Rng, splitmix64 } from './rng.ts';

describe('xoshiro128**', () => {
  it('matches the reference output for state [1, 2, 3, 4]', () => {
    const rng = Rng.fromWords([1, 2, 3, 4]);
    const out = Array.from({ length: 6 }, () => rng.nextUint32());
    // First values of the reference C implementation (xoshiro128starstar.c) from s = {1, 2, 3, 4}.
    expect(out).toEqual([11520, 0, 5927040, 70819200, 2031721883, 1637235492]);
  });

  it('seeds through splitmix64 (reference: seed 0 gives 0xe220a8397b1dcdaf first)', () => {
    expect(splitmix64(0n, 0)).toBe(0xe220a8397b1dcdafn);
    expect(splitmix64(0n, 1)).toBe(0x6e789e6aa1b965f4n);
  });

  it('rejects an all-zero state', () => {
    expect(() => Rng.fromWords([0, 0, 0, 0])).toThrow(DatasetError);
  });
});

describe('createRng', () => {
  it('is deterministic per seed and differs between seeds and streams', () => {
    const draw = (rng: Rng) => Array.from({ length: 4 }, () => rng.nextUint32());
    expect(draw(createRng(42))).toEqual(draw(createRng(42)));
    expect(draw(createRng(42))).not.toEqual(draw(createRng(43)));
    expect(draw(createRng(42, 1, 0))).not.toEqual(draw(createRng(42, 1, 1)));
    expect(draw(createRng(42, 1, 0))).not.toEqual(draw(createRng(42, 0, 1)));
    expect(draw(createRng(42n))).toEqual(draw(createRng(42)));
  });

  it.each([[1.5], [Number.NaN], [2 ** 60]])('rejects the seed %s', (seed) => {
    expect(() => createRng(seed)).toThrow(/safe integer/);
  });

  it('next() stays in [0, 1) with a mean near 1/2', () => {
    const rng = createRng(7);
    let sum = 0;
    for (let i = 0; i < 20000; i++) {
      const x = rng.next();
      expect(x >= 0 && x < 1).toBe(true);
      sum += x;
    }
    expect(Math.abs(sum / 20000 - 0.5)).toBeLessThan(0.01);
  });

  it('normal() has mean 0 and variance 1', () => {
    const rng = createRng(3);
    const n = 40000;
    let sum = 0;
    let squares = 0;
    for (let i = 0; i < n; i++) {
      const x = rng.normal();
      sum += x;
      squares += x * x;
    }
    expect(Math.abs(sum / n)).toBeLessThan(0.02);
    expect(Math.abs(squares / n - 1)).toBeLessThan(0.03);
  });

  it('nextInt(n) is uniform and in range', () => {
    const rng = createRng(11);
    const counts = [0, 0, 0];
    for (let i = 0; i < 30000; i++) counts[rng.nextInt(3)]! += 1;
    for (const count of counts) expect(Math.abs(count - 10000)).toBeLessThan(400);
    expect(() => rng.nextInt(0)).toThrow(DatasetError);
  });

  it('shuffle() is a permutation', () => {
    const items = Array.from({ length: 50 }, (_, i) => i);
    const shuffled = createRng(5).shuffle([...items]);
    expect(shuffled).not.toEqual(items);
    expect([...shuffled].sort((a, b) => a - b)).toEqual(items);
  });
});

describe('state() / fromState()', () => {
  it('resumes the exact stream, including a pending normal() spare, through JSON', () => {
    const rng = createRng(99);
    rng.next();
    rng.normal(); // leaves a spare behind
    const saved = JSON.parse(JSON.stringify(rng.state()));
    const expected = [rng.normal(), rng.next(), rng.nextUint32(), rng.normal()];
    const resumed = Rng.fromState(saved);
    expect([resumed.normal(), resumed.next(), resumed.nextUint32(), resumed.normal()]).toEqual(expected);
  });

  it.each([
    [{ algorithm: 'mt19937', s: [1, 2, 3, 4], spare: null }],
    [{ algorithm: 'xoshiro128**', s: [1, 2, 3], spare: null }],
    [{ algorithm: 'xoshiro128**', s: [1, 2, 3, -4], spare: null }],
    [{ algorithm: 'xoshiro128**', s: [0, 0, 0, 0], spare: null }],
    [null],
  ])('rejects the foreign or corrupt state %j', (state) => {
    expect(() => Rng.fromState(state as never)).toThrow(DatasetError);
  });
});
