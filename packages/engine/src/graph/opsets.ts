/**
 * The operator sets a graph may use, with the version each model imports. `''` is the ONNX
 * default domain: 21 is the first opset with the per-channel GroupNormalization, and onnxruntime
 * 1.30 implements every op used here at 21. `com.microsoft` holds onnxruntime's contrib ops
 * (fused or provider-specific kernels); a node in it needs its own VJP entry, keyed by `opKey`.
 */
export const OPSETS = { '': 21, 'com.microsoft': 1 } as const;

export type OpDomain = keyof typeof OPSETS;

/** The default-domain opset every model imports. */
export const OPSET = OPSETS[''];

/** How the VJP table names an op: its type in the default domain, `domain.type` in another. */
export function opKey(node: { readonly domain: OpDomain; readonly opType: string }): string {
  return node.domain === '' ? node.opType : `${node.domain}.${node.opType}`;
}
