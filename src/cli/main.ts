import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { ConfigError, isOrchestratorError } from '../errors.js';
import { COMMANDS } from './commands.js';
import type { CliIo } from './types.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

export function usage(): string {
  return [
    `orchestrator ${pkg.version} — task orchestration for multi-agent AI video pipelines`,
    '',
    'Usage: orchestrator <command> [options]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.usage}\n      ${c.summary}`),
    '',
    'Options:',
    '  -h, --help     show this help (or a command\'s: orchestrator <command> --help)',
    '  -v, --version  print the version',
    '',
    'Configuration comes from the environment (see the README); for example',
    '  DATABASE_URL=postgres://... REDIS_URL=redis://... NATS_URL=nats://... orchestrator migrate',
  ].join('\n');
}

/** Runs the command line; returns the exit code instead of exiting (testable). */
export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    io.out(usage());
    return name === undefined ? 1 : 0;
  }
  if (name === '-v' || name === '--version') {
    io.out(pkg.version);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    io.err(`orchestrator: unknown command '${name}'\n\n${usage()}`);
    return 1;
  }
  let parsed;
  try {
    parsed = parseArgs({ args: [...rest], options: { ...command.options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true });
  } catch (err) {
    io.err(`orchestrator ${name}: ${(err as Error).message}\n\nUsage: orchestrator ${command.usage}`);
    return 1;
  }
  if (parsed.values.help) {
    io.out(`Usage: orchestrator ${command.usage}\n\n${command.summary}${command.help ? `\n\n${command.help}` : ''}`);
    return 0;
  }
  try {
    return await command.run({ values: parsed.values, positionals: parsed.positionals }, io);
  } catch (err) {
    if (err instanceof ConfigError) {
      io.err(`orchestrator: ${err.message}`);
      return 2;
    }
    if (isOrchestratorError(err)) {
      io.err(`orchestrator ${name}: ${err.message} [${err.code}]`);
      return 1;
    }
    io.err(`orchestrator ${name}: ${(err as Error)?.stack ?? String(err)}`);
    return 1;
  }
}
