import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CLIP_IMAGE_SIZE, TAGGER_IMAGE_SIZE } from '@lora/dataset';
import { add, Graph, gather, matmul, mul, reduceMean, reduceSum, sigmoid, writeModel } from '@lora/engine';

// Tiny stand-ins for the real labelling models: the same input and output names, shapes and
// files, with hand-set weights that respond to an image's colour and brightness. Tests and demos
// run them; nothing is downloaded.

/**
 * The tiny tagger's list: name, Danbooru category, weights on the image's mean (B, G, R) in 0–1,
 * and a bias; the score is `sigmoid(w · mean + bias)`.
 */
const TINY_TAGS: readonly [
  name: string,
  category: number,
  weights: [number, number, number],
  bias: number,
][] = [
  ['general', 9, [0, 0, 0], 2],
  ['sensitive', 9, [0, 0, 0], -1],
  ['questionable', 9, [0, 0, 0], -2],
  ['explicit', 9, [0, 0, 0], -3],
  ['blue_theme', 0, [8, -4, -4], -2],
  ['red_theme', 0, [-4, -4, 8], -2],
  ['green_theme', 0, [-4, 8, -4], -2],
  ['night', 0, [-4, -4, -4], 3],
  ['white_background', 0, [4, 4, 4], -9],
  ['^_^', 0, [0, 0, 0], 0],
  ['long_hair', 0, [0, 0, 0], -0.3],
  ['light_rays', 0, [1.5, 1.5, 1.5], -4],
  ['hatsune_miku_(vocaloid)', 4, [6, 6, -6], -7],
];

const float32Bytes = (values: readonly number[]) => new Uint8Array(Float32Array.from(values).buffer);

/**
 * Writes a tiny WD14-style tagger into `folder`: `model.onnx` (input `input` float32
 * `[N, 448, 448, 3]` BGR 0–255, output `output` float32 `[N, 13]` sigmoid scores) and its
 * `selected_tags.csv`. Red images score `red_theme`, dark ones `night`, cyan ones the character
 * `hatsune_miku_(vocaloid)`; `^_^` and `long_hair` always pass the 0.35 threshold.
 */
export async function writeTinyTagger(folder: string): Promise<{ modelPath: string; tagsPath: string }> {
  const graph = new Graph('tiny_tagger');
  const size = TAGGER_IMAGE_SIZE;
  const pixels = graph.input('input', 'float32', ['batch', size, size, 3]);
  // Row means, then their mean: one 200,704-element float32 sum would be off by ~0.3 %.
  const mean = reduceMean(reduceMean(mul(pixels, 1 / 255), [2]), [1]);
  const weights = graph.initializer(
    'weights',
    'float32',
    [3, TINY_TAGS.length],
    float32Bytes([0, 1, 2].flatMap((channel) => TINY_TAGS.map(([, , w]) => w[channel]!))),
  );
  const bias = graph.initializer(
    'bias',
    'float32',
    [TINY_TAGS.length],
    float32Bytes(TINY_TAGS.map(([, , , b]) => b)),
  );
  graph.output(sigmoid(add(matmul(mean, weights), bias)), 'output');
  await mkdir(folder, { recursive: true });
  const modelPath = await writeModel(graph, folder, { fileName: 'model.onnx' });
  const tagsPath = join(folder, 'selected_tags.csv');
  const rows = TINY_TAGS.map(([name, category], i) => `${i},${name},${category},${1000 - i}`);
  await writeFile(tagsPath, `tag_id,name,category,count\n${rows.join('\n')}\n`);
  return { modelPath, tagsPath };
}

/**
 * Words the tiny CLIP text model knows, with 4-d embeddings: three colour directions (red,
 * green, blue, as offsets from grey) and brightness. Other words are `<unk>` and embed to zero.
 */
const TINY_WORDS: Readonly<Record<string, [number, number, number, number]>> = {
  red: [1, 0, 0, 0],
  green: [0, 1, 0, 0],
  blue: [0, 0, 1, 0],
  warm: [1, 0, -1, 0],
  cool: [-1, 0, 1, 0],
  golden: [1, 0.5, -1, 0.5],
  moonlight: [-0.5, 0, 1, -1],
  bright: [0, 0, 0, 1],
  daylight: [0, 0, 0, 1],
  vibrant: [0, 0, 0, 1],
  dark: [0, 0, 0, -1],
  dim: [0, 0, 0, -1],
  gloomy: [0, 0, 0, -1],
};

const SPECIAL = ['<|startoftext|>', '<|endoftext|>', '<unk>'] as const;

/** A word-level tokenizer.json in the layout tokenizers.js reads, CLIP's special tokens around each text. */
function tinyTokenizerJson(vocab: Record<string, number>): object {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: { type: 'Lowercase' },
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [
        { SpecialToken: { id: '<|startoftext|>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<|endoftext|>', type_id: 0 } },
      ],
      pair: [],
      special_tokens: Object.fromEntries(
        SPECIAL.slice(0, 2).map((token, id) => [token, { id: token, ids: [id], tokens: [token] }]),
      ),
    },
    decoder: null,
    model: { type: 'WordLevel', vocab, unk_token: '<unk>' },
  };
}

/**
 * Writes a tiny CLIP export into `folder`, laid out like a Hugging Face ONNX export:
 * `vision_model.onnx` (`pixel_values` float32 `[N, 3, 224, 224]` → `image_embeds` `[N, 4]`),
 * `text_model.onnx` (`input_ids` int64 `[N, seq]` → `text_embeds` `[N, 4]`), `tokenizer.json`
 * and `tokenizer_config.json`. Image embeddings are the mean colour's offset from grey plus its
 * brightness, so "warm" phrases rank first for red images and "bright" ones for white images.
 */
export async function writeTinyClip(folder: string): Promise<string> {
  await mkdir(folder, { recursive: true });
  const size = CLIP_IMAGE_SIZE;

  const vision = new Graph('tiny_clip_vision');
  const pixels = vision.input('pixel_values', 'float32', ['batch', 3, size, size]);
  const third = 1 / 3;
  // Columns: each channel minus the channel mean (the colour), then the channel mean (brightness).
  const projection = [
    [1 - third, -third, -third, third],
    [-third, 1 - third, -third, third],
    [-third, -third, 1 - third, third],
  ].flat();
  const weights = vision.initializer('projection', 'float32', [3, 4], float32Bytes(projection));
  vision.output(matmul(reduceMean(reduceMean(pixels, [3]), [2]), weights), 'image_embeds');
  await writeModel(vision, folder, { fileName: 'vision_model.onnx' });

  const vocab: Record<string, number> = Object.fromEntries(SPECIAL.map((token, id) => [token, id]));
  const embeddings: number[] = SPECIAL.flatMap(() => [0, 0, 0, 0]);
  for (const [word, embedding] of Object.entries(TINY_WORDS)) {
    vocab[word] = Object.keys(vocab).length;
    embeddings.push(...embedding);
  }
  const text = new Graph('tiny_clip_text');
  const ids = text.input('input_ids', 'int64', ['batch', 'sequence']);
  const table = text.initializer(
    'embeddings',
    'float32',
    [embeddings.length / 4, 4],
    float32Bytes(embeddings),
  );
  text.output(reduceSum(gather(table, ids), [1]), 'text_embeds');
  await writeModel(text, folder, { fileName: 'text_model.onnx' });

  await writeFile(join(folder, 'tokenizer.json'), JSON.stringify(tinyTokenizerJson(vocab)));
  await writeFile(
    join(folder, 'tokenizer_config.json'),
    JSON.stringify({
      bos_token: '<|startoftext|>',
      eos_token: '<|endoftext|>',
      pad_token: '<|endoftext|>',
      unk_token: '<unk>',
      model_max_length: 77,
    }),
  );
  return folder;
}
