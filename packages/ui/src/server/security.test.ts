import { readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Answer, makeProject, send as sendTo, serve } from '../test-fixtures.ts';
import type { UiServer } from './start.ts';

let server: UiServer;
let root: string;
let token: string;

/** A raw request to this file's server. */
const send = (path: string, options?: Parameters<typeof sendTo>[2]): Promise<Answer> =>
  sendTo(server, path, options);

const codeOf = (answer: Answer) => (JSON.parse(answer.body) as { error: { code: string } }).error.code;
const origin = () => `http://127.0.0.1:${server.port}`;
const json = (body: unknown) => ({
  method: 'POST',
  headers: { origin: origin(), 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

beforeAll(async () => {
  root = await makeProject();
  server = await serve(root);
  token = new URL(server.url).pathname.split('/')[1]!;
});
afterAll(() => server.close());

describe('lora ui server security', () => {
  it('listens on the loopback interface only, at an address that holds a long random token', () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/[\w-]{22}\/$/);
  });

  it('serves the page and the API with the token, and headers that keep the token in', async () => {
    const page = await send(`/${token}/`);
    expect(page.status).toBe(200);
    expect(page.body).toContain('<script type="module" src="app.js">');
    expect(page.headers['content-security-policy']).toContain("default-src 'none'");
    expect(page.headers['referrer-policy']).toBe('no-referrer');
    expect(page.headers['access-control-allow-origin']).toBeUndefined();
    expect((await send(`/${token}/api/project`)).status).toBe(200);
    expect((await send(`/${token}`)).headers.location).toBe(`/${token}/`);
  });

  it.each([
    ['no token', () => '/api/project'],
    ['a wrong token', () => `/${'x'.repeat(22)}/api/project`],
    ['a token prefix', () => `/${token.slice(0, 10)}/api/project`],
    ['the token in the query only', () => `/api/project?token=${token}`],
  ])('refuses a request with %s', async (_name, path) => {
    const answer = await send(path());
    expect(answer.status).toBe(403);
    expect(codeOf(answer)).toBe('E_FORBIDDEN');
  });

  it.each([
    ['another Host (DNS rebinding)', { host: 'evil.example:80' }],
    ['a Host on another port', { host: '127.0.0.1:1' }],
    ['a foreign Origin', { origin: 'http://evil.example' }],
    ['an Origin of another local port', { origin: 'http://127.0.0.1:1' }],
    ['a cross-site fetch', { 'sec-fetch-site': 'cross-site' }],
  ])('refuses %s even with the token', async (_name, headers) => {
    const answer = await send(`/${token}/api/project`, { headers });
    expect(answer.status).toBe(403);
    expect(codeOf(answer)).toBe('E_FORBIDDEN');
  });

  it('refuses changes that are not JSON from the page: forms, other origins, no origin, other methods', async () => {
    const body = JSON.stringify({ dataset: 'data/style_train', image: 'x', expected: null, caption: 'x' });
    const form = await send(`/${token}/api/caption`, {
      method: 'POST',
      headers: { origin: origin(), 'content-type': 'application/x-www-form-urlencoded' },
      body,
    });
    expect(form.status).toBe(403);
    const foreign = await send(`/${token}/api/caption`, {
      method: 'POST',
      headers: { origin: 'http://evil.example', 'content-type': 'application/json' },
      body,
    });
    expect(foreign.status).toBe(403);
    const noOrigin = await send(`/${token}/api/caption`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    expect(noOrigin.status).toBe(403);
    expect((await send(`/${token}/api/caption`, { method: 'PUT' })).status).toBe(405);
    expect((await send(`/${token}/api/caption`, { method: 'OPTIONS' })).status).toBe(405);
  });

  it.each([
    ['..', 'api/dataset?path=..'],
    ['../ inside a path', 'api/dataset?path=data/../../'],
    ['an absolute path', 'api/dataset?path=/etc'],
    ['an encoded ..', 'thumbnail?path=%2e%2e%2fsecret.png'],
    ['a backslash', 'thumbnail?path=data\\..\\..\\secret.png'],
    ['an absolute image path', 'thumbnail?path=/etc/passwd'],
    ['a config outside', 'api/config?path=../outside.yaml'],
    ["a run's events outside", 'api/run/events?path=../'],
    ['a run outside', 'api/run?path=/tmp'],
    ['a sample outside', 'run-file?path=../output/x/samples/step-000001.txt'],
    ['a dataset check outside', 'api/check?dataset=..'],
    ['labels outside', 'api/label?dataset=../x'],
  ])('refuses a path that leaves the project: %s', async (_name, route) => {
    const answer = await send(`/${token}/${route}`);
    expect(answer.status).toBe(403);
    expect(codeOf(answer)).toBe('E_PATH_OUTSIDE');
  });

  it('refuses a symbolic link out of the project, to read or to write through', async () => {
    const outside = await makeProject();
    await symlink(join(outside, 'data'), join(root, 'linked'));
    const read = await send(`/${token}/thumbnail?path=linked/style_train/10_neon/a.png`);
    expect(codeOf(read)).toBe('E_PATH_OUTSIDE');
    const listed = await send(`/${token}/api/dataset?path=linked/style_train`);
    expect(codeOf(listed)).toBe('E_PATH_OUTSIDE');
    const csv = join(outside, 'data/style_train/10_neon/metadata.csv');
    const before = await readFile(csv, 'utf8');
    const write = await send(
      `/${token}/api/caption`,
      json({
        dataset: 'linked/style_train',
        image: 'linked/style_train/10_neon/a.png',
        expected: null,
        caption: 'x',
      }),
    );
    expect(codeOf(write)).toBe('E_PATH_OUTSIDE');
    expect(await readFile(csv, 'utf8')).toBe(before);
  });

  it('saves only captions of images in the dataset, never an arbitrary file', async () => {
    await writeFile(join(root, 'notes.md'), 'mine');
    const answer = await send(
      `/${token}/api/caption`,
      json({ dataset: 'data/style_train', image: 'notes.md', expected: null, caption: 'x' }),
    );
    expect(answer.status).toBe(400);
    expect(await readFile(join(root, 'notes.md'), 'utf8')).toBe('mine');
  });

  it('serves only samples from run folders, and writes only YAML files as configs', async () => {
    const file = await send(`/${token}/run-file?path=data/style_train/10_neon/metadata.csv`);
    expect(file.status).toBe(400);
    const save = await send(
      `/${token}/api/config/save`,
      json({ path: 'notes.md', expected: 'mine', text: 'x' }),
    );
    expect(save.status).toBe(400);
    expect(await readFile(join(root, 'notes.md'), 'utf8')).toBe('mine');
  });

  it('answers malformed requests with a coded error', async () => {
    const notJson = await send(`/${token}/api/caption`, { ...json({}), body: '{' });
    expect([notJson.status, codeOf(notJson)]).toEqual([400, 'E_BAD_REQUEST']);
    const missing = await send(`/${token}/api/caption`, json({ dataset: 'data/style_train' }));
    expect(JSON.parse(missing.body).error.message).toBe('"image" must be a string.');
    expect((await send(`/${token}/api/nothing`)).status).toBe(404);
  });
});
