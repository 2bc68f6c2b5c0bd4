import { createHash } from 'node:crypto';
import { planWrite, type TensorData, type TensorMap } from '@lora/safetensors';

/** sd-scripts' legacy hash reads 64 KiB starting 1 MiB into the file (`addnet_hash_legacy`). */
const LEGACY_START = 0x100000;
const LEGACY_LENGTH = 0x10000;

export interface KohyaHashes {
  /** sha256 of the data section (everything after the header), hex. */
  readonly sshs_model_hash: string;
  /** First 8 hex digits of sha256 of file bytes 0x100000 … 0x110000 (empty when shorter). */
  readonly sshs_legacy_hash: string;
}

/**
 * The hashes sd-scripts stores for sd-webui-additional-networks
 * (`precalculate_safetensors_hashes`): computed on the file as it would be saved with only the
 * `ss_*` metadata keys. The model hash depends only on the tensors; the legacy hash also on the
 * header length, and on the header's bytes only if the header reaches past 1 MiB (then Python's
 * order of several metadata keys, which is not deterministic, matters too).
 */
export function kohyaHashes(
  tensors: TensorMap<TensorData>,
  metadata: Readonly<Record<string, string>> = {},
): KohyaHashes {
  const training = Object.fromEntries(Object.entries(metadata).filter(([key]) => key.startsWith('ss_')));
  const plan = planWrite(tensors, training);
  const model = createHash('sha256');
  const legacy = createHash('sha256');
  const window = (bytes: Uint8Array, at: number) => {
    const start = Math.max(LEGACY_START, at);
    const end = Math.min(LEGACY_START + LEGACY_LENGTH, at + bytes.length);
    if (start < end) legacy.update(bytes.subarray(start - at, end - at));
  };
  window(plan.head, 0);
  for (const { tensor, byteOffset } of plan.tensors) {
    const bytes = new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
    model.update(bytes);
    window(bytes, plan.head.length + byteOffset);
  }
  return { sshs_model_hash: model.digest('hex'), sshs_legacy_hash: legacy.digest('hex').slice(0, 8) };
}

/** A value as Python's `str()` writes it, which is how sd-scripts turns `ss_*` values into strings. */
export type PythonValue =
  | string
  | number
  | boolean
  | null
  | readonly PythonValue[]
  | { readonly [key: string]: PythonValue };

/**
 * `ss_*` metadata as sd-scripts writes it: every value a string. Strings stay; `true` → `True`,
 * `null` → `None`; integers → `4`; other numbers → Python float repr (`1e-05`, `0.0001`);
 * objects and arrays → `json.dumps` output (`ss_tag_frequency`, `ss_dataset_dirs`). For a float
 * that happens to be whole (`ss_network_alpha` = 1.0) pass `pythonFloat(1)`.
 */
export function kohyaMetadata(values: Readonly<Record<string, PythonValue>>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(values).map(([key, value]) => [key, typeof value === 'string' ? value : pythonStr(value)]),
  );
}

/** Python `repr(float(value))`: `1.0`, `0.0001`, `1e-05`, `1.5e+16`, `inf`, `nan`. */
export function pythonFloat(value: number): string {
  if (Number.isNaN(value)) return 'nan';
  if (!Number.isFinite(value)) return value > 0 ? 'inf' : '-inf';
  if (value === 0) return Object.is(value, -0) ? '-0.0' : '0.0';
  // toExponential() gives the shortest round-trip digits, as Python's repr does.
  const [mantissa = '', exponentText = '0'] = value.toExponential().split('e');
  const exponent = Number(exponentText);
  const negative = mantissa.startsWith('-');
  const digits = mantissa.replace('-', '').replace('.', '');
  const sign = negative ? '-' : '';
  if (exponent < -4 || exponent >= 16) {
    const fraction = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const power = Math.abs(exponent).toString().padStart(2, '0');
    return `${sign}${fraction}e${exponent < 0 ? '-' : '+'}${power}`;
  }
  if (exponent < 0) return `${sign}0.${'0'.repeat(-exponent - 1)}${digits}`;
  const whole = digits.slice(0, exponent + 1).padEnd(exponent + 1, '0');
  const fraction = digits.slice(exponent + 1);
  return `${sign}${whole}.${fraction === '' ? '0' : fraction}`;
}

function pythonStr(value: PythonValue): string {
  if (value === null) return 'None';
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : pythonFloat(value);
  return pythonJson(value as PythonValue);
}

/** Python `json.dumps` with its defaults: `", "` and `": "` separators, ASCII-only output. */
function pythonJson(value: PythonValue): string {
  if (value === null) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') {
    if (Number.isNaN(value)) return 'NaN';
    if (!Number.isFinite(value)) return value > 0 ? 'Infinity' : '-Infinity';
    return Number.isInteger(value) ? String(value) : pythonFloat(value);
  }
  if (typeof value === 'string') {
    return JSON.stringify(value).replace(
      /[\u0080-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
  }
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(', ')}]`;
  return `{${Object.entries(value)
    .map(([key, item]) => `${pythonJson(key)}: ${pythonJson(item)}`)
    .join(', ')}}`;
}
