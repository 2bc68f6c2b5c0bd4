// Publish test: version the packages with changesets and publish every one to a real npm registry
// (Verdaccio, on localhost, third-party packages proxied from the public registry) the way a
// release does, then use the CLI the ways the README tells users to: `pnpm dlx @lora/cli` and
// `npx` with npm (onnxruntime-node's install script told to skip its CUDA download) each init a
// demo project and train it. It fails when a published
// file is missing, a `workspace:` range leaks into a published manifest, or a command fails.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const pnpm = ['npx', '-y', 'pnpm@10.34.9'];
/** A registry start, a publish or an install that takes longer than this is stuck. */
const STEP_TIMEOUT_MS = 10 * 60_000;

const work = mkdtempSync(join(tmpdir(), 'lora-publish-'));
const port = await freePort();
const registry = `http://127.0.0.1:${port}/`;
const upstream = execFileSync('npm', ['config', 'get', 'registry'], { encoding: 'utf8' }).trim();
const npmrc = join(work, 'npmrc');
const env = {
  ...process.env,
  NPM_CONFIG_USERCONFIG: npmrc,
  npm_config_registry: registry,
  npm_config_cache: join(work, 'npm-cache'),
  // Each run publishes 0.0.0 afresh: never reuse a package pnpm dlx cached from an earlier run.
  npm_config_dlx_cache_max_age: '0',
};

const run = (cmd, args, cwd, extraEnv = {}) =>
  execFileSync(cmd[0], [...cmd.slice(1), ...args], {
    cwd,
    env: { ...env, ...extraEnv },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: STEP_TIMEOUT_MS,
  });

let server;
try {
  writeFileSync(
    join(work, 'config.yaml'),
    [
      `storage: ${join(work, 'storage')}`,
      'auth:',
      '  htpasswd:',
      `    file: ${join(work, 'htpasswd')}`,
      'uplinks:',
      '  upstream:',
      `    url: ${upstream}`,
      '    timeout: 120s',
      'packages:',
      "  '@lora/*':",
      '    access: $all',
      '    publish: $authenticated',
      "  '**':",
      '    access: $all',
      '    proxy: upstream',
      'log: { type: stdout, format: pretty, level: error }',
      '',
    ].join('\n'),
  );
  server = spawn(
    process.execPath,
    [
      join(root, 'node_modules/verdaccio/bin/verdaccio'),
      '--config',
      join(work, 'config.yaml'),
      '--listen',
      `127.0.0.1:${port}`,
    ],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  await waitFor(`${registry}-/ping`);

  // A user for publishing (Verdaccio's htpasswd sign-up, as `npm adduser` does it).
  const response = await fetch(`${registry}-/user/org.couchdb.user:ci`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'ci', password: 'ci-password' }),
  });
  const { token } = await response.json();
  if (!token) throw new Error(`the registry gave no token (HTTP ${response.status})`);
  writeFileSync(npmrc, `registry=${registry}\n//127.0.0.1:${port}/:_authToken=${token}\n`);

  // The release as `ci:release` makes it: a copy of the repository (tracked files and the built
  // dist/ folders) where `changeset version` bumps the versions and writes the changelogs.
  const release = join(work, 'release');
  execFileSync('mkdir', [release]);
  execFileSync('sh', ['-c', `git ls-files -z | xargs -0 cp --parents -t '${release}'`], { cwd: root });
  // The installed dependencies come along as the links pnpm made (a publish resolves `workspace:`
  // ranges through them).
  execFileSync('ln', ['-s', join(root, 'node_modules'), join(release, 'node_modules')]);
  for (const dir of readdirSync(join(root, 'packages'))) {
    for (const folder of ['dist', 'node_modules']) {
      execFileSync('cp', ['-a', join(root, 'packages', dir, folder), join(release, 'packages', dir, folder)]);
    }
  }
  run([process.execPath, join(root, 'node_modules/@changesets/cli/bin.js')], ['version'], release);

  const names = [];
  for (const dir of readdirSync(join(release, 'packages'))) {
    const packageDir = join(release, 'packages', dir);
    const { name, version } = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8'));
    run(pnpm, ['publish', '--registry', registry, '--no-git-checks', '--access', 'public'], packageDir);
    const published = await (await fetchAgain(`${registry}${name.replace('/', '%2f')}`)).json();
    const manifest = published.versions?.[version];
    if (!manifest) throw new Error(`${name}@${version} is not in the registry after publishing`);
    if (JSON.stringify(manifest).includes('workspace:')) {
      throw new Error(`${name}: a workspace: range leaked into the published package.json`);
    }
    names.push(name);
  }
  const { version } = JSON.parse(readFileSync(join(release, 'packages/cli/package.json'), 'utf8'));
  if (version === '0.0.0') throw new Error('changeset version left @lora/cli at 0.0.0');

  // pnpm dlx, as the README's quick start runs it: a demo project, trained.
  const project = join(work, 'project');
  execFileSync('mkdir', [project]);
  const dlx = (...args) => run(pnpm, ['dlx', `@lora/cli@${version}`, ...args], project);
  const printed = dlx('--version');
  if (!printed.startsWith(`lora/${version}`))
    throw new Error(`pnpm dlx @lora/cli --version printed "${printed.trim()}"`);
  dlx('init', 'demo', '--demo');
  const config = readdirSync(join(project, 'demo', 'configs')).find((file) => file.endsWith('.yaml'));
  const trained = dlx('train', '--config', join('demo', 'configs', config), '--set', 'max_steps=20');
  if (!existsSync(join(project, 'demo', 'output')) || !/adapter: /.test(trained)) {
    throw new Error(`pnpm dlx @lora/cli train did not write an adapter:\n${trained}`);
  }

  // npx with npm, which runs install scripts: onnxruntime-node's is told to skip the CUDA download.
  const npmProject = join(work, 'npm-project');
  execFileSync('mkdir', [npmProject]);
  const npx = (...args) =>
    run(['npx', '--yes', `@lora/cli@${version}`], args, npmProject, { ONNXRUNTIME_NODE_INSTALL: 'skip' });
  const npxVersion = npx('--version');
  if (!npxVersion.startsWith(`lora/${version}`))
    throw new Error(`npx @lora/cli --version printed "${npxVersion.trim()}"`);
  npx('init', 'demo', '--demo');
  const npxTrained = npx('train', '--config', join('demo', 'configs', config), '--set', 'max_steps=20');
  if (!/adapter: /.test(npxTrained))
    throw new Error(`npx @lora/cli train did not write an adapter:\n${npxTrained}`);
  console.log(
    `publish-test: changeset version → ${version}; ${names.length} packages published to a local registry; pnpm dlx @lora/cli and npx @lora/cli (npm) each init a demo project and train it`,
  );
} catch (error) {
  console.error(
    `publish-test failed: ${error.message}${error.cause ? ` (${error.cause.message ?? error.cause})` : ''}${error.stderr ? `\n${error.stderr}` : ''}${error.stdout ? `\n${error.stdout}` : ''}`,
  );
  process.exitCode = 1;
} finally {
  server?.kill();
  rmSync(work, { recursive: true, force: true });
}

/**
 * `fetch`, tried once more when the connection drops: the registry closes idle keep-alive
 * connections (after 5 s), and a request can meet one that is closing.
 */
async function fetchAgain(url) {
  try {
    return await fetch(url);
  } catch {
    return fetch(url);
  }
}

/** A port nothing listens on now. */
function freePort() {
  return new Promise((done, fail) => {
    const probe = createServer();
    probe.once('error', fail);
    probe.listen(0, '127.0.0.1', () => {
      const { port: free } = probe.address();
      probe.close(() => done(free));
    });
  });
}

async function waitFor(url) {
  const until = Date.now() + 60_000;
  while (Date.now() < until) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {}
    await new Promise((done) => setTimeout(done, 250));
  }
  throw new Error(`the registry did not answer at ${url}`);
}
