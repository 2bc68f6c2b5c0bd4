/** LoRA target module names per model family, and how the config's names map onto each model. */

/** Linear layers of the SD 1.x UNet's transformer blocks (diffusers names). */
export const UNET_MODULES = ['to_q', 'to_k', 'to_v', 'to_out', 'proj_in', 'proj_out', 'ff'] as const;
/** Linear layers of the CLIP text encoder (attention, then MLP). */
export const CLIP_MODULES = ['q_proj', 'k_proj', 'v_proj', 'out_proj', 'fc1', 'fc2'] as const;
/** Linear layers of a LLaMA / Qwen2 / Mistral decoder block. */
export const LLM_MODULES = [
  'q_proj',
  'k_proj',
  'v_proj',
  'o_proj',
  'gate_proj',
  'up_proj',
  'down_proj',
] as const;
/** Every linear layer the task supports (PEFT's `all-linear`; the LM head is never included). */
export const ALL_LINEAR = 'all-linear';

export type UnetModule = (typeof UNET_MODULES)[number];
export type ClipModule = (typeof CLIP_MODULES)[number];
export type LlmModule = (typeof LLM_MODULES)[number];
export type ModuleName = UnetModule | ClipModule | LlmModule;

export const MODULE_NAMES: readonly ModuleName[] = [
  ...new Set<ModuleName>([...LLM_MODULES, ...CLIP_MODULES, ...UNET_MODULES]),
];

/** CLIP attention names accepted for sd: each also targets the UNet's matching attention layer. */
const CLIP_TO_UNET: Partial<Record<ClipModule, UnetModule>> = {
  q_proj: 'to_q',
  k_proj: 'to_k',
  v_proj: 'to_v',
  out_proj: 'to_out',
};

/** Why a module name does not fit a task, with the name to use instead; undefined when it fits. */
export function moduleMismatch(name: ModuleName, task: 'sd' | 'llm'): string | undefined {
  if (task === 'llm') {
    if ((LLM_MODULES as readonly string[]).includes(name)) return undefined;
    if ((UNET_MODULES as readonly string[]).includes(name))
      return `"${name}" is a Stable Diffusion UNet layer, valid only with task: sd; LLaMA-family layers are ${LLM_MODULES.join(', ')}`;
    const llmName = { out_proj: 'o_proj', fc1: 'up_proj', fc2: 'down_proj' }[name as 'out_proj'];
    return `"${name}" is a CLIP text-encoder layer, valid only with task: sd; the LLaMA-family layer is ${llmName}`;
  }
  if (name === 'o_proj')
    return '"o_proj" is a LLaMA-family layer; for sd use to_out (UNet) or out_proj (text encoder)';
  if (name === 'gate_proj' || name === 'up_proj' || name === 'down_proj')
    return `"${name}" is a LLaMA-family MLP layer; for sd use ff (UNet feed-forward) or fc1/fc2 (text-encoder MLP)`;
  return undefined;
}

/** Which layers of each model a resolved config trains. */
export type ModuleTargets =
  | { task: 'sd'; unet: UnetModule[]; text_encoder: ClipModule[] }
  | { task: 'llm'; model: LlmModule[] };

/**
 * Expands `target_modules` into the layers of each model. For sd, CLIP attention names (`q_proj`,
 * `k_proj`, `v_proj`, `out_proj`) mean the UNet's `to_q`/`to_k`/`to_v`/`to_out` and, when the text
 * encoder is trained, the text encoder's layer of the same name. When the text encoder is trained
 * but no CLIP name is listed, it gets every linear layer (kohya's default).
 */
export function resolveTargetModules(config: {
  task: 'sd' | 'llm';
  target_modules: readonly ModuleName[] | typeof ALL_LINEAR;
  train_text_encoder?: boolean;
}): ModuleTargets {
  const names = config.target_modules;
  if (config.task === 'llm') {
    const model = names === ALL_LINEAR ? [...LLM_MODULES] : LLM_MODULES.filter((m) => names.includes(m));
    return { task: 'llm', model };
  }
  if (names === ALL_LINEAR)
    return {
      task: 'sd',
      unet: [...UNET_MODULES],
      text_encoder: config.train_text_encoder ? [...CLIP_MODULES] : [],
    };
  const unet = new Set<UnetModule>();
  for (const name of names) {
    if ((UNET_MODULES as readonly string[]).includes(name)) unet.add(name as UnetModule);
    const mapped = CLIP_TO_UNET[name as ClipModule];
    if (mapped) unet.add(mapped);
  }
  let textEncoder: ClipModule[] = [];
  if (config.train_text_encoder) {
    textEncoder = CLIP_MODULES.filter((m) => names.includes(m));
    if (textEncoder.length === 0) textEncoder = [...CLIP_MODULES];
  }
  return { task: 'sd', unet: UNET_MODULES.filter((m) => unet.has(m)), text_encoder: textEncoder };
}
