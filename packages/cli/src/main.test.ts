import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from './main.ts';

describe('main', () => {
  afterEach(() => vi.restoreAllMocks());

  it('prints the version from package.json', async () => {
    const log = vi.spyOn(console, 'info').mockImplementation(() => {});
    expect(await main(['--version'])).toBe(0);
    expect(log.mock.calls.flat().join('\n')).toMatch(/^lora\/\d+\.\d+\.\d+/);
  });

  it('rejects an unknown command with a message and exit code 2, no stack trace', async () => {
    const error = vi.spyOn(console, 'error').mockImplementation(() => {});
    expect(await main(['frobnicate'])).toBe(2);
    const printed = error.mock.calls.flat().join('\n');
    expect(printed).toContain('Unknown command "frobnicate"');
    expect(printed).not.toMatch(/\n\s+at /);
  });
});
