import type { ParseArgsConfig } from 'node:util';

/**
 * The types the CLI's command modules share (commands.ts, main.ts and the subcommand
 * files), kept apart so the subcommands do not import commands.ts, which loads them.
 */
export interface CliIo {
  out(line: string): void;
  err(line: string): void;
  env: NodeJS.ProcessEnv;
  /** Raw output (no newline added), for live views. */
  write?(text: string): void;
  /** Whether standard output is a terminal. */
  tty?: boolean;
}

export interface ParsedArgs {
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
}

export interface Command {
  name: string;
  usage: string;
  summary: string;
  help?: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(args: ParsedArgs, io: CliIo): Promise<number>;
}
