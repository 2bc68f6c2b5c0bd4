/**
 * Every dtype of the current safetensors format, in the crate's enum order, which is
 * increasing alignment: the writer sorts tensors by descending position in this list.
 */
export const DTYPES = [
  'BOOL',
  'F4',
  'F6_E2M3',
  'F6_E3M2',
  'U8',
  'I8',
  'F8_E5M2',
  'F8_E4M3',
  'F8_E8M0',
  'F8_E4M3FNUZ',
  'F8_E5M2FNUZ',
  'I16',
  'U16',
  'F16',
  'BF16',
  'I32',
  'U32',
  'F32',
  'C64',
  'F64',
  'I64',
  'U64',
] as const;

export type Dtype = (typeof DTYPES)[number];

const BITS: Readonly<Record<Dtype, number>> = {
  BOOL: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  F8_E4M3FNUZ: 8,
  F8_E5M2FNUZ: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
};

const RANK: ReadonlyMap<string, number> = new Map(DTYPES.map((name, index) => [name, index]));

export function isDtype(name: string): name is Dtype {
  return RANK.has(name);
}

/** Bits per element (4 and 6 for the packed float formats). */
export function dtypeBits(dtype: Dtype): number {
  return BITS[dtype];
}

/** Position in the crate's enum; a larger rank is written first. */
export function dtypeRank(dtype: Dtype): number {
  return RANK.get(dtype)!;
}
