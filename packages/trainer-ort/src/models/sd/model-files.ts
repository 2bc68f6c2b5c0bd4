/**
 * What a Stable Diffusion base model needs besides its weights: the model sizes and the CLIP
 * tokenizer. A diffusers folder holds both (a `config.json` per model, `tokenizer/`). A single-file LDM
 * checkpoint holds neither, so they are looked up beside it, in the diffusers folder layout:
 * `unet/config.json`, `text_encoder/config.json`, `vae/config.json` (all three, or none for the
 * SD 1.5 sizes) and `tokenizer/tokenizer.json` (or CLIP's tokenizer where the user already has it,
 * see find-tokenizer.ts). Nothing is downloaded.
 */
import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createRng, MAX_TOKENIZER_BYTES, processCaption, TextTokenizer } from '@lora/dataset';
import { openWeightsFile } from '../../weights.ts';
import { ModelError } from '../model-error.ts';
import { CLIP_TOKENIZER_CONFIG, readSlowClipTokenizer } from './clip-tokenizer-json.ts';
import {
  parseClipTextConfig,
  parseUnetConfig,
  parseVaeConfig,
  type SdFamily,
  type SdModelConfig,
} from './config.ts';
import { TOKENIZER_KEY, type TokenizerPlace, tokenizerPlaces } from './find-tokenizer.ts';
import { sdFamilyOfKeys } from './single-file-config.ts';

const isFile = (path: string) =>
  stat(path).then(
    (s) => s.isFile(),
    () => false,
  );

async function readJson(path: string, limit = MAX_TOKENIZER_BYTES): Promise<unknown> {
  const { size } = await stat(path);
  if (size > limit) {
    throw new ModelError('E_MODEL_FILES', `${path} is ${size} bytes, above the ${limit}-byte limit`);
  }
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new ModelError('E_MODEL_CONFIG', `${path} is not valid JSON: ${(error as Error).message}`);
  }
}

async function firstWith(
  places: readonly TokenizerPlace[],
  name: string,
): Promise<TokenizerPlace | undefined> {
  for (const place of places) if (await isFile(join(place.folder, name))) return place;
  return undefined;
}

async function isDirectory(basePath: string): Promise<boolean> {
  try {
    return (await stat(basePath)).isDirectory();
  } catch (error) {
    throw new ModelError(
      'E_MODEL_FILES',
      `base_model ${basePath} cannot be read (${(error as Error).message}); point it at an SD 1.x .safetensors checkpoint or a diffusers folder`,
    );
  }
}

/** The folder the side files of `basePath` live in: the folder itself, or a single file's folder. */
export async function modelFolder(basePath: string): Promise<string> {
  return (await isDirectory(basePath)) ? basePath : dirname(basePath);
}

const CONFIG_FILES = ['unet', 'text_encoder', 'vae'] as const;

/** The family of the model at `basePath`: a single file's text-encoder keys, a diffusers folder's text_encoder/config.json. */
export async function sdModelFamily(basePath: string): Promise<SdFamily> {
  if (await isDirectory(basePath)) {
    if (await isFile(join(basePath, 'text_encoder_2', 'config.json'))) return 'sdxl';
    const path = join(basePath, 'text_encoder', 'config.json');
    return (await isFile(path)) && parseClipTextConfig(await readJson(path), path).hiddenAct === 'gelu'
      ? 'sd2'
      : 'sd1';
  }
  const file = await openWeightsFile(basePath);
  try {
    return sdFamilyOfKeys(file.tensors.keys()) ?? 'sd1';
  } finally {
    await file.close();
  }
}

export interface LongCaptions {
  /** Tokens the text encoder reads of a caption. */
  window: number;
  /** Captions longer than that. */
  count: number;
  longest?: { path: string; tokens: number };
}

/**
 * Sizes for a single-file checkpoint from the `config.json` files beside it; `undefined` (SD 1.5
 * sizes) when there are none, and for a diffusers folder, which `openSdCheckpoint` reads itself.
 */
export async function singleFileConfig(checkpoint: string): Promise<SdModelConfig | undefined> {
  if (await isDirectory(checkpoint)) return undefined;
  const folder = dirname(checkpoint);
  const paths = CONFIG_FILES.map((c) => join(folder, c, 'config.json'));
  const present = await Promise.all(paths.map(isFile));
  if (!present.some(Boolean)) return undefined;
  const missing = paths.filter((_, i) => !present[i]);
  if (missing.length > 0) {
    throw new ModelError(
      'E_MODEL_FILES',
      `${checkpoint}: the model sizes beside it are incomplete, ${missing.join(' and ')} missing; ` +
        'give all three of unet/, text_encoder/ and vae/config.json, or none for SD 1.5 sizes',
    );
  }
  const [unet, textEncoder, vae] = await Promise.all(paths.map((p) => readJson(p)));
  // SDXL's second text encoder, when there is one.
  const second = join(folder, 'text_encoder_2', 'config.json');
  return {
    unet: parseUnetConfig(unet, paths[0]),
    textEncoder: parseClipTextConfig(textEncoder, paths[1]),
    ...((await isFile(second)) ? { textEncoder2: parseClipTextConfig(await readJson(second), second) } : {}),
    vae: parseVaeConfig(vae, paths[2]),
  };
}

/** OpenCLIP's pad token (id 0): SD 2.x's, and SDXL's second text encoder's. */
export const OPENCLIP_PAD = '!';
const SD2_PAD = OPENCLIP_PAD;

/**
 * The CLIP tokenizer as SD training uses it: `<BOS> tokens… <EOS>` truncated to the text
 * encoder's positions (75 caption tokens for 77) and padded with the pad token.
 */
export class ClipTokenizer {
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly openClipPadId: number | undefined;

  private constructor(
    private readonly tokenizer: TextTokenizer,
    /** Token positions per caption (77 for SD). */
    readonly length: number,
    /** Where it was read from, for messages. */
    readonly source: string,
    /** Which place that is (`beside the model`, `Hugging Face cache, <repo>`, `ComfyUI`). */
    readonly foundIn: string,
  ) {
    if (tokenizer.bosId === undefined) {
      throw new ModelError(
        'E_MODEL_FILES',
        `${source}: the tokenizer has no bos_token in its vocabulary; CLIP's is <|startoftext|>`,
      );
    }
    this.bosId = tokenizer.bosId;
    this.eosId = tokenizer.eosId;
    this.padId = tokenizer.padId;
    this.openClipPadId = tokenizer.tokenId(OPENCLIP_PAD);
  }

  /** Changes whenever the tokenizer files change. */
  get fingerprint(): string {
    return this.tokenizer.fingerprint;
  }

  /**
   * Reads CLIP's `tokenizer.json` (and `tokenizer_config.json` when present) from `folder` (the
   * config's `tokenizer`) or else the first place that has it (`tokenizerPlaces`: beside the
   * model, ComfyUI, the Hugging Face cache); the error,
   * when none has, lists where it looked and where to put CLIP's. SD 2.x uses the same vocabulary
   * and pads with "!" whatever the files found say (`sdModelFamily` tells the family).
   */
  static async forModel(
    basePath: string,
    length: number,
    folder?: string,
    family: SdFamily = 'sd1',
    /** The pad token whatever the files say: SDXL's second encoder pads with "!" as open_clip and kohya do. */
    pad?: string,
  ): Promise<ClipTokenizer> {
    // The config's `tokenizer` folder is the only place looked at when it is set.
    const places =
      folder === undefined
        ? await tokenizerPlaces(await modelFolder(basePath))
        : [{ folder, what: TOKENIZER_KEY }];
    // The one-file form, else the slow form (vocab.json + merges.txt: ComfyUI's sd1_tokenizer).
    const place = (await firstWith(places, 'tokenizer.json')) ?? (await firstWith(places, 'vocab.json'));
    if (place === undefined) {
      const dir = places[0]!.folder;
      throw new ModelError(
        'E_MODEL_FILES',
        `${basePath}: no CLIP tokenizer (tokenizer.json, or vocab.json and merges.txt) found; looked ${places.map(({ folder, what }) => `in ${folder} (${what})`).join(', ')}. ` +
          'A single-file checkpoint carries no tokenizer: ' +
          `put tokenizer.json and tokenizer_config.json of openai/clip-vit-large-patch14 (also in the tokenizer/ folder of stable-diffusion-v1-5) into ${dir}/`,
      );
    }
    const dir = place.folder;
    const oneFile = await isFile(join(dir, 'tokenizer.json'));
    const file = join(dir, oneFile ? 'tokenizer.json' : 'vocab.json');
    const json = oneFile ? await readJson(file) : await readSlowClipTokenizer(dir);
    const configPath = join(dir, 'tokenizer_config.json');
    const config = (await isFile(configPath)) ? await readJson(configPath) : {};
    const tokenizer = TextTokenizer.fromJson(json as object, {
      ...CLIP_TOKENIZER_CONFIG,
      ...(config as object),
      // SD 2.x pads with "!" (id 0) wherever its text encoder runs: open_clip.tokenize, A1111's
      // id_pad, ComfyUI's SD2Tokenizer, its diffusers tokenizer_config.json; CLIP's files say EOS.
      ...(family === 'sd2' ? { pad_token: SD2_PAD } : {}),
      ...(pad === undefined ? {} : { pad_token: pad }),
    });
    return new ClipTokenizer(tokenizer, length, file, place.what);
  }

  /**
   * The captions longer than `window` (markup stripped, as training reads them): how many, and
   * the longest with its token count. Training cuts them there, as kohya does.
   */
  longCaptions(images: readonly { path: string; caption: string | null }[]): LongCaptions {
    let count = 0;
    let longest: LongCaptions['longest'];
    const rng = createRng(0);
    for (const { path, caption } of images) {
      if (!caption) continue;
      const tokens = this.tokenCount(processCaption(caption, undefined, rng));
      if (tokens <= this.window) continue;
      count++;
      if (longest === undefined || tokens > longest.tokens) longest = { path, tokens };
    }
    return { window: this.window, count, ...(longest === undefined ? {} : { longest }) };
  }

  /** Tokens a caption may have: the positions less BOS and EOS (75 for SD); `encode` drops the rest. */
  get window(): number {
    return this.length - 2;
  }

  /** Token ids of `text` without BOS and EOS (prompt conditioning lays them into chunks). */
  tokenIds(text: string): number[] {
    return this.tokenizer.encode(text, false);
  }

  /** How many tokens `caption` has, before `encode` cuts it to `window`. */
  tokenCount(caption: string): number {
    return this.tokenizer.encode(caption, false).length;
  }

  /** Token ids `[captions.length, length]`, row-major, as the text encoder's int64 input. */
  encode(captions: readonly string[]): BigInt64Array {
    const out = new BigInt64Array(captions.length * this.length).fill(BigInt(this.padId));
    captions.forEach((caption, row) => {
      const ids = this.tokenizer.encode(caption, false).slice(0, this.length - 2);
      const at = row * this.length;
      out[at] = BigInt(this.bosId);
      ids.forEach((id, i) => {
        out[at + 1 + i] = BigInt(id);
      });
      out[at + 1 + ids.length] = BigInt(this.eosId);
    });
    return out;
  }
}
