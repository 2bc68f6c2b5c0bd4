/**
 * CLIP's tokenizer in the one-file form training reads (`tokenizer.json`, as
 * openai/clip-vit-large-patch14 has it: NFC + whitespace + lowercase, CLIP's split regex,
 * byte-level BPE with `</w>` word ends, RobertaProcessing with BOS/EOS), built from a vocabulary
 * and merges: the tiny demo tokenizer's, or the `vocab.json` + `merges.txt` of the slow form that
 * ComfyUI ships (`comfy/sd1_tokenizer`) and older downloads hold.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { MAX_TOKENIZER_BYTES } from '@lora/dataset';
import { ModelError } from '../model-error.ts';

const BOS = '<|startoftext|>';
const EOS = '<|endoftext|>';

/** CLIP's `tokenizer_config.json` essentials: SD 1.x pads with the end-of-text token. */
export const CLIP_TOKENIZER_CONFIG = {
  bos_token: BOS,
  eos_token: EOS,
  pad_token: EOS,
  unk_token: EOS,
  model_max_length: 77,
} as const;

/** `tokenizer.json` for a vocabulary (token → id, BOS and EOS included) and merges (`"a b"`, by rank). */
export function clipTokenizerFromVocab(
  vocab: Readonly<Record<string, number>>,
  merges: readonly string[],
): object {
  const special = (content: string) => {
    const id = vocab[content];
    if (id === undefined) throw new ModelError('E_MODEL_FILES', `the CLIP vocabulary has no ${content}`);
    return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true };
  };
  const [bos, eos] = [special(BOS), special(EOS)];
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [bos, eos],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'NFC' },
        { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' },
        { type: 'Lowercase' },
      ],
    },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        {
          type: 'Split',
          pattern: {
            Regex:
              "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+",
          },
          behavior: 'Removed',
          invert: true,
        },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'RobertaProcessing',
      sep: [EOS, eos.id],
      cls: [BOS, bos.id],
      trim_offsets: false,
      add_prefix_space: false,
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: EOS,
      continuing_subword_prefix: '',
      end_of_word_suffix: '</w>',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}

/**
 * The slow form's `vocab.json` and `merges.txt` in `folder` as `tokenizer.json` (the merges after
 * the `#version` line, as transformers' CLIPTokenizer reads them).
 */
export async function readSlowClipTokenizer(folder: string): Promise<object> {
  const vocabPath = join(folder, 'vocab.json');
  const mergesPath = join(folder, 'merges.txt');
  let vocab: Record<string, number>;
  let lines: string[];
  try {
    for (const path of [vocabPath, mergesPath]) {
      const { size } = await stat(path);
      if (size > MAX_TOKENIZER_BYTES) throw new Error(`${path} is ${size} bytes, over MAX_TOKENIZER_BYTES`);
    }
    vocab = JSON.parse(await readFile(vocabPath, 'utf8')) as Record<string, number>;
    lines = (await readFile(mergesPath, 'utf8')).split(/\r?\n/);
  } catch (error) {
    throw new ModelError(
      'E_MODEL_FILES',
      `${folder}: CLIP's vocab.json and merges.txt cannot be read (${(error as Error).message}); put both there, or tokenizer.json`,
    );
  }
  const merges = lines.filter((line, i) => line !== '' && !(i === 0 && line.startsWith('#version')));
  return clipTokenizerFromVocab(vocab, merges);
}
