import { flattenPath } from './names.ts';

/** diffusers resnet parameter names → original LDM names. */
const RESNET: Readonly<Record<string, string>> = {
  norm1: 'in_layers.0',
  conv1: 'in_layers.2',
  time_emb_proj: 'emb_layers.1',
  norm2: 'out_layers.0',
  conv2: 'out_layers.3',
  conv_shortcut: 'skip_connection',
};

const TOP_LEVEL: Readonly<Record<string, string>> = {
  conv_in: 'input_blocks.0.0',
  conv_norm_out: 'out.0',
  conv_out: 'out.2',
  'time_embedding.linear_1': 'time_embed.0',
  'time_embedding.linear_2': 'time_embed.2',
};

/**
 * A diffusers SD 1.x/2.x UNet module path → its name in an original (LDM) single-file
 * checkpoint, following kohya's `convert_unet_state_dict_to_sd` (2 resnets per down block,
 * 3 per up block). Matches whole path segments, never substrings.
 */
export function diffusersUnetToLdm(path: string): string | undefined {
  const top = TOP_LEVEL[path];
  if (top !== undefined) return top;
  const resnet = (rest: string) => {
    const [name, ...tail] = rest.split('.');
    const mapped = name === undefined ? undefined : RESNET[name];
    return mapped === undefined ? undefined : [mapped, ...tail].join('.');
  };
  let match = /^down_blocks\.(\d+)\.(attentions|resnets)\.(\d+)\.(.+)$/.exec(path);
  if (match !== null) {
    const block = 3 * Number(match[1]) + Number(match[3]) + 1;
    const rest = match[2] === 'attentions' ? match[4] : resnet(match[4]!);
    return rest === undefined
      ? undefined
      : `input_blocks.${block}.${match[2] === 'attentions' ? 1 : 0}.${rest}`;
  }
  match = /^down_blocks\.(\d+)\.downsamplers\.0\.conv$/.exec(path);
  if (match !== null) return `input_blocks.${3 * (Number(match[1]) + 1)}.0.op`;
  match = /^mid_block\.attentions\.0\.(.+)$/.exec(path);
  if (match !== null) return `middle_block.1.${match[1]}`;
  match = /^mid_block\.resnets\.(\d+)\.(.+)$/.exec(path);
  if (match !== null) {
    const rest = resnet(match[2]!);
    return rest === undefined ? undefined : `middle_block.${2 * Number(match[1])}.${rest}`;
  }
  match = /^up_blocks\.(\d+)\.(attentions|resnets)\.(\d+)\.(.+)$/.exec(path);
  if (match !== null) {
    const block = 3 * Number(match[1]) + Number(match[3]);
    const rest = match[2] === 'attentions' ? match[4] : resnet(match[4]!);
    return rest === undefined
      ? undefined
      : `output_blocks.${block}.${match[2] === 'attentions' ? 1 : 0}.${rest}`;
  }
  match = /^up_blocks\.(\d+)\.upsamplers\.0\.conv$/.exec(path);
  if (match !== null) return `output_blocks.${3 * Number(match[1]) + 2}.${match[1] === '0' ? 1 : 2}.conv`;
  return undefined;
}

/** Where a module's weight may live in a base checkpoint, most direct first. */
export function candidateWeightKeys(path: string): string[] {
  const candidates = [path];
  const dot = path.indexOf('.');
  const component = path.slice(0, dot);
  const rest = path.slice(dot + 1);
  if (component === 'unet') {
    candidates.push(rest, `model.diffusion_model.${rest}`);
    const ldm = diffusersUnetToLdm(rest);
    if (ldm !== undefined) candidates.push(`model.diffusion_model.${ldm}`);
  } else if (component === 'text_encoder') {
    candidates.push(
      rest,
      `cond_stage_model.transformer.${rest}`,
      `conditioner.embedders.0.transformer.${rest}`,
    );
  } else if (component === 'text_encoder_2') {
    candidates.push(rest);
  }
  return candidates.map((candidate) => `${candidate}.weight`);
}

/**
 * Finds the base weight a LoRA module modifies: a candidate key present in the checkpoint,
 * else one equal after kohya-style flattening (which forgives a wrong guess at where dots were).
 */
export function createKeyResolver(baseKeys: Iterable<string>): (path: string) => string | undefined {
  const keys = new Set(baseKeys);
  const flat = new Map<string, string>();
  for (const key of keys) if (key.endsWith('.weight')) flat.set(flattenPath(key), key);
  return (path) => {
    const candidates = candidateWeightKeys(path);
    return (
      candidates.find((key) => keys.has(key)) ??
      candidates.map((key) => flat.get(flattenPath(key))).find(Boolean)
    );
  };
}
