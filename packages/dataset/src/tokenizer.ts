import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { DatasetError } from './errors.ts';

/** Largest tokenizer file read: real ones are 2–35 MB; anything far bigger is not a tokenizer. */
export const MAX_TOKENIZER_BYTES = 256 * 1024 * 1024;

type TokenizerConfig = Record<string, unknown>;

/** `eos_token` is a string, or (older transformers) an AddedToken dict with `content`. */
function tokenText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { content?: unknown }).content === 'string'
  ) {
    return (value as { content: string }).content;
  }
  return undefined;
}

/** `chat_template` is a string or (multi-template models) a list of {name, template}. */
function defaultTemplate(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const named = value as { name?: unknown; template?: unknown }[];
    const chosen = named.find((entry) => entry.name === 'default') ?? named[0];
    return typeof chosen?.template === 'string' ? chosen.template : undefined;
  }
  return undefined;
}

async function readJson(path: string, what: string, optional: true): Promise<TokenizerConfig | undefined>;
async function readJson(path: string, what: string, optional?: false): Promise<TokenizerConfig>;
async function readJson(path: string, what: string, optional = false): Promise<TokenizerConfig | undefined> {
  let text: string;
  try {
    const { size } = await stat(path);
    if (size > MAX_TOKENIZER_BYTES) {
      throw new DatasetError('E_LIMIT_EXCEEDED', `${path} is ${size} bytes, above MAX_TOKENIZER_BYTES.`, {
        path,
      });
    }
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (DatasetError.isInstance(error)) throw error;
    if (optional && (error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new DatasetError('E_NOT_FOUND', `Cannot read ${what} at ${path}; point to the model folder.`, {
      path,
      cause: error,
    });
  }
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
    return value as TokenizerConfig;
  } catch (error) {
    throw new DatasetError('E_TOKENIZER', `${path} is not a valid ${what} (${(error as Error).message}).`, {
      path,
      cause: error,
    });
  }
}

/**
 * A Hugging Face tokenizer (`tokenizer.json` + `tokenizer_config.json`) with what training needs
 * resolved once: special token ids, the pad id (falls back to EOS, as most LLaMA-family training
 * does) and the model's chat template.
 */
export class TextTokenizer {
  readonly eosToken: string;
  readonly eosId: number;
  readonly bosToken: string | undefined;
  readonly bosId: number | undefined;
  readonly padId: number;
  readonly unkId: number | undefined;
  /** The model's own chat template, if it has one. */
  readonly chatTemplate: string | undefined;
  /** sha256 of the tokenizer files: part of every token cache key. */
  readonly fingerprint: string;
  private readonly tokenizer: Tokenizer;

  private constructor(
    tokenizerJson: TokenizerConfig,
    config: TokenizerConfig,
    chatTemplate: string | undefined,
  ) {
    try {
      this.tokenizer = new Tokenizer(tokenizerJson, config);
    } catch (error) {
      throw new DatasetError(
        'E_TOKENIZER',
        `tokenizer.json could not be loaded: ${(error as Error).message}.`,
        {
          cause: error,
        },
      );
    }
    const idOf = (token: string | undefined) =>
      token === undefined ? undefined : this.tokenizer.token_to_id(token);
    const eos = tokenText(config['eos_token']);
    const eosId = idOf(eos);
    if (eos === undefined || eosId === undefined) {
      throw new DatasetError(
        'E_TOKENIZER',
        `tokenizer_config.json must name an eos_token that is in the vocabulary (got ${JSON.stringify(eos ?? null)}); responses end with it.`,
      );
    }
    this.eosToken = eos;
    this.eosId = eosId;
    this.bosToken = tokenText(config['bos_token']);
    this.bosId = idOf(this.bosToken);
    this.padId = idOf(tokenText(config['pad_token'])) ?? eosId;
    this.unkId = idOf(tokenText(config['unk_token']));
    this.chatTemplate = chatTemplate ?? defaultTemplate(config['chat_template']);
    this.fingerprint = createHash('sha256')
      .update(JSON.stringify([tokenizerJson, config, this.chatTemplate ?? null]))
      .digest('hex');
  }

  /** From parsed JSON (the files' contents). */
  static fromJson(tokenizerJson: object, tokenizerConfig: object = {}, chatTemplate?: string): TextTokenizer {
    return new TextTokenizer(
      tokenizerJson as TokenizerConfig,
      tokenizerConfig as TokenizerConfig,
      chatTemplate,
    );
  }

  /**
   * From a model folder: `tokenizer.json`, optional `tokenizer_config.json`, and the chat
   * template from `chat_template.jinja` (newer transformers) when present.
   */
  static async fromDir(dir: string): Promise<TextTokenizer> {
    const tokenizerJson = await readJson(join(dir, 'tokenizer.json'), 'tokenizer.json');
    const config = (await readJson(join(dir, 'tokenizer_config.json'), 'tokenizer_config.json', true)) ?? {};
    let template: string | undefined;
    try {
      template = await readFile(join(dir, 'chat_template.jinja'), 'utf8');
    } catch {
      template = undefined;
    }
    return new TextTokenizer(tokenizerJson, config, template);
  }

  /**
   * Token ids of `text`. tokenizers.js maps a word missing from a WordLevel vocabulary to
   * `undefined`; those become the unk id here, or an error when the tokenizer has no unk token.
   */
  encode(text: string, addSpecialTokens: boolean): number[] {
    const { ids, tokens } = this.tokenizer.encode(text, { add_special_tokens: addSpecialTokens });
    return (ids as (number | undefined)[]).map((id, index) => {
      if (id !== undefined) return id;
      if (this.unkId !== undefined) return this.unkId;
      throw new DatasetError(
        'E_TOKENIZER',
        `The token ${JSON.stringify(tokens[index])} is not in the vocabulary and the tokenizer has no unk_token.`,
      );
    });
  }

  /** The id of the token spelled `token` (a special token such as `<|eot_id|>`), if the vocabulary has one. */
  tokenId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token) ?? undefined;
  }

  decode(ids: readonly number[], skipSpecialTokens = false): string {
    return this.tokenizer.decode([...ids], { skip_special_tokens: skipSpecialTokens });
  }
}
