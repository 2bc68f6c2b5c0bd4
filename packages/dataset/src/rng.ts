import { DatasetError } from './errors.ts';

/**
 * Seeded randomness for the whole project: xoshiro128** (Blackman & Vigna), its 128-bit state
 * seeded by splitmix64 as its authors recommend. 32-bit operations only, so it is fast in JS and
 * gives identical streams on every platform.
 */

/** The full generator state; JSON-safe, so a training checkpoint can store it and resume exactly. */
export interface RngState {
  readonly algorithm: 'xoshiro128**';
  /** The four 32-bit state words, as unsigned integers. */
  readonly s: readonly [number, number, number, number];
  /** The second Box–Muller value not yet returned by `normal()`, or null. */
  readonly spare: number | null;
}

const MASK64 = (1n << 64n) - 1n;
const GOLDEN64 = 0x9e3779b97f4a7c15n;

/** splitmix64's output function: a bijective 64-bit mixer. */
function mix64(value: bigint): bigint {
  let z = value & MASK64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/** The `index`-th output (0-based) of splitmix64 started at `seed`. */
export function splitmix64(seed: bigint, index: number): bigint {
  return mix64((seed + GOLDEN64 * BigInt(index + 1)) & MASK64);
}

function toSeedInteger(value: number | bigint, what: string): bigint {
  if (typeof value === 'bigint') return value & MASK64;
  if (!Number.isSafeInteger(value)) {
    throw new DatasetError('E_INVALID_OPTIONS', `${what} must be a safe integer, got ${value}.`);
  }
  return BigInt(value) & MASK64;
}

const TWO_POW_32 = 4294967296;
const TWO_POW_NEG_53 = 2 ** -53;

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spare: number | null;

  private constructor(s0: number, s1: number, s2: number, s3: number, spare: number | null) {
    this.s0 = s0 | 0;
    this.s1 = s1 | 0;
    this.s2 = s2 | 0;
    this.s3 = s3 | 0;
    this.spare = spare;
  }

  /** A generator whose first state words are exactly `s` (for reference vectors and tests). */
  static fromWords(s: readonly [number, number, number, number]): Rng {
    if (s.every((word) => word >>> 0 === 0)) {
      throw new DatasetError('E_INVALID_STATE', 'xoshiro128** state must not be all zeros.');
    }
    return new Rng(s[0], s[1], s[2], s[3], null);
  }

  /** Rebuilds a generator from `state()`; it continues the same stream. */
  static fromState(state: RngState): Rng {
    const valid =
      typeof state === 'object' &&
      state !== null &&
      state.algorithm === 'xoshiro128**' &&
      Array.isArray(state.s) &&
      state.s.length === 4 &&
      state.s.every((word) => Number.isInteger(word) && word >= 0 && word < TWO_POW_32) &&
      (state.spare === null || Number.isFinite(state.spare));
    if (!valid) {
      throw new DatasetError(
        'E_INVALID_STATE',
        'Not an RNG state saved by @lora/dataset (expected {algorithm: "xoshiro128**", s: [4 uint32], spare}); the checkpoint may be from another tool or corrupt.',
      );
    }
    const rng = Rng.fromWords(state.s);
    rng.spare = state.spare;
    return rng;
  }

  state(): RngState {
    return {
      algorithm: 'xoshiro128**',
      s: [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0],
      spare: this.spare,
    };
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9);
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result >>> 0;
  }

  /** A float in [0, 1) with 53 random bits (like Python's `random.random()`). */
  next(): number {
    const high = this.nextUint32() >>> 5;
    const low = this.nextUint32() >>> 6;
    return (high * 67108864 + low) * TWO_POW_NEG_53;
  }

  /** An unbiased integer in [0, n), for 1 ≤ n ≤ 2^32. */
  nextInt(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_POW_32) {
      throw new DatasetError('E_INVALID_OPTIONS', `nextInt(n) needs an integer 1 ≤ n ≤ 2^32, got ${n}.`);
    }
    // Reject the top partial range so every residue is equally likely.
    const threshold = (TWO_POW_32 - n) % n;
    for (;;) {
      const r = this.nextUint32();
      if (r >= threshold) return r % n;
    }
  }

  /** A standard normal sample (Box–Muller; the paired value is kept for the next call). */
  normal(): number {
    if (this.spare !== null) {
      const value = this.spare;
      this.spare = null;
      return value;
    }
    const u1 = 1 - this.next(); // (0, 1]: log never sees 0
    const u2 = this.next();
    const radius = Math.sqrt(-2 * Math.log(u1));
    const angle = 2 * Math.PI * u2;
    this.spare = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  }

  /** Fisher–Yates shuffle in place; returns the same array. */
  shuffle<T extends { length: number; [index: number]: unknown }>(items: T): T {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      const held = items[i];
      items[i] = items[j];
      items[j] = held;
    }
    return items;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/**
 * A generator for `seed`, optionally on a sub-stream named by integer keys
 * (`createRng(seed, EPOCH_STREAM, epoch)`), so any (seed, epoch, step, …) stream can be rebuilt
 * directly without replaying the ones before it.
 */
export function createRng(seed: number | bigint, ...stream: readonly (number | bigint)[]): Rng {
  let z = toSeedInteger(seed, 'seed');
  for (const key of stream) {
    z = mix64(z ^ mix64(toSeedInteger(key, 'stream key') + GOLDEN64));
  }
  const a = splitmix64(z, 0);
  const b = splitmix64(z, 1);
  const words: [number, number, number, number] = [
    Number(a & 0xffffffffn),
    Number(a >> 32n),
    Number(b & 0xffffffffn),
    Number(b >> 32n),
  ];
  // splitmix64 is a bijection of distinct inputs, so an all-zero state would need both outputs zero.
  if (words.every((word) => word === 0)) words[0] = 1;
  return Rng.fromWords(words);
}
