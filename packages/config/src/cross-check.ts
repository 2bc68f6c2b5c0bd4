import type * as z from 'zod';
import type { ConfigIssueCode } from './errors.ts';
import {
  ALL_LINEAR,
  MODULE_NAMES,
  type ModuleName,
  moduleMismatch,
  resolveTargetModules,
} from './modules.ts';
import { RUN_FOLDER_PLACEHOLDERS, timeOutsideLastSegment, unknownPlaceholders } from './run-folder.ts';
import type { ConfigKey } from './schema.ts';
import { DEFAULTS, KEY_INFO } from './schema.ts';

/** What a cross-key issue carries in zod's `params`: our code, and whether to point at the key itself. */
export interface CrossIssueParams {
  code: ConfigIssueCode;
  atKey?: boolean;
}

const SD_DATA_KEYS = ['train_data_dir', 'metadata_path'] as const;

/** The task a config trains, and which key decided it; undefined when the data keys leave it open. */
export function inferTask(config: Record<string, unknown>): { task: 'sd' | 'llm'; from: string } | undefined {
  if (config.task === 'sd' || config.task === 'llm') return { task: config.task, from: 'task' };
  const sdKey = SD_DATA_KEYS.find((key) => key in config);
  const llm = 'train_data' in config;
  if (sdKey && !llm) return { task: 'sd', from: sdKey };
  if (llm && !sdKey) return { task: 'llm', from: 'train_data' };
  return undefined;
}

const integer = (value: unknown) => (Number.isInteger(value) ? (value as number) : undefined);

/**
 * Rules that span keys. Runs even when single keys failed (so every error shows at once), hence
 * each rule reads only values it can check the type of.
 */
export function crossCheck(config: Record<string, unknown>, ctx: z.RefinementCtx): void {
  const report = (path: (string | number)[], message: string, params: CrossIssueParams) =>
    ctx.addIssue({ code: 'custom', path, message, params });

  const inferred = inferTask(config);
  const taskGiven = config.task !== undefined;
  if (!inferred && !taskGiven) {
    if ('train_data' in config)
      report(
        ['train_data'],
        'train_data (text, task llm) and train_data_dir / metadata_path (images, task sd) are both set; keep the one for the task you train',
        { code: 'conflict', atKey: true },
      );
    else
      report(
        [],
        'no training data: set train_data_dir (a folder of images, task sd) or train_data (text files, task llm)',
        { code: 'missing_key' },
      );
  }
  if (inferred) {
    const { task, from } = inferred;
    if (task === 'sd' && !SD_DATA_KEYS.some((key) => key in config))
      report(['train_data_dir'], 'task sd needs train_data_dir (a folder of images) or metadata_path', {
        code: 'missing_key',
      });
    if (task === 'llm' && !('train_data' in config))
      report(['train_data'], 'task llm needs train_data (one or more .json / .jsonl files)', {
        code: 'missing_key',
      });
    const because = from === 'task' ? '' : ` (inferred from ${from})`;
    for (const key of Object.keys(config) as ConfigKey[]) {
      const only = KEY_INFO[key]?.task;
      if (only && only !== task)
        report(
          [key],
          `${key} applies to task ${only} only, and this config trains ${task}${because}; remove it`,
          {
            code: 'wrong_task',
            atKey: true,
          },
        );
    }
    checkTargets(config, task, report);
    if (task === 'sd') checkBuckets(config, report);
    if (config.conv_alpha !== undefined && config.conv_rank === undefined)
      report(
        ['conv_alpha'],
        'conv_alpha is the alpha of the convolutions conv_rank trains; set conv_rank too',
        {
          code: 'conflict',
          atKey: true,
        },
      );
    for (const key of ['sample_every_n_steps', 'sample_every_n_epochs'] as const) {
      if (config[key] !== undefined && config.sample_prompts === undefined)
        report([key], `${key} says when to sample; set sample_prompts to say what`, {
          code: 'conflict',
          atKey: true,
        });
    }
    if (config.validation_split !== undefined && config.validation_data !== undefined)
      report(['validation_data'], 'set either validation_split or validation_data, not both', {
        code: 'conflict',
        atKey: true,
      });
    if (
      config.validation_every_n_steps !== undefined &&
      config.validation_split === undefined &&
      config.validation_data === undefined
    )
      report(
        ['validation_every_n_steps'],
        'validation_every_n_steps says when to evaluate; set validation_split or validation_data to say on what',
        { code: 'conflict', atKey: true },
      );
    if (task === 'sd' && config.random_crop === true && config.cache_latents !== false)
      report(
        ['random_crop'],
        'random_crop crops each image anew every epoch, so its latents cannot be cached; set cache_latents: false (cached latents are the default)',
        { code: 'conflict', atKey: true },
      );
  }

  if (typeof config.output_dir === 'string')
    checkRunFolder(config.output_dir, 'output_name' in config, report);
  if (config.epochs !== undefined && config.max_steps !== undefined)
    report(['max_steps'], 'set either epochs or max_steps, not both', { code: 'conflict', atKey: true });
  if (config.warmup_steps !== undefined && config.warmup_ratio !== undefined)
    report(['warmup_ratio'], 'set either warmup_steps or warmup_ratio, not both', {
      code: 'conflict',
      atKey: true,
    });

  if (typeof config.num_workers === 'number' && config.num_workers > 1) {
    if (Array.isArray(config.device_ids))
      report(
        ['num_workers'],
        'num_workers starts CPU workers and device_ids one worker per GPU: set one of them',
        {
          code: 'conflict',
          atKey: true,
        },
      );
    else if (config.device === 'cuda' || config.device === 'webgpu')
      report(
        ['num_workers'],
        `num_workers starts CPU workers, but device is ${config.device}${config.device === 'cuda' ? '; for GPUs list device_ids' : ''}`,
        {
          code: 'conflict',
          atKey: true,
        },
      );
  }
  if (Array.isArray(config.device_ids)) {
    if (config.device === 'cpu')
      report(['device_ids'], 'device_ids selects CUDA devices, but device is cpu', {
        code: 'conflict',
        atKey: true,
      });
    if (config.device === 'webgpu')
      report(
        ['device_ids'],
        "device_ids selects CUDA devices; onnxruntime-node's WebGPU provider takes no adapter choice (it always uses the high-performance adapter, which `lora doctor` names), so WebGPU trains on one GPU: remove device_ids, or use device: cuda",
        { code: 'conflict', atKey: true },
      );
    const ids: unknown[] = config.device_ids;
    ids.forEach((id, index) => {
      if (ids.indexOf(id) < index)
        report(['device_ids', index], `device ${id} is listed twice`, { code: 'invalid_value' });
    });
  }
}

type Report = (path: (string | number)[], message: string, params: CrossIssueParams) => void;

function checkTargets(config: Record<string, unknown>, task: 'sd' | 'llm', report: Report): void {
  const names = config.target_modules;
  if (!Array.isArray(names)) return;
  let clean = true;
  names.forEach((name, index) => {
    const problem = targetProblem(name, names.length, task, config.train_text_encoder === true);
    if (problem === undefined) return;
    clean = false;
    if (problem) report(['target_modules', index], problem, { code: 'invalid_value' });
  });
  if (clean && task === 'sd' && names.length > 0 && names[0] !== ALL_LINEAR) {
    const targets = resolveTargetModules({ task, target_modules: names, train_text_encoder: true });
    if (targets.task === 'sd' && targets.unet.length === 0)
      report(
        ['target_modules'],
        'no UNet layer is selected; add to_q, to_k, to_v, to_out (or use all-linear)',
        {
          code: 'invalid_value',
        },
      );
  }
}

/** Why one target_modules entry fails for the task; '' when the schema already reported it. */
function targetProblem(name: unknown, count: number, task: 'sd' | 'llm', textEncoder: boolean) {
  if (name === ALL_LINEAR)
    return count > 1 ? 'all-linear stands alone: write `target_modules: all-linear`' : undefined;
  if (!(MODULE_NAMES as readonly unknown[]).includes(name)) return '';
  const mismatch = moduleMismatch(name as ModuleName, task);
  if (mismatch) return mismatch;
  if (task === 'sd' && (name === 'fc1' || name === 'fc2') && !textEncoder)
    return `"${name}" is a text-encoder layer: set train_text_encoder: true, or use ff for the UNet's feed-forward`;
  return undefined;
}

function checkBuckets(config: Record<string, unknown>, report: Report): void {
  if (config.enable_bucket === false) return;
  const min = integer(config.min_bucket_reso) ?? DEFAULTS.min_bucket_reso;
  const max = integer(config.max_bucket_reso) ?? DEFAULTS.max_bucket_reso;
  const step = integer(config.bucket_reso_steps) ?? DEFAULTS.bucket_reso_steps;
  if (min > max) {
    const key = 'min_bucket_reso' in config ? 'min_bucket_reso' : 'max_bucket_reso';
    report([key], `min_bucket_reso (${min}) is larger than max_bucket_reso (${max})`, {
      code: 'out_of_range',
    });
    return;
  }
  for (const [key, value] of [
    ['min_bucket_reso', min],
    ['max_bucket_reso', max],
  ] as const)
    if (key in config && value % step !== 0)
      report([key], `${key} (${value}) must be a multiple of bucket_reso_steps (${step})`, {
        code: 'invalid_value',
      });
  const resolution = config.resolution ?? DEFAULTS.resolution;
  const sides = Array.isArray(resolution) ? resolution : [resolution];
  if (!sides.every(Number.isInteger)) return;
  const [smallest, largest] = [Math.min(...sides), Math.max(...sides)];
  const path = [
    'resolution' in config ? 'resolution' : smallest < min ? 'min_bucket_reso' : 'max_bucket_reso',
  ];
  if (smallest < min)
    report(path, `resolution ${smallest} is below min_bucket_reso (${min}); lower min_bucket_reso`, {
      code: 'out_of_range',
    });
  if (largest > max)
    report(path, `resolution ${largest} is above max_bucket_reso (${max}); raise max_bucket_reso`, {
      code: 'out_of_range',
    });
}

/** `output_dir`'s placeholders: known ones, the time in the last folder name, `{output_name}` with output_name set. */
function checkRunFolder(outputDir: string, hasOutputName: boolean, report: Report): void {
  const unknown = unknownPlaceholders(outputDir);
  if (unknown.length > 0) {
    report(
      ['output_dir'],
      `output_dir has {${unknown[0]}}, which is not one of ${RUN_FOLDER_PLACEHOLDERS.map((p) => `{${p}}`).join(', ')}`,
      { code: 'invalid_value' },
    );
  }
  if (timeOutsideLastSegment(outputDir)) {
    report(
      ['output_dir'],
      'put {timestamp} and {date} in the last folder name of output_dir, where resume: auto looks for earlier runs',
      {
        code: 'invalid_value',
      },
    );
  }
  if (outputDir.includes('{output_name}') && !hasOutputName) {
    report(['output_dir'], 'output_dir has {output_name}, so set output_name', {
      code: 'missing_key',
      atKey: true,
    });
  }
}
