import { closest } from '@lora/config';
import { cac } from 'cac';
import { CliError } from './cli-error.ts';
import { registerCommands } from './commands.ts';
import { printJson } from './format.ts';
import { VERSION } from './version.ts';

/** Runs the CLI on `argv` (without node and script) and returns the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  for (const stream of [process.stdout, process.stderr]) {
    // main() runs many times in one test process: add the listener once.
    if (!stream.listeners('error').includes(ignoreClosedPipe)) stream.on('error', ignoreClosedPipe);
  }
  const cli = cac('lora');
  cli.version(VERSION);
  cli.help();
  cli.option('--debug', 'Show stack traces for errors');
  registerCommands(cli);
  const debug = argv.includes('--debug');
  try {
    cli.parse(['node', 'lora', ...argv], { run: false });
    // parse() has printed the help (of the command, when one was named, whatever its arguments).
    if (cli.options['help']) return 0;
    if (!cli.matchedCommand && cli.args.length > 0) {
      const typed = String(cli.args[0]);
      const guess = closest(
        typed,
        cli.commands.map((command) => command.name.split(' ')[0]!).filter((name) => name !== ''),
      );
      throw new CliError(
        'E_UNKNOWN_COMMAND',
        `Unknown command "${typed}"${guess === undefined ? '' : ` (did you mean "${guess}"?)`}. Run "lora --help" for the list of commands.`,
      );
    }
    if (!cli.matchedCommand && !cli.options['version']) {
      cli.outputHelp();
      return 0;
    }
    const result: unknown = await cli.runMatchedCommand();
    return typeof result === 'number' ? result : 0;
  } catch (error) {
    return reportError(error, debug, argv.includes('--json'));
  }
}

function reportError(error: unknown, debug: boolean, json: boolean): number {
  // Typed errors from the libraries and the CLI carry a code and a message written for users.
  const code =
    error instanceof Error && 'code' in error && typeof error.code === 'string' ? error.code : undefined;
  const usage = error instanceof Error && error.name === 'CACError';
  // A script that asked for JSON reads stdout: the failure goes there too, as JSON.
  if (json) {
    const message = error instanceof Error ? error.message : String(error);
    printJson({ error: { code: code ?? (usage ? 'E_USAGE' : 'E_UNEXPECTED'), message } });
  }
  if (debug) console.error(error);
  else if (code !== undefined) console.error(`lora: ${(error as Error).message} [${code}]`);
  else if (usage) console.error(`lora: ${(error as Error).message}. Run "lora --help" for usage.`);
  else {
    console.error(
      `lora: unexpected error: ${String(error)}\nRun again with --debug for details and report it.`,
    );
  }
  return error instanceof CliError ? error.exitCode : 1;
}

/**
 * A reader that went away (`lora train | head -3`) stops the output, not the work: a training run
 * goes on to its end (or to Ctrl-C) and writes its files as usual, and nothing prints a stack trace.
 */
function ignoreClosedPipe(error: NodeJS.ErrnoException): void {
  if (error.code === 'EPIPE' || error.code === 'ERR_STREAM_DESTROYED') return;
  throw error;
}
