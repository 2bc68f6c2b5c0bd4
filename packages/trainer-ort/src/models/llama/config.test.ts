import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseLlamaConfig, ropeInverseFrequencies } from './config.ts';
import { REAL_CONFIGS } from './real-configs.ts';
import { llamaTensorShapes } from './weights.ts';

const fixture = (name: string) =>
  JSON.parse(readFileSync(new URL(`../__fixtures__/${name}/config.json`, import.meta.url), 'utf8'));

describe('parseLlamaConfig', () => {
  it.each([
    // name, tensors in the published checkpoint, parameters (billions, rounded)
    ['Llama-3.2-1B', 146, 1.236],
    ['Qwen2-0.5B', 290, 0.494],
    ['Qwen2-7B', 339, 7.616],
    ['Mistral-7B-v0.1', 291, 7.242],
  ] as const)('%s: expects the published tensor count and parameter count', (name, tensors, billions) => {
    const shapes = llamaTensorShapes(parseLlamaConfig(REAL_CONFIGS[name]));
    expect(shapes.size).toBe(tensors);
    const parameters = [...shapes.values()].reduce((sum, shape) => sum + shape.reduce((a, b) => a * b, 1), 0);
    expect(parameters / 1e9).toBeCloseTo(billions, 3);
  });

  it('reads the legacy and the rope_parameters shapes alike', () => {
    expect(parseLlamaConfig(fixture('llama')).ropeScaling).toEqual({
      type: 'llama3',
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositions: 16,
    });
    expect(parseLlamaConfig(fixture('llama')).ropeTheta).toBe(500000);
    expect(parseLlamaConfig(fixture('mistral'))).toMatchObject({
      ropeScaling: { type: 'linear', factor: 2 },
      headDim: 16,
      slidingWindow: 4,
    });
    expect(parseLlamaConfig(fixture('qwen2'))).toMatchObject({ qkvBias: true, slidingWindow: undefined });
  });

  it.each([
    [
      { ...REAL_CONFIGS['Mistral-7B-v0.1'], architectures: ['GPT2LMHeadModel'] },
      /architecture "GPT2LMHeadModel"/,
    ],
    [{ ...REAL_CONFIGS['Mistral-7B-v0.1'], hidden_size: 'big' }, /"hidden_size" must be a number/],
    [{ ...REAL_CONFIGS['Mistral-7B-v0.1'], num_key_value_heads: 5 }, /do not fit/],
    [{ ...REAL_CONFIGS['Mistral-7B-v0.1'], rope_scaling: { type: 'yarn', factor: 4 } }, /rope type "yarn"/],
  ])('rejects a bad config with a message naming the key (%#)', (config, message) => {
    expect(() => parseLlamaConfig(config as never)).toThrow(message);
  });
});

describe('ropeInverseFrequencies', () => {
  it('keeps high frequencies, divides low ones by the factor, and blends the middle (llama3)', () => {
    const spec = parseLlamaConfig(REAL_CONFIGS['Llama-3.2-1B']);
    const inv = ropeInverseFrequencies(spec);
    const plain = ropeInverseFrequencies({ ...spec, ropeScaling: { type: 'default' } });
    expect(inv[0]).toBe(plain[0]); // wavelength 2π < 8192/4
    expect(inv[31]).toBeCloseTo(plain[31]! / 32, 20); // wavelength > 8192
    const middle = [...inv].findIndex((f, i) => f !== plain[i] && Math.abs(f - plain[i]! / 32) > 1e-30);
    expect(middle).toBeGreaterThan(0);
    expect(inv[middle]).toBeLessThan(plain[middle]!);
    expect(inv[middle]).toBeGreaterThan(plain[middle]! / 32);
  });
});
