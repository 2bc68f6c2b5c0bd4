import { describe, expect, it } from 'vitest';
import { createLimiter } from './pool.ts';

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
