// Packaging test: pack every package the way `pnpm publish` would, install the CLI's tarball with
// the others into an empty folder, and run `lora --version` and `lora --help` from there. It fails
// when a published file is missing (dist/ left out of `files`, an import of an unpacked file) or a
// `workspace:` range leaks into a published manifest.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const pnpm = process.env.npm_execpath?.includes('pnpm')
  ? [process.execPath, process.env.npm_execpath]
  : ['npx', '-y', 'pnpm@10.34.9'];
const run = (cmd, args, cwd) =>
  execFileSync(cmd[0], [...cmd.slice(1), ...args], {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });

const work = mkdtempSync(join(tmpdir(), 'lora-pack-'));
try {
  const tarballs = {};
  for (const dir of readdirSync(join(root, 'packages'))) {
    const packageDir = join(root, 'packages', dir);
    const { name } = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8'));
    const out = run(pnpm, ['pack', '--json', '--pack-destination', work], packageDir);
    const filename = JSON.parse(out).filename;
    const manifest = execFileSync('tar', ['-xOzf', filename, 'package/package.json'], { encoding: 'utf8' });
    if (manifest.includes('workspace:'))
      throw new Error(`${name}: a workspace: range leaked into the packed package.json`);
    tarballs[name] = `file:${filename}`;
  }
  const app = join(work, 'app');
  execFileSync('mkdir', [app]);
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({
      name: 'pack-test',
      private: true,
      dependencies: { '@lora/cli': tarballs['@lora/cli'] },
      pnpm: { overrides: tarballs },
    }),
  );
  run(pnpm, ['install', '--prefer-offline', '--ignore-workspace', '--config.confirmModulesPurge=false'], app);
  const lora = join(app, 'node_modules', '.bin', 'lora');
  const version = run([lora], ['--version'], app);
  const help = run([lora], ['--help'], app);
  const expected = JSON.parse(readFileSync(join(root, 'packages/cli/package.json'), 'utf8')).version;
  if (!version.startsWith(`lora/${expected}`)) throw new Error(`lora --version printed "${version.trim()}"`);
  if (!help.includes('Usage:')) throw new Error(`lora --help printed no usage:\n${help}`);
  console.log(`pack-test: ${Object.keys(tarballs).length} packages packed, installed, lora ${expected} runs`);
} catch (error) {
  console.error(`pack-test failed: ${error.message}${error.stderr ? `\n${error.stderr}` : ''}`);
  process.exitCode = 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}
