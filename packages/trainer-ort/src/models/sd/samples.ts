/**
 * Image samples while an SD LoRA trains: each prompt line (A1111 syntax, with kohya's per-line
 * options `--n` negative prompt, `--s` steps, `--l` CFG scale, `--d` seed, `--w` width, `--h`
 * height) drawn by the base model with the LoRA of the moment, one PNG per prompt and a grid of
 * them all.
 */
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LoraAdapter } from '@lora/adapters';
import { toKohya } from '@lora/adapters';
import type { PredictionType } from '@lora/config';
import { writeSafetensors } from '@lora/safetensors';
import { ModelError } from '../model-error.ts';
import type { SdModelConfig } from './config.ts';
import { imageGrid, type RgbImage } from './grid.ts';
import { encodePng } from './png.ts';
import type { PromptTokenizer } from './prompt.ts';
import { type SampleImageOptions, sampleImage } from './sample-image.ts';

/** kohya's sample defaults where a line sets nothing (sd-scripts' sample_images_common). */
const DEFAULT_STEPS = 30;
const DEFAULT_CFG = 7.5;

/** A prompt line's prompt and its kohya options over `defaults`. */
export function parseSampleLine(
  line: string,
  defaults: Pick<SampleImageOptions, 'seed' | 'width' | 'height'>,
): Omit<SampleImageOptions, 'sampler' | 'clipSkip' | 'loras' | 'modelConfig' | 'device'> {
  const [prompt, ...options] = line.split(/\s--(?=[a-z]\s)/);
  const settings = {
    prompt: prompt!.trim(),
    negativePrompt: '',
    steps: DEFAULT_STEPS,
    cfgScale: DEFAULT_CFG,
    ...defaults,
  };
  for (const option of options) {
    const flag = option[0]!;
    const value = option.slice(1).trim();
    const number = Number(value);
    const whole = Number.isSafeInteger(number) && number > 0;
    const bad = (rule: string) =>
      new ModelError('E_MODEL_CONFIG', `sample prompt "${line}": --${flag} ${value}: ${rule}`);
    if (flag === 'n') settings.negativePrompt = value;
    else if (flag === 's') {
      if (!whole) throw bad('give a whole number of steps');
      settings.steps = number;
    } else if (flag === 'l') {
      if (!(number >= 0)) throw bad('give a CFG scale ≥ 0');
      settings.cfgScale = number;
    } else if (flag === 'd') {
      if (!Number.isSafeInteger(number) || number < 0) throw bad('give a whole seed ≥ 0');
      settings.seed = number;
    } else if (flag === 'w' || flag === 'h') {
      if (!whole) throw bad('give a size in pixels');
      settings[flag === 'w' ? 'width' : 'height'] = number;
    }
  }
  return settings;
}

/**
 * Writes `<folder>/<name>-<i>.png` for each prompt line, and `<name>-grid.png` of them all when
 * there are several; returns the paths.
 */
export async function writeImageSamples(
  model: string,
  tokenizer: PromptTokenizer,
  adapter: LoraAdapter,
  lines: readonly string[],
  target: {
    folder: string;
    name: string;
    defaults: Pick<SampleImageOptions, 'seed' | 'width' | 'height'>;
    clipSkip: number;
    modelConfig?: SdModelConfig;
    prediction: PredictionType;
  },
): Promise<string[]> {
  const settings = lines.map((line) => parseSampleLine(line, target.defaults));
  const lora = join(target.folder, `${target.name}.lora.safetensors`);
  await writeSafetensors(lora, toKohya(adapter));
  try {
    const files: string[] = [];
    const images: RgbImage[] = [];
    for (const [i, options] of settings.entries()) {
      const image = await sampleImage(model, tokenizer, {
        ...options,
        sampler: 'euler_a',
        clipSkip: target.clipSkip,
        prediction: target.prediction,
        loras: [{ path: lora, strength: 1 }],
        ...(target.modelConfig ? { modelConfig: target.modelConfig } : {}),
      });
      const path = join(target.folder, `${target.name}-${i}.png`);
      await writeFile(path, image.png);
      files.push(path);
      images.push({ rgb: image.rgb, width: options.width, height: options.height });
    }
    if (images.length > 1) {
      const grid = imageGrid(images);
      const path = join(target.folder, `${target.name}-grid.png`);
      await writeFile(path, encodePng(grid.width, grid.height, grid.rgb));
      files.push(path);
    }
    return files;
  } finally {
    await rm(lora, { force: true });
  }
}
