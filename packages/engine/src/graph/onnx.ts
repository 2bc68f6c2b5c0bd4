import { basename } from 'node:path';
import { ONNX_DTYPE } from './dtype.ts';
import type { AttributeValue, ConstantData, Graph, Tensor } from './graph.ts';
import { OPSETS, type OpDomain } from './opsets.ts';
import { ProtoWriter } from './protobuf.ts';

/** The IR version that goes with opset 21 (see `OPSETS`). */
const IR_VERSION = 10;

/** Protobuf messages cannot exceed 2 GiB; weights that big must be external data. */
export const MAX_MODEL_BYTES = 2 ** 31 - 1;

export interface SerializeOptions {
  /** The `location` written for an external file (relative to the model file); default: its base name. */
  externalLocation?: (path: string) => string;
  producerName?: string;
}

// Field numbers from onnx/onnx.proto3.
const MODEL = { irVersion: 1, producerName: 2, graph: 7, opsetImport: 8 } as const;
const GRAPH = { node: 1, name: 2, initializer: 5, input: 11, output: 12 } as const;
const NODE = { input: 1, output: 2, name: 3, opType: 4, attribute: 5, domain: 7 } as const;
const ATTRIBUTE = { name: 1, f: 2, i: 3, s: 4, t: 5, floats: 7, ints: 8, type: 20 } as const;
const ATTRIBUTE_TYPE = { float: 1, int: 2, string: 3, tensor: 4, floats: 6, ints: 7 } as const;
const TENSOR = { dims: 1, dataType: 2, name: 8, rawData: 9, externalData: 13, dataLocation: 14 } as const;
const DATA_LOCATION_EXTERNAL = 1;

/** Encodes `graph` as an ONNX ModelProto. Throws `MODEL_TOO_LARGE` past the protobuf limit. */
export function serializeModel(graph: Graph, options: SerializeOptions = {}): Uint8Array {
  const location = options.externalLocation ?? basename;
  const g = new ProtoWriter();
  for (const node of graph.nodes) {
    const n = new ProtoWriter();
    for (const input of node.inputs) n.string(NODE.input, input?.name ?? '');
    for (const output of node.outputs) n.string(NODE.output, output.name);
    n.string(NODE.name, node.name).string(NODE.opType, node.opType);
    if (node.domain !== '') n.string(NODE.domain, node.domain);
    for (const [name, value] of Object.entries(node.attributes))
      n.message(NODE.attribute, attribute(name, value));
    g.message(GRAPH.node, n);
  }
  g.string(GRAPH.name, graph.name);
  for (const [tensor, data] of graph.initializers) {
    const t = tensorHeader(tensor.name, tensor.dtype, tensor.shape as readonly number[]);
    if (data.kind === 'inline') t.bytes(TENSOR.rawData, data.bytes);
    else {
      const entries: [string, string][] = [
        ['location', location(data.path)],
        ['offset', String(data.offset)],
        ['length', String(data.length)],
      ];
      for (const [key, value] of entries)
        t.message(TENSOR.externalData, new ProtoWriter().string(1, key).string(2, value));
      t.int(TENSOR.dataLocation, DATA_LOCATION_EXTERNAL);
    }
    g.message(GRAPH.initializer, t);
  }
  for (const input of graph.inputs) g.message(GRAPH.input, valueInfo(input.name, input));
  for (const output of graph.outputs) g.message(GRAPH.output, valueInfo(output.name, output.tensor));

  const model = new ProtoWriter()
    .int(MODEL.irVersion, IR_VERSION)
    .string(MODEL.producerName, options.producerName ?? '@lora/engine')
    .message(MODEL.graph, g);
  for (const domain of new Set<OpDomain>(['', ...graph.nodes.map((node) => node.domain)])) {
    model.message(MODEL.opsetImport, new ProtoWriter().string(1, domain).int(2, OPSETS[domain]));
  }
  if (model.length > MAX_MODEL_BYTES) {
    throw graph.error(
      'E_MODEL_TOO_LARGE',
      'serialize',
      `the model is ${model.length} bytes, over protobuf's 2 GiB limit; store large weights as external data`,
    );
  }
  return model.finish();
}

function tensorHeader(name: string, dtype: keyof typeof ONNX_DTYPE, shape: readonly number[]): ProtoWriter {
  const t = new ProtoWriter();
  if (shape.length > 0) t.packedInts(TENSOR.dims, shape);
  return t.int(TENSOR.dataType, ONNX_DTYPE[dtype]).string(TENSOR.name, name);
}

function constantTensor(value: ConstantData): ProtoWriter {
  return tensorHeader('', value.dtype, value.shape).bytes(TENSOR.rawData, value.bytes);
}

function attribute(name: string, value: AttributeValue): ProtoWriter {
  const a = new ProtoWriter().string(ATTRIBUTE.name, name).int(ATTRIBUTE.type, ATTRIBUTE_TYPE[value.type]);
  switch (value.type) {
    case 'int':
      return a.int(ATTRIBUTE.i, value.value);
    case 'float':
      return a.float(ATTRIBUTE.f, value.value);
    case 'string':
      return a.string(ATTRIBUTE.s, value.value);
    case 'ints':
      return a.packedInts(ATTRIBUTE.ints, value.value);
    case 'floats':
      return a.packedFloats(ATTRIBUTE.floats, value.value);
    case 'tensor':
      return a.message(ATTRIBUTE.t, constantTensor(value.value));
  }
}

/** ValueInfoProto → TypeProto.tensor_type → elem_type + TensorShapeProto (dim_value or dim_param). */
function valueInfo(name: string, tensor: Tensor): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of tensor.shape) {
    const dim = new ProtoWriter();
    if (typeof d === 'number') dim.int(1, d);
    else dim.string(2, d);
    shape.message(1, dim);
  }
  const tensorType = new ProtoWriter().int(1, ONNX_DTYPE[tensor.dtype]).message(2, shape);
  return new ProtoWriter().string(1, name).message(2, new ProtoWriter().message(1, tensorType));
}
