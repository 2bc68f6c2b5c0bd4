export {
  checkGradients,
  GRADCHECK_TOLERANCE,
  type GradCheckCase,
  type GradCheckInput,
  type GradCheckResult,
} from './autodiff/gradcheck.ts';
export { type GradientsOptions, gradients } from './autodiff/gradients.ts';
export { type InputVjp, VJP, type VjpContext, type VjpRule } from './autodiff/vjp.ts';
export { EngineError, type EngineErrorCode } from './errors.ts';
export { BYTES_PER_ELEMENT, type DType, fromFloat16Bits, toFloat16Bits } from './graph/dtype.ts';
export {
  type Attributes,
  type AttributeValue,
  attr,
  type CheckpointBlock,
  type ConstantData,
  type ExternalData,
  Graph,
  type GraphOutput,
  type InitializerData,
  type Node,
  Tensor,
} from './graph/graph.ts';
export { estimateMemory, type MemoryEstimate } from './graph/memory-estimate.ts';
export { readDataRoot, type WriteModelOptions, writeModel } from './graph/model-file.ts';
export { MAX_MODEL_BYTES, type SerializeOptions, serializeModel } from './graph/onnx.ts';
export type { Operand } from './graph/ops/common.ts';
export {
  type AttentionOptions,
  crossEntropy,
  gelu,
  geluTanh,
  mseLoss,
  quickGelu,
  rmsNorm,
  rope,
  ropeInverseFrequencies,
  ropeTables,
  scaledDotProductAttention,
  silu,
} from './graph/ops/composite.ts';
export {
  add,
  and,
  cast,
  div,
  equal,
  erf,
  exp,
  greater,
  identity,
  less,
  log,
  mul,
  neg,
  not,
  pow,
  reciprocal,
  rsqrt,
  sigmoid,
  sqrt,
  sub,
  tanh,
  where,
} from './graph/ops/elementwise.ts';
export { castAtUse, checkpoint, stopGradient } from './graph/ops/gradient-marks.ts';
export {
  concat,
  constantOfShape,
  expand,
  expandAs,
  gather,
  pad,
  reshape,
  reshapeAs,
  reshapeWith,
  SLICE_END,
  type SliceSpec,
  scatterNDAdd,
  shapeOf,
  slice,
  split,
  squeeze,
  transpose,
  trilu,
  unsqueeze,
  zerosLike,
} from './graph/ops/layout.ts';
export { type GemmOptions, gemm, matmul } from './graph/ops/linalg.ts';
export {
  type ConvOptions,
  type ConvTransposeOptions,
  conv,
  convTranspose,
  dropout,
  groupNorm,
  layerNorm,
  type NormOptions,
  resizeNearest,
} from './graph/ops/nn.ts';
export {
  logSoftmax,
  reduceLogSumExp,
  reduceMax,
  reduceMean,
  reduceSum,
  softmax,
} from './graph/ops/reduce.ts';
export { OPSET, OPSETS, type OpDomain, opKey } from './graph/opsets.ts';
export { type Dim, formatShape, type Shape } from './graph/shape.ts';
export {
  type GraphLoader,
  type HostArray,
  type HostArrayOf,
  type HostDType,
  type HostTensor,
  hostTensor,
  type LoadedGraph,
} from './host-tensor.ts';
