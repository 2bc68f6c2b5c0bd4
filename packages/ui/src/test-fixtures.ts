import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import sharp from 'sharp';
import { startUi, type UiServer } from './server/start.ts';

// Helpers for tests only (not exported from the package): every fixture is generated.

/** The built page; the tests run after `build` (turbo's test task depends on it). */
export const ASSETS_DIR = fileURLToPath(new URL('../dist/client/', import.meta.url));

export async function writeFileIn(path: string, content: string | Uint8Array): Promise<string> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, content);
  return path;
}

/** A small PNG of one colour, distinct per `seed`. */
export const pngBytes = (seed: number, width = 96, height = 64): Promise<Buffer> =>
  sharp({
    create: {
      width,
      height,
      channels: 3,
      background: { r: (seed * 67) % 256, g: (seed * 131) % 256, b: (seed * 29 + 90) % 256 },
    },
  })
    .png()
    .toBuffer();

/**
 * A project as `lora init` lays it out: `data/style_train/10_neon/` with a metadata.csv for
 * three images, one image captioned by a sidecar, one without a caption and one corrupt file.
 */
export async function makeProject(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'lora-ui-'));
  const data = join(root, 'data', 'style_train', '10_neon');
  for (const [index, name] of ['a.png', 'b.png', 'c.png', 'd.png', 'e.png'].entries()) {
    await writeFileIn(join(data, name), await pngBytes(index));
  }
  await writeFileIn(join(data, 'broken.png'), 'not an image');
  await writeFileIn(
    join(data, 'metadata.csv'),
    'file_name,text,score\na.png,"**neon city**, rain, *moody*",5\nb.png,"**neon city**, (night:1.2)",4\nc.png,"street, neon city, street",3\n',
  );
  await writeFileIn(join(data, 'd.txt'), 'rain, <lora:film:0.6>\n');
  await writeFileIn(join(root, 'configs', 'style_v1.yaml'), 'task: sd\n');
  return root;
}

export async function serve(root: string): Promise<UiServer> {
  return startUi({ folder: root, assetsDir: ASSETS_DIR, cli: CLI_BIN });
}

/** The lora CLI, built (the run tests spawn it as `lora ui` does). */
export const CLI_BIN = fileURLToPath(new URL('../../cli/bin.js', import.meta.url));

/**
 * `lora init --demo`'s project (a tiny random LLaMA and toy data) with its config's steps and
 * extras set by `edit`: a run of it takes seconds.
 */
export async function makeDemoProject(edit: (config: string) => string = (c) => c): Promise<string> {
  if (!existsSync(fileURLToPath(new URL('../../cli/dist/index.js', import.meta.url)))) {
    throw new Error('the run tests spawn the lora CLI: build it first (npx -y pnpm@10.34.9 run build)');
  }
  const root = join(await mkdtemp(join(tmpdir(), 'lora-ui-run-')), 'demo');
  const init = spawnSync(process.execPath, [CLI_BIN, 'init', root, '--demo'], { encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`lora init --demo failed: ${init.stderr}`);
  const config = join(root, DEMO_CONFIG);
  await writeFile(config, edit(await readFile(config, 'utf8')));
  return root;
}

/** The config `lora init --demo` writes into a folder named demo. */
export const DEMO_CONFIG = 'configs/demo_demo_v1.yaml';

/**
 * `lora train` of the demo project's config as a terminal starts it (the built CLI, not through
 * the page or the Runs class), into `<root>/<run>` with `max_steps`.
 */
export function trainInTerminal(
  root: string,
  run: string,
  maxSteps: number,
  stdio: 'ignore' | 'pipe' = 'ignore',
): ChildProcess {
  return spawn(
    process.execPath,
    [
      CLI_BIN,
      'train',
      '--config',
      DEMO_CONFIG,
      '--set',
      `output_dir=${JSON.stringify(join(root, run))}`,
      '--set',
      `max_steps=${maxSteps}`,
    ],
    { cwd: root, stdio: ['ignore', stdio, stdio] },
  );
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A raw request, so the Host, Origin and path are exactly what a hostile page could send. */
export function send(
  server: UiServer,
  path: string,
  {
    method = 'GET',
    headers = {},
    body,
  }: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: server.port,
        path,
        method,
        headers: { host: `127.0.0.1:${server.port}`, ...headers },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** A POST as the page sends it: JSON, with the page's Origin. */
export const post = (server: UiServer, route: string, body: unknown): Promise<Answer> =>
  send(server, `${new URL(server.url).pathname}${route}`, {
    method: 'POST',
    headers: { origin: `http://127.0.0.1:${server.port}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

/** Debian's Chromium (`.ci/run` installs it), driven by playwright-core, which downloads no browser. */
export const CHROMIUM = '/usr/bin/chromium';
export const HAS_CHROMIUM = existsSync(CHROMIUM);
if (!HAS_CHROMIUM && process.env['LORA_REQUIRE_CHROMIUM']) {
  throw new Error(`${CHROMIUM} is missing; install it with: apt-get install -y chromium`);
}
/** Where screenshots go when set (for looking at the page); none are taken otherwise. */
export const SHOTS = process.env['LORA_UI_SCREENSHOTS'];

export const launchChromium = (): Promise<Browser> =>
  chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });

/** The page of `lora ui` on `root` in Chromium, at `hash`, once `ready` shows; `close` ends both. */
export async function openUi(
  root: string,
  { hash = '', ready = '.card' }: { hash?: string; ready?: string } = {},
): Promise<{ browser: Browser; server: UiServer; page: Page; close: () => Promise<void> }> {
  const browser = await launchChromium();
  let server: UiServer | undefined;
  const close = async () => {
    await browser.close();
    await server?.close();
  };
  try {
    server = await serve(root);
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(`${server.url}${hash}`);
    await page.waitForSelector(ready);
    return { browser, server, page, close };
  } catch (error) {
    await close();
    throw error;
  }
}
