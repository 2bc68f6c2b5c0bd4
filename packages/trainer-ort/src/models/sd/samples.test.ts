import { describe, expect, it } from 'vitest';
import { parseSampleLine } from './samples.ts';

const defaults = { seed: 42, width: 512, height: 768 };

describe("kohya's sample prompt lines", () => {
  it('reads --n --s --l --d --w --h, and leaves the defaults where a line sets nothing', () => {
    expect(
      parseSampleLine(
        'a (red:1.2) circle, white --n blurry, dark --s 12 --l 5.5 --d 7 --w 640 --h 384',
        defaults,
      ),
    ).toEqual({
      prompt: 'a (red:1.2) circle, white',
      negativePrompt: 'blurry, dark',
      steps: 12,
      cfgScale: 5.5,
      seed: 7,
      width: 640,
      height: 384,
    });
    expect(parseSampleLine('a cat', defaults)).toEqual({
      prompt: 'a cat',
      negativePrompt: '',
      steps: 30,
      cfgScale: 7.5,
      ...defaults,
    });
    // A double dash that is not an option stays in the prompt.
    expect(parseSampleLine('a--b c --s 3', defaults).prompt).toBe('a--b c');
  });

  it.each([
    ['x --s 0', /--s 0: give a whole number of steps/],
    ['x --d -1', /--d -1: give a whole seed ≥ 0/],
    ['x --w big', /--w big: give a size in pixels/],
    ['x --l -2', /--l -2: give a CFG scale ≥ 0/],
  ])('refuses %s, naming the line', (line, message) => {
    expect(() => parseSampleLine(line, defaults)).toThrow(message);
  });
});
