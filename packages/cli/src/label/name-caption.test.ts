import { describe, expect, it } from 'vitest';
import { captionFromNames, wordsOfName } from './name-caption.ts';

describe('wordsOfName', () => {
  it.each([
    ['neon_street', 'neon street'],
    ['nightMarket-02', 'night market'],
    ['IMG_0001', ''],
    ['Screenshot 2024-01-02 sunset', 'sunset'],
    ['cat (2)', 'cat'],
    ['Red.Car', 'red car'],
    ['city+rain', 'city rain'],
  ])('%s → %j', (name, words) => expect(wordsOfName(name)).toBe(words));
});

describe('captionFromNames', () => {
  it.each([
    ['rainy_street.png', 'style_train', 'rainy street'],
    ['10_neon city/rainy_street.png', 'style_train', 'rainy street, neon city'],
    ['10_neon city/IMG_0001.jpg', 'style_train', 'neon city'],
    ['portraits/outdoor/anna_smiling.webp', 'data', 'anna smiling, outdoor, portraits'],
    // A kohya N_name root is the concept; any other root name is just where the data lives.
    ['rainy_street.png', '10_cyberpunk', 'rainy street, cyberpunk'],
    ['cat.png', 'cats', 'cat'],
    ['cats/cat.png', 'x', 'cat, cats'],
    ['cat/cat.png', 'x', 'cat'],
    ['IMG_0001.jpg', 'style_train', ''],
    ['sub\\win_path.png', 'data', 'win path, sub'],
  ])('%s in %s → %j', (path, root, caption) => expect(captionFromNames(path, root)).toBe(caption));
});
