import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CliError } from '../cli-error.ts';
import { refuseExisting, requireExisting, writeAtomically } from '../files.ts';
import { print, printJson } from '../format.ts';
import { deviceOption, listOption, numberOption, wholeOption } from '../options.ts';
import { parseLoraSpec } from './merge.ts';

export interface SampleCommandOptions {
  model?: string;
  prompt?: string;
  negative?: string;
  lora?: string | string[];
  loraDir?: string;
  tokenizer?: string;
  sampler?: string;
  steps?: number | string;
  cfg?: number | string;
  seed?: number | string;
  width?: number | string;
  height?: number | string;
  clipSkip?: number | string;
  device?: string;
  output?: string;
  /** Also render the image without the LoRAs: the output is before | after, side by side. */
  compare?: boolean;
  overwrite?: boolean;
  json?: boolean;
}

export interface SampleReport {
  output: string;
  loras: { path: string; strength: number }[];
  parameters: string;
}

/**
 * The LoRA file of a `<lora:name:…>` tag: `name` as a path, or `name.safetensors` in --lora-dir
 * (default: the current folder).
 */
function findLora(name: string, loraDir: string | undefined): string {
  const places = [name, join(loraDir ?? '.', `${name}.safetensors`)];
  const found = places.find((path) => existsSync(path) && statSync(path).isFile());
  if (found === undefined) {
    throw new CliError(
      'E_NOT_FOUND',
      `the prompt's <lora:${name}> names no file: looked for ${places.join(' and ')}; pass --lora-dir <folder of LoRAs>.`,
      1,
    );
  }
  return found;
}

/**
 * Text to image with an SD 1.x, 2.x or XL checkpoint and LoRAs (from `<lora:name:weight>` tags in
 * the prompt and --lora), written as a PNG with A1111's generation parameters.
 */
export async function sample(options: SampleCommandOptions): Promise<SampleReport> {
  const { model, prompt, output } = options;
  if (!model || prompt === undefined || !output) {
    throw new CliError(
      'E_USAGE',
      'lora sample needs --model <checkpoint.safetensors>, --prompt <text> and --output <file.png>, e.g. lora sample --model models/sd15.safetensors --prompt "a red circle <lora:style:0.8>" --lora-dir output/style --output red.png',
    );
  }
  const { SAMPLERS, extractLoraTags, sampleImage, ClipTokenizer, SD15, encodePng, imageGrid, sdModelFamily } =
    await import('@lora/trainer-ort');
  const sampler = options.sampler ?? 'euler_a';
  if (!(SAMPLERS as readonly string[]).includes(sampler)) {
    throw new CliError('E_USAGE', `--sampler ${sampler}: use one of ${SAMPLERS.join(', ')}.`);
  }
  const cfgScale = numberOption(options.cfg, '--cfg', 7, (n) => n >= 0, 'give a number ≥ 0');
  const steps = wholeOption(options.steps, '--steps', 20, 1);
  const seed = wholeOption(options.seed, '--seed', 0, 0);
  const width = wholeOption(options.width, '--width', 512, 8);
  const height = wholeOption(options.height, '--height', 512, 8);
  const clipSkip = wholeOption(options.clipSkip, '--clip-skip', 1, 1);
  const device = deviceOption(options.device);
  requireExisting([model]);
  refuseExisting([output], options.overwrite);
  const loras = [
    ...extractLoraTags(prompt).loras.map((tag) => ({
      path: findLora(tag.name, options.loraDir),
      strength: tag.weight,
    })),
    ...listOption(options.lora).map((spec) => {
      const { path, multiplier } = parseLoraSpec(spec);
      return { path, strength: multiplier };
    }),
  ];
  requireExisting(loras.map((l) => l.path));
  if (loras.length > 0 && statSync(model).isDirectory()) {
    throw new CliError(
      'E_USAGE',
      `LoRAs merge into a single-file checkpoint; ${model} is a diffusers folder. Give the .safetensors single file of the model.`,
    );
  }
  if (options.compare && loras.length === 0) {
    throw new CliError(
      'E_USAGE',
      '--compare shows the image without and with the LoRAs; name one with <lora:…> or --lora.',
    );
  }
  const tokenizer = await ClipTokenizer.forModel(
    model,
    SD15.textEncoder.maxPositions,
    options.tokenizer,
    await sdModelFamily(model),
  );
  const settings = {
    prompt,
    negativePrompt: options.negative ?? '',
    sampler: sampler as (typeof SAMPLERS)[number],
    steps,
    cfgScale,
    seed,
    width,
    height,
    clipSkip,
    device,
  };
  const image = await sampleImage(model, tokenizer, { ...settings, loras });
  let png = image.png;
  if (options.compare) {
    const before = await sampleImage(model, tokenizer, settings);
    const pair = imageGrid(
      [before, image].map(({ rgb }) => ({ rgb, width, height })),
      1,
    );
    png = encodePng(pair.width, pair.height, pair.rgb, { parameters: image.parameters });
  }
  await writeAtomically(output, (temporary) => writeFileSync(temporary, png));
  const report: SampleReport = { output, loras, parameters: image.parameters };
  if (options.json) printJson(report);
  else print(`${output}\n${image.parameters}`);
  return report;
}
