import { createHash } from 'node:crypto';
import { serialize, type TensorData } from '@lora/safetensors';
import { describe, expect, it } from 'vitest';
import { kohyaHashes, kohyaMetadata, pythonFloat } from './kohya-metadata.ts';

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

describe('kohyaHashes', () => {
  it('hashes the data section and the 64 KiB at 1 MiB of the ss_-only file, as sd-scripts does', () => {
    // Many small tensors, so tensor boundaries fall inside the legacy window.
    const tensors = new Map<string, TensorData>();
    for (let i = 0; i < 40; i++) {
      tensors.set(`lora_unet_m${i}.lora_down.weight`, {
        dtype: 'F16',
        shape: [64, 300],
        data: new Uint8Array(64 * 300 * 2).map((_, j) => (i * 31 + j) % 256),
      });
    }
    const metadata = { ss_network_dim: '64', ss_output_name: 'x', modelspec_title: 'dropped' };
    const file = serialize(tensors, { ss_network_dim: '64', ss_output_name: 'x' });
    const dataStart = 8 + Number(new DataView(file.buffer).getBigUint64(0, true));
    expect(file.length).toBeGreaterThan(0x110000);
    expect(kohyaHashes(tensors, metadata)).toEqual({
      sshs_model_hash: sha256(file.subarray(dataStart)),
      sshs_legacy_hash: sha256(file.subarray(0x100000, 0x110000)).slice(0, 8),
    });
  });

  it('hashes nothing for the legacy window of a file under 1 MiB', () => {
    const tensors = { a: { dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3]) } } as const;
    expect(kohyaHashes(tensors)).toEqual({
      sshs_model_hash: sha256(new Uint8Array([1, 2, 3])),
      sshs_legacy_hash: 'e3b0c442',
    });
  });
});

describe('kohyaMetadata', () => {
  it('writes values the way Python str() does', () => {
    expect(
      kohyaMetadata({
        ss_output_name: 'cyberpunk',
        ss_network_dim: 16,
        ss_network_alpha: pythonFloat(8),
        ss_learning_rate: 0.0001,
        ss_unet_lr: 5e-5,
        ss_v2: false,
        ss_seed: null,
        ss_tag_frequency: { '10_style': { 'neon city': 3, café: 1 } },
      }),
    ).toEqual({
      ss_output_name: 'cyberpunk',
      ss_network_dim: '16',
      ss_network_alpha: '8.0',
      ss_learning_rate: '0.0001',
      ss_unet_lr: '5e-05',
      ss_v2: 'False',
      ss_seed: 'None',
      ss_tag_frequency: '{"10_style": {"neon city": 3, "caf\\u00e9": 1}}',
    });
  });

  it.each([
    [1, '1.0'],
    [0.1, '0.1'],
    [1e-5, '1e-05'],
    [1.5e-7, '1.5e-07'],
    [123.456, '123.456'],
    [1e16, '1e+16'],
    [1234567890123456, '1234567890123456.0'],
    [-2.5, '-2.5'],
    [-0, '-0.0'],
    [Number.POSITIVE_INFINITY, 'inf'],
    [Number.NaN, 'nan'],
  ])('pythonFloat(%d) is %s', (value, text) => {
    expect(pythonFloat(value)).toBe(text);
  });
});
