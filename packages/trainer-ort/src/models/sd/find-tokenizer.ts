/**
 * Where a single-file SD 1.x checkpoint's CLIP tokenizer is found on a user's disk: beside the
 * model (`tokenizer/`, the diffusers layout), in the Hugging Face cache (where A1111, diffusers
 * and transformers downloaded `openai/clip-vit-large-patch14` or an SD 1.5 repository), or in the
 * ComfyUI install the checkpoint sits in (`comfy/sd1_tokenizer`). Nothing is downloaded.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

/** A folder that may hold `tokenizer.json`, and what it is, for the message that lists them. */
export interface TokenizerPlace {
  readonly folder: string;
  readonly what: string;
}

export const BESIDE_THE_MODEL = 'beside the model';
/** The place the config's `tokenizer` key names. */
export const TOKENIZER_KEY = "the config's tokenizer";

/**
 * Hugging Face repositories with CLIP's tokenizer, and the folder of it in their snapshot. SD 2.x's
 * OpenCLIP tokenizer has the same vocabulary and merges (only its padding differs, which
 * ClipTokenizer sets by family).
 */
const HF_REPOSITORIES: readonly (readonly [repo: string, folder: string])[] = [
  ['openai/clip-vit-large-patch14', ''],
  ['stable-diffusion-v1-5/stable-diffusion-v1-5', 'tokenizer'],
  ['runwayml/stable-diffusion-v1-5', 'tokenizer'],
  ['CompVis/stable-diffusion-v1-4', 'tokenizer'],
  ['stabilityai/stable-diffusion-2-1', 'tokenizer'],
  ['stabilityai/stable-diffusion-2-1-base', 'tokenizer'],
];

/** How far above the checkpoint a ComfyUI root can be (`ComfyUI/models/checkpoints/x.safetensors`). */
const COMFY_LEVELS = 3;

/** The Hugging Face hub cache folders, as huggingface_hub resolves them (first the explicit ones). */
export function hfHubCaches(env: NodeJS.ProcessEnv = process.env, home = homedir()): string[] {
  const cacheHome = env.XDG_CACHE_HOME || join(home, '.cache');
  const folders = [
    env.HF_HUB_CACHE,
    env.HUGGINGFACE_HUB_CACHE,
    env.HF_HOME && join(env.HF_HOME, 'hub'),
    join(cacheHome, 'huggingface', 'hub'),
  ].filter((folder): folder is string => Boolean(folder));
  return [...new Set(folders)];
}

/** The snapshots of one cached repository, the one `refs/main` names first. */
async function snapshots(cache: string, repo: string): Promise<string[]> {
  const root = join(cache, `models--${repo.replace('/', '--')}`);
  const revisions = await readdir(join(root, 'snapshots')).catch(() => [] as string[]);
  const main = (await readFile(join(root, 'refs', 'main'), 'utf8').catch(() => '')).trim();
  revisions.sort((a, b) => Number(b === main) - Number(a === main) || a.localeCompare(b));
  return revisions.map((revision) => join(root, 'snapshots', revision));
}

/** Every place looked at, in order, for the tokenizer of the model at `modelFolder`. */
export async function tokenizerPlaces(
  modelFolder: string,
  env: NodeJS.ProcessEnv = process.env,
  home = homedir(),
): Promise<TokenizerPlace[]> {
  const places: TokenizerPlace[] = [{ folder: join(modelFolder, 'tokenizer'), what: BESIDE_THE_MODEL }];
  let folder = modelFolder;
  for (let level = 0; level < COMFY_LEVELS; level++) {
    folder = dirname(folder);
    const comfy = join(folder, 'comfy', 'sd1_tokenizer');
    if (await isDirectory(comfy)) places.push({ folder: comfy, what: 'ComfyUI' });
  }
  for (const cache of hfHubCaches(env, home)) {
    let found = false;
    for (const [repo, sub] of HF_REPOSITORIES) {
      for (const snapshot of await snapshots(cache, repo)) {
        places.push({ folder: join(snapshot, sub), what: `Hugging Face cache, ${repo}` });
        found = true;
      }
    }
    if (!found)
      places.push({ folder: cache, what: 'Hugging Face cache (no CLIP or SD 1.x repository in it)' });
  }
  return places;
}

const isDirectory = (path: string) =>
  stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
