import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../main.ts';
import { ui } from './ui.ts';

afterEach(() => vi.restoreAllMocks());

describe('lora ui', () => {
  it('prints the address with its token, serves the page there, and stops when told', async () => {
    const lines: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((text) => {
      lines.push(String(text));
      return true;
    });
    let stop!: () => void;
    const done = ui(
      mkdtempSync(join(tmpdir(), 'lora-ui-cli-')),
      { open: false },
      new Promise((r) => (stop = r)),
    );
    await vi.waitFor(() => expect(lines.length).toBeGreaterThan(1));
    const url = /at (http:\/\/127\.0\.0\.1:\d+\/[\w-]+\/)$/m.exec(lines.join(''))?.[1];
    expect(url).toBeDefined();
    expect((await fetch(`${url}api/project`)).status).toBe(200);
    expect((await fetch(new URL('/api/project', url))).status).toBe(403);
    stop();
    expect(await done).toBe(0);
    await expect(fetch(`${url}api/project`)).rejects.toThrow();
  });

  it('refuses a bad --port and a folder that does not exist, without a stack trace', async () => {
    const errors: string[] = [];
    vi.spyOn(console, 'error').mockImplementation((text) => errors.push(String(text)));
    expect(await main(['ui', '.', '--port', '70000', '--no-open'])).toBe(2);
    expect(await main(['ui', join(tmpdir(), 'no-such-folder-lora-ui'), '--no-open'])).toBe(1);
    expect(errors).toEqual([
      'lora: --port must be a whole number from 0 to 65535 (0: a free port), got "70000". [E_USAGE]',
      expect.stringMatching(
        /no-such-folder-lora-ui is not a folder; pass the project or dataset folder\. \[E_NOT_FOUND\]$/,
      ),
    ]);
  });
});
