/**
 * `lora ui [folder]`: the local web app of `@lora/ui` for the folder, on the loopback interface
 * with a session token in its URL, until Ctrl-C. Imported only when the command runs, so other
 * commands never load the server or its page.
 */
import { openBrowser, startUi } from '@lora/ui';
import { BIN_PATH } from '../bin-path.ts';
import { CliError } from '../cli-error.ts';
import { print } from '../format.ts';
import { displayPath } from '../paths.ts';

export interface UiCommandOptions {
  port?: string;
  /** false with --no-open. */
  open?: boolean;
}

/** Resolves on the first Ctrl-C, SIGTERM or SIGHUP. */
const interrupted = (): Promise<void> =>
  new Promise((resolve) => {
    const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
    const stop = () => {
      for (const signal of signals) process.off(signal, stop);
      resolve();
    };
    for (const signal of signals) process.on(signal, stop);
  });

function parsePort(text: string | undefined): number {
  if (text === undefined) return 0;
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new CliError(
      'E_USAGE',
      `--port must be a whole number from 0 to 65535 (0: a free port), got "${text}".`,
    );
  }
  return port;
}

export async function ui(
  folder: string | undefined,
  options: UiCommandOptions,
  until: Promise<void> = interrupted(),
): Promise<number> {
  const server = await startUi({ folder: folder ?? '.', port: parsePort(options.port), cli: BIN_PATH });
  print(`lora ui: ${displayPath(server.root)} at ${server.url}`);
  print('the address holds a session token: open it as it is; Ctrl-C stops the server');
  if (options.open !== false && !(await openBrowser(server.url))) {
    print('no browser could be opened here: open the address above in one');
  }
  await until;
  await server.close();
  return 0;
}
