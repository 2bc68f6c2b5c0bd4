import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { kohyaHashes, type LoraLayout, sdxlUnetNaming, toDiffusers, toKohya, toPeft } from '@lora/adapters';
import { type TensorData, writeSafetensors } from '@lora/safetensors';
import { CliError } from '../cli-error.ts';
import { refuseExisting } from '../files.ts';
import { print, printJson } from '../format.ts';
import { loraInput, readAdapterFile } from '../lora-files.ts';

/** Module paths of a Stable Diffusion LoRA start with its component. */
const SD_COMPONENT = /^(unet|text_encoder|text_encoder_2)\./;

export const TARGET_LAYOUTS: readonly LoraLayout[] = ['kohya', 'diffusers', 'peft'];

export interface ConvertOptions {
  to?: string;
  baseModel?: string;
  overwrite?: boolean;
  json?: boolean;
}

export interface ConvertReport {
  input: string;
  output: string;
  from: LoraLayout;
  to: LoraLayout;
  modules: number;
  /** PEFT only: the adapter_config.json written beside the output. */
  adapterConfig?: string;
}

function targetLayout(to: string | undefined): LoraLayout {
  const layout = TARGET_LAYOUTS.find((name) => name === to);
  if (layout === undefined) {
    throw new CliError(
      'E_USAGE',
      `--to must be one of ${TARGET_LAYOUTS.join(', ')}${to === undefined ? '' : ` (got "${to}")`}: kohya for A1111 / ComfyUI, diffusers for diffusers' load_lora_weights, peft for PEFT / transformers.`,
    );
  }
  return layout;
}

/** Metadata without the keys that describe other tensors (hashes), with safetensors' `format`. */
function carriedMetadata(metadata: Readonly<Record<string, string>>): Record<string, string> {
  const kept = Object.fromEntries(Object.entries(metadata).filter(([key]) => !key.startsWith('sshs_')));
  return { format: 'pt', ...kept };
}

/** Rewrites a LoRA in another key layout; the tensors' bytes and dtypes are kept. */
export async function convertFile(
  input: string,
  output: string,
  options: ConvertOptions,
): Promise<ConvertReport> {
  const to = targetLayout(options.to);
  const configPath = join(dirname(output), 'adapter_config.json');
  const file = await loraInput(
    input,
    'lora convert takes a LoRA .safetensors file, or a PEFT adapter folder holding adapter_model.safetensors',
  );
  refuseExisting(to === 'peft' ? [output, configPath] : [output], options.overwrite);
  const source = await readAdapterFile(file);
  if (to === 'peft' && [...source.adapter.keys()].some((path) => SD_COMPONENT.test(path))) {
    throw new CliError(
      'E_USAGE',
      `${input} is a Stable Diffusion LoRA (UNet / text-encoder modules), and PEFT files are for transformers models: no UNet or text-encoder loader reads one. Use --to kohya (A1111, ComfyUI, sd-scripts) or --to diffusers (diffusers' load_lora_weights).`,
    );
  }
  const baseModel =
    to === 'peft' ? (options.baseModel ?? source.peftConfig?.base_model_name_or_path) : undefined;
  if (to === 'peft' && baseModel === undefined) {
    throw new CliError(
      'E_USAGE',
      `${file} does not say which base model it belongs to, and adapter_config.json needs one: pass --base-model <hub id or path>, e.g. --base-model meta-llama/Llama-3.2-1B.`,
    );
  }
  await mkdir(dirname(output), { recursive: true });
  const metadata = carriedMetadata(source.metadata);
  let tensors: Map<string, TensorData>;
  let adapterConfig: string | undefined;
  if (to === 'peft') {
    const peft = toPeft(source.adapter, { baseModelNameOrPath: baseModel! });
    tensors = peft.tensors;
    await writeFile(configPath, `${JSON.stringify(peft.config, null, 2)}\n`);
    adapterConfig = configPath;
  } else {
    // An SDXL LoRA (a second text encoder) names its UNet modules by LDM path in kohya's layout.
    const sdxl = [...source.adapter.keys()].some((path) => path.startsWith('text_encoder_2.'));
    const adapter = sdxl
      ? sdxlUnetNaming(source.adapter, to === 'kohya' ? 'ldm' : 'diffusers')
      : source.adapter;
    tensors = to === 'kohya' ? toKohya(adapter) : toDiffusers(adapter);
    // sd-webui-additional-networks identifies a LoRA by these hashes of its tensors.
    if (to === 'kohya') Object.assign(metadata, kohyaHashes(tensors, metadata));
  }
  await writeSafetensors(output, tensors, metadata);
  return {
    input,
    output,
    from: source.layout,
    to,
    modules: source.adapter.size,
    ...(adapterConfig === undefined ? {} : { adapterConfig }),
  };
}

export async function convert(input: string, output: string, options: ConvertOptions): Promise<number> {
  const report = await convertFile(input, output, options);
  if (options.json) {
    printJson(report);
  } else {
    print(
      `${report.output}: ${report.modules} modules converted from ${report.from} to ${report.to}` +
        (report.adapterConfig ? `, with ${report.adapterConfig}` : ''),
    );
  }
  return 0;
}
