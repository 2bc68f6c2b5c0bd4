/**
 * Lets a worker process run this package from its TypeScript sources (tests, tools): Node 20 has
 * no type stripping, so `.ts` modules are transpiled one by one with the TypeScript compiler, and
 * the output is cached by content so later workers skip loading the compiler. The built package
 * never loads this file.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { register } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread } from 'node:worker_threads';

if (isMainThread) register(import.meta.url);

/** Bump when the compiler options below change, so stale output is not reused. */
const CACHE_VERSION = 1;
const CACHE = join(tmpdir(), 'lora-trainer-ort-ts-cache');

let compiler;

export async function load(url, context, nextLoad) {
  if (!url.startsWith('file:') || !url.endsWith('.ts')) return nextLoad(url, context);
  const source = await readFile(new URL(url), 'utf8');
  const key = createHash('sha256').update(`${CACHE_VERSION}\0${url}\0${source}`).digest('hex');
  const cached = join(CACHE, `${key}.js`);
  const hit = await readFile(cached, 'utf8').catch(() => undefined);
  if (hit !== undefined) return { format: 'module', source: hit, shortCircuit: true };

  compiler ??= (await import('typescript')).default;
  const { outputText } = compiler.transpileModule(source, {
    fileName: new URL(url).pathname,
    compilerOptions: {
      module: compiler.ModuleKind.ESNext,
      target: compiler.ScriptTarget.ES2023,
      verbatimModuleSyntax: true,
    },
  });
  // Written under a unique name and renamed: concurrent workers never read half a file. A cache
  // that cannot be written (another user's, a read-only tmpdir) only costs speed.
  const partial = `${cached}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  await mkdir(CACHE, { recursive: true })
    .then(() => writeFile(partial, outputText))
    .then(() => rename(partial, cached))
    .catch(() => {});
  return { format: 'module', source: outputText, shortCircuit: true };
}
