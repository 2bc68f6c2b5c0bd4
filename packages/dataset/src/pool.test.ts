import { describe, expect, it } from 'vitest';
import { createLimiter, mapPool } from './pool.ts';

const tick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 1));

describe('createLimiter', () => {
  it.each([1, 2, 5])('keeps at most %i tasks in flight and starts them in queue order', async (limit) => {
    const slot = createLimiter(limit);
    let running = 0;
    let peak = 0;
    const started: number[] = [];
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        slot(async () => {
          started.push(i);
          peak = Math.max(peak, ++running);
          await tick();
          running--;
          return i * 2;
        }),
      ),
    );
    expect(peak).toBe(limit);
    expect(started).toEqual(Array.from({ length: 12 }, (_, i) => i));
    expect(results).toEqual(Array.from({ length: 12 }, (_, i) => i * 2));
  });

  it('frees the slot of a failed task', async () => {
    const slot = createLimiter(1);
    await expect(slot(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(slot(async () => 'next')).resolves.toBe('next');
  });
});

describe('mapPool', () => {
  it('keeps the input order', async () => {
    expect(await mapPool([3, 1, 2], 2, async (n) => n * 10)).toEqual([30, 10, 20]);
  });

  it('starts no task after one fails, and throws its error once those in flight have ended', async () => {
    const started: number[] = [];
    const ended: number[] = [];
    let releaseSlow!: () => void;
    const slow = new Promise<void>((resolve) => {
      releaseSlow = resolve;
    });
    const mapping = mapPool([0, 1, 2, 3, 4, 5], 2, async (n) => {
      started.push(n);
      if (n === 0) await slow;
      if (n === 1) throw new Error('boom');
      ended.push(n);
      return n;
    });
    let settled = false;
    mapping.catch(() => undefined).finally(() => (settled = true));
    await tick();
    // Task 0 is still going: the failure of 1 waits for it.
    expect(settled).toBe(false);
    releaseSlow();
    await expect(mapping).rejects.toThrow('boom');
    expect(started).toEqual([0, 1]);
    expect(ended).toEqual([0]);
  });
});
