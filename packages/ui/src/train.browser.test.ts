import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UiServer } from './server/start.ts';
import {
  DEMO_CONFIG,
  HAS_CHROMIUM,
  makeDemoProject,
  openUi,
  SHOTS,
  trainInTerminal,
} from './test-fixtures.ts';

// Configs and runs in Chromium: `lora init --demo`'s tiny model trained from the page by the real CLI.

let server: UiServer;
let root: string;
let page: Page;
let close: (() => Promise<void>) | undefined;
const RUN = 'output/tiny_llama_demo';

async function shot(name: string): Promise<void> {
  if (SHOTS === undefined) return;
  await mkdir(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

const editor = () => page.getByLabel('Config', { exact: true });
const shownStep = async () => Number(await page.locator('.numbers .step').textContent());
const lastLoggedStep = async (run = RUN) => {
  const lines = (await readFile(join(root, run, 'metrics.jsonl'), 'utf8')).trim().split('\n');
  return (JSON.parse(lines.at(-1)!) as { step: number }).step;
};

const exitOf = (child: ChildProcess): Promise<number | null> =>
  child.exitCode !== null
    ? Promise.resolve(child.exitCode)
    : new Promise((resolve) => child.once('exit', resolve));

/** The Runs tab's row of a run folder, and what its cells say. */
const runRow = (path: string) =>
  page.locator('.run-list tbody tr', { has: page.locator('td.path', { hasText: new RegExp(`^${path}$`) }) });
const listed = () => page.locator('.run-list tbody td.path').allTextContents();
const stateCell = (path: string) => runRow(path).locator('.state').textContent();
const stepCell = async (path: string) => Number(await runRow(path).locator('td').nth(5).textContent());

describe.skipIf(!HAS_CHROMIUM)('configs and runs in Chromium', { timeout: 60_000 }, () => {
  beforeAll(async () => {
    root = await makeDemoProject();
    ({ server, page, close } = await openUi(root, { hash: '#train', ready: '.validity.valid' }));
  });
  afterAll(() => close?.());

  it('shows a problem typed into the config at its line:column, with lora config validate’s message', async () => {
    const text = await editor().inputValue();
    const line = text.split('\n').findIndex((l) => l.startsWith('lora_rank:')) + 1;
    await editor().fill(text.replace('lora_rank: 16', 'lora_rank: x'));
    await page.waitForSelector('.problems li');
    expect(await page.locator('.problems li').allTextContents()).toEqual([
      `${DEMO_CONFIG}:${line}:12 lora_rank: expected integer 1–1024, got "x"`,
    ]);
    expect(await page.locator('.gutter .bad').textContent()).toBe(`${line}\n`);
    expect(await page.locator('.run-actions .status').textContent()).toBe(
      'Save the config first: a run reads the file.',
    );
    await shot('config-error');
    await page.locator('.problems button').click();
    const caret = await editor().evaluate((area: HTMLTextAreaElement) => area.selectionStart);
    expect(text.slice(caret - 11, caret + 2)).toBe('lora_rank: 16');
    await page.getByRole('button', { name: 'Revert' }).click();
    await page.waitForSelector('.validity.valid');
    expect(await page.locator('.problems li').count()).toBe(0);
  });

  it('saves an edit to the config file', async () => {
    const edited = (await editor().inputValue()).replace(
      'max_steps: 1000',
      'max_steps: 2000\nvalidation_split: 0.1\nvalidation_every_n_steps: 5\nsample_every_n_steps: 10',
    );
    await editor().fill(edited);
    await editor().press('Control+s');
    await expect.poll(() => page.locator('.config-editor .status').textContent()).toBe('Saved');
    expect(await readFile(join(root, DEMO_CONFIG), 'utf8')).toBe(edited);
    await page.waitForSelector('.validity.valid');
  });

  it('starts a run that streams its loss, validation points and samples, survives a reload, and stops with a checkpoint', async () => {
    await page.getByRole('button', { name: 'Start run' }).click();
    await page.waitForSelector('.state.running');
    await expect.poll(shownStep, { timeout: 60_000 }).toBeGreaterThanOrEqual(11);
    await expect.poll(() => page.locator('.chart circle.val').count()).toBeGreaterThanOrEqual(3);
    await expect.poll(() => page.locator('.sample-step h4').first().textContent()).toBe('step 10');
    expect(await page.locator('.sample-text').first().textContent()).toMatch(
      /^### What is the capital of Egypt\?\n/,
    );
    expect(await page.locator('.chart path.raw').count()).toBe(1);
    await shot('run-live');

    // The page closes and comes back: the run went on, and the page follows it again.
    const before = await shownStep();
    await page.reload();
    await page.waitForSelector('.state.running');
    await expect.poll(shownStep).toBeGreaterThan(before);

    await page.getByRole('button', { name: 'Stop' }).click();
    await page.waitForSelector('.state.stopped', { timeout: 30_000 });
    // The checkpoint of the step it stopped after (an epoch's end may have saved one before).
    expect(await readdir(join(root, RUN, 'checkpoints'))).toContain(`step-${await lastLoggedStep()}`);
    expect(existsSync(join(root, RUN, 'adapter_model.safetensors'))).toBe(true);
  });

  it('resumes the run from its checkpoint, and a fresh start there shows lora train’s refusal', async () => {
    const stoppedAt = await lastLoggedStep();
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.waitForSelector('.state.running');
    await expect.poll(shownStep, { timeout: 60_000 }).toBeGreaterThan(stoppedAt + 2);
    await page.getByRole('button', { name: 'Stop' }).click();
    await page.waitForSelector('.state.stopped', { timeout: 30_000 });
    const starts = (await readFile(join(root, RUN, 'runs.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(starts.map((s) => s.resumed_from)).toEqual([null, expect.stringContaining(`step-${stoppedAt}`)]);
    await shot('run-resumed');

    await page.getByRole('button', { name: 'Start run' }).click();
    await page.waitForSelector('.run-error');
    // The refused start leaves the run as it was.
    expect(await page.locator('.run-panel .state').textContent()).toMatch(/^stopped/);
    expect(await page.locator('.run-error').textContent()).toMatch(
      /holds an earlier run .* Here: Resume goes on from its last checkpoint.* \[E_OUTPUT_NOT_EMPTY\]$/,
    );
    await shot('run-refused');
  });

  it('lists the run with its starts, curve and config', async () => {
    await page.goto(`${server.url}#runs`);
    await page.waitForSelector('.run-list tbody tr');
    expect(await page.locator('.run-list tbody tr td.path').allTextContents()).toEqual([RUN]);
    const cells = await page.locator('.run-list tbody tr td').allTextContents();
    expect(cells.slice(2, 5)).toEqual(['stopped', expect.any(String), '2']);
    await page.waitForSelector('.compare .chart path.raw');
    expect(
      await page.locator('.config-compare tr', { hasText: 'max_steps' }).locator('td').textContent(),
    ).toBe('2000');
    await shot('runs');
  });

  it('keeps the Runs tab live: runs started in a terminal appear, running or finished, and one going is stopped from the page', {
    timeout: 180_000,
  }, async () => {
    // The tab stays open from here on: every change below comes without a reload.
    expect(await listed()).toEqual([RUN]);
    const SHORT = 'output/terminal_short';
    const short = trainInTerminal(root, SHORT, 3);
    expect(await exitOf(short)).toBe(0);
    await expect.poll(listed, { timeout: 30_000 }).toContain(SHORT);
    // A run this server did not start: its state comes from its folder.
    await expect.poll(() => stateCell(SHORT), { timeout: 30_000 }).toBe('finished');
    expect(await stepCell(SHORT)).toBe(3);

    const LONG = 'output/terminal_long';
    const long = trainInTerminal(root, LONG, 100_000);
    try {
      await expect.poll(() => stateCell(LONG), { timeout: 60_000 }).toBe('running');
      // Its step moves on in the list ('–' until its first step is logged).
      await expect.poll(() => stepCell(LONG), { timeout: 30_000 }).toBeGreaterThan(0);
      const seen = await stepCell(LONG);
      await expect.poll(() => stepCell(LONG), { timeout: 30_000 }).toBeGreaterThan(seen);
      expect(await stateCell(RUN)).toBe('stopped');
      await shot('runs-live');

      // The Train tab follows the run that is going, and its Stop sends it Ctrl-C.
      await page.goto(`${server.url}#train`);
      await page.waitForSelector('.run-panel .state.running');
      expect(await page.locator('.run-panel h2').textContent()).toBe(LONG);
      expect(await page.locator('.run-panel .hint').textContent()).toMatch(/^Started outside this page/);
      await shot('run-terminal');
      await page.getByRole('button', { name: 'Stop' }).click();
      await page.waitForSelector('.run-panel .state.stopped', { timeout: 60_000 });
      expect(await exitOf(long)).toBe(130);
      expect(await readdir(join(root, LONG, 'checkpoints'))).toContain(`step-${await lastLoggedStep(LONG)}`);
    } finally {
      if (long.exitCode === null && long.signalCode === null) long.kill('SIGKILL');
    }
    await page.goto(`${server.url}#runs`);
    await expect.poll(() => stateCell(LONG), { timeout: 30_000 }).toBe('stopped');
    await shot('runs-terminal');
  });
});
