import type { ParseArgsConfig } from 'node:util';
import { loadConfig, redactedConfig } from '../config/config.js';
import { taskMachine } from '../machines/task-machine.js';
import { projectMachine } from '../machines/project-machine.js';
import { schedulerMachine } from '../machines/scheduler-machine.js';
import { toDefinitionJson, toMermaid } from '../machines/mermaid.js';

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

const MACHINES = { task: taskMachine, project: projectMachine, scheduler: schedulerMachine } as const;

export const COMMANDS: readonly Command[] = [
  {
    name: 'demo',
    usage: 'demo [--reject-first] [--shots N] [--budget USD] [--json]',
    summary: 'run a whole video project with simulated agents, in one process, no servers needed',
    help: [
      'Runs PROJECT_CREATED to completion on the embedded adapters (PGlite, in-memory queue and',
      'leases, in-process bus) with simulated agents and automatic approvals, then prints a summary.',
      '  --reject-first  reject the first script to show a revision loop',
      '  --shots N       shots the storyboard plans (default 3)',
      '  --budget USD    the project budget (default 25)',
    ].join('\n'),
    options: { 'reject-first': { type: 'boolean' }, shots: { type: 'string' }, budget: { type: 'string' } },
    async run(args, io) {
      const { runDemoCommand } = await import('./demo-command.js');
      return runDemoCommand(args, io);
    },
  },
  {
    name: 'migrate',
    usage: 'migrate',
    summary: 'apply the database migrations (DATABASE_URL, DATABASE_SCHEMA); safe to run twice',
    options: {},
    async run(_args, io) {
      const config = loadConfig(io.env);
      const { PgSqlClient } = await import('../adapters/postgres/sql-client.js');
      const { migrate } = await import('../adapters/postgres/migrate.js');
      const sql = new PgSqlClient({ connectionString: config.database.url, schema: config.database.schema, max: 2 });
      try {
        const applied = await migrate(sql);
        io.out(applied.length ? `applied: ${applied.map((m) => m.name).join(', ')}` : 'database is up to date');
        return 0;
      } finally {
        await sql.close();
      }
    },
  },
  {
    name: 'machines',
    usage: 'machines [--json | --mermaid]',
    summary: 'export the state machine definitions (Stately editor JSON, or Mermaid)',
    options: { json: { type: 'boolean' }, mermaid: { type: 'boolean' } },
    async run(args, io) {
      for (const [name, machine] of Object.entries(MACHINES)) {
        if (args.values.mermaid) io.out(`%% ${name} machine\n${toMermaid(machine)}`);
      }
      if (!args.values.mermaid) {
        const all = Object.fromEntries(Object.entries(MACHINES).map(([name, m]) => [name, toDefinitionJson(m)]));
        io.out(JSON.stringify(all, null, 2));
      }
      return 0;
    },
  },
  {
    name: 'config',
    usage: 'config [--json]',
    summary: 'validate the configuration from the environment and print it (secrets redacted)',
    options: { json: { type: 'boolean' } },
    async run(args, io) {
      const config = redactedConfig(loadConfig(io.env));
      io.out(args.values.json ? JSON.stringify(config) : JSON.stringify(config, null, 2));
      return 0;
    },
  },
];
