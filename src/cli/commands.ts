import { loadConfig, redactedConfig } from '../config/config.js';
import { configuredCatalog } from '../config/task-types.js';
import { taskMachine } from '../machines/task-machine.js';
import { projectMachine } from '../machines/project-machine.js';
import { schedulerMachine } from '../machines/scheduler-machine.js';
import { toDefinitionJson, toMermaid } from '../machines/mermaid.js';
import type { Command } from './types.js';

const MACHINES = { task: taskMachine, project: projectMachine, scheduler: schedulerMachine } as const;


const projectCommand = (name: string, usage: string, summary: string, options: Command['options'] = {}): Command => ({
  name,
  usage,
  summary,
  options: { json: { type: 'boolean' }, ...options },
  async run(args, io) {
    const { runControlCommand } = await import('./remote-commands.js');
    return runControlCommand(name, args, io, usage);
  },
});

const submitCommand = (name: 'submit' | 'create'): Command => ({
  name,
  usage:
    name === 'submit'
      ? 'submit [--file project.json] [--title TEXT] [--brief TEXT] [--budget USD|none] [--checkpoints A,B|none] [--project ID] [--event-id ID] [--wait SECONDS] [--json]'
      : 'create [the options of submit]',
  summary: name === 'submit' ? 'start a project (a PROJECT_CREATED event) from flags or a JSON file, and wait until it exists' : 'the same as submit',
  help: [
    'The file holds {"title","brief","budget","checkpoints"} (and "projectId", "eventId"; any other field goes into the',
    "event's payload); flags win over it. Checked against the PROJECT_CREATED contract before anything is sent.",
    'Idempotent: the event id is evt_created_<projectId> unless given, so a second submit of a project creates nothing.',
    '  --checkpoints LIST  the checkpoints (event types) a person approves; none: no approvals; absent: the pipeline\'s',
    '  --wait SECONDS      how long to wait for the project to exist (default 30)',
  ].join('\n'),
  options: {
    json: { type: 'boolean' },
    file: { type: 'string' },
    title: { type: 'string' },
    brief: { type: 'string' },
    budget: { type: 'string' },
    checkpoints: { type: 'string' },
    project: { type: 'string' },
    'event-id': { type: 'string' },
    wait: { type: 'string' },
  },
  async run(args, io) {
    const { runSubmitCommand } = await import('./submit-command.js');
    return runSubmitCommand(args, io);
  },
});

const decisionCommand = (name: 'approve' | 'reject'): Command => ({
  name,
  usage: `${name} <projectId> [--comment TEXT] [--approval ID] [--by NAME]${name === 'reject' ? ' [--shots 0,2]' : ''} [--json]`,
  summary: `${name} the project's pending checkpoint (through NATS, as a reviewer would)`,
  options: { json: { type: 'boolean' }, comment: { type: 'string' }, approval: { type: 'string' }, by: { type: 'string' }, shots: { type: 'string' } },
  async run(args, io) {
    const { runDecisionCommand } = await import('./remote-commands.js');
    return runDecisionCommand(name === 'approve' ? 'approved' : 'rejected', args, io, this.usage);
  },
});

export const COMMANDS: readonly Command[] = [
  {
    name: 'start',
    usage: 'start [--inspect ws://HOST:PORT]',
    summary: 'run the orchestrator service (PostgreSQL, Redis, NATS from the environment) until SIGTERM/SIGINT',
    help: [
      'Applies the migrations, restores the tasks that were not final, consumes the NATS streams and',
      'dispatches. SIGTERM or SIGINT stops it gracefully (in-flight writes finish) with exit code 0.',
      '  --inspect URL  stream the actors to a Stately inspector listening on a WebSocket (opt-in)',
    ].join('\n'),
    options: { inspect: { type: 'string' } },
    async run(args, io) {
      const { runStartCommand } = await import('./start-command.js');
      return runStartCommand(args, io);
    },
  },
  {
    name: 'demo',
    usage: 'demo [--ui] [--reject-first] [--shots N] [--budget USD] [--services] [--inspect ws://HOST:PORT]',
    summary: 'run a whole video project with simulated agents, in one process, no servers needed',
    help: [
      'Runs PROJECT_CREATED to completion on the embedded adapters (PGlite, in-memory queue and',
      'leases, in-process bus) with simulated agents and automatic approvals, then prints a summary.',
      '  --ui            you are the reviewer: the review console on HTTP_ADDR (default 127.0.0.1:8080),',
      '                  the demo waits at each checkpoint for your decision and runs until Ctrl-C',
      '  --reject-first  reject the first script to show a revision loop',
      '  --shots N       shots the storyboard plans (default 3)',
      '  --budget USD    the project budget (default 25)',
      '  --services      run against the real PostgreSQL, Redis and NATS of the environment, agents as NATS workers',
      '  --inspect URL   stream the actors to a Stately inspector listening on a WebSocket',
    ].join('\n'),
    options: {
      ui: { type: 'boolean' },
      'reject-first': { type: 'boolean' },
      shots: { type: 'string' },
      budget: { type: 'string' },
      services: { type: 'boolean' },
      inspect: { type: 'string' },
    },
    async run(args, io) {
      const { runDemoCommand } = await import('./demo-command.js');
      return runDemoCommand(args, io);
    },
  },
  submitCommand('submit'),
  submitCommand('create'),
  {
    name: 'projects',
    usage: 'projects [--state active,paused,…] [--limit N] [--after ID] [--json]',
    summary: 'list projects, newest first: state, progress, tasks by state, budget, pending reviews',
    help: [
      'One page (default 50, at most 500); --after the id the previous page ends with (printed under it).',
      '  --state LIST  only projects in these states: active, paused, failed, completed, cancelled',
    ].join('\n'),
    options: { json: { type: 'boolean' }, state: { type: 'string' }, limit: { type: 'string' }, after: { type: 'string' } },
    async run(args, io) {
      const { runProjectsCommand } = await import('./query-commands.js');
      return runProjectsCommand(args, io);
    },
  },
  projectCommand('status', 'status <projectId> [--json]', 'a running project: state, budget, tasks per state, and what its pending checkpoints ask you to judge'),
  {
    name: 'review',
    usage: 'review <projectId> [--approval ID] [--json]',
    summary: 'what the pending checkpoints ask a person to judge: the script, the shots as a table, the images and videos',
    options: { json: { type: 'boolean' }, approval: { type: 'string' } },
    async run(args, io) {
      const { runReviewCommand } = await import('./remote-commands.js');
      return runReviewCommand(args, io, this.usage);
    },
  },
  {
    name: 'tasks',
    usage: 'tasks <projectId> [--state RUNNING,FAILED,…] [--limit N] [--after ID] [--json]',
    summary: "the project's task graph, each task after its dependencies: depth, state, agent, attempts, cost, dependencies, output",
    help: [
      'One page (default 500, at most 1000); --after the task id the previous page ends with (printed under it).',
      '  --state LIST  only tasks in these states (PENDING, READY, RUNNING, COMPLETED, FAILED, CANCELLED, WAITING_APPROVAL)',
    ].join('\n'),
    options: { json: { type: 'boolean' }, state: { type: 'string' }, limit: { type: 'string' }, after: { type: 'string' } },
    async run(args, io) {
      const { runTasksCommand } = await import('./query-commands.js');
      return runTasksCommand(args, io, this.usage);
    },
  },
  {
    name: 'dlq',
    usage: 'dlq [projectId] [--messages] [--limit N] [--after ID] [--json]',
    summary: 'dead letters, latest first: the tasks (and raised events) given up on, with their reasons; --messages: the rejected inbound messages',
    help: [
      'One page (default 50, at most 500); --after the id (or, with --messages, the sequence) the previous page printed.',
      '  --messages  the inbound messages the orchestrator refused (not JSON, a schema violation, an unknown project…),',
      '              read from the <PREFIX>_DLQ stream (this needs JetStream API access on NATS)',
    ].join('\n'),
    options: { json: { type: 'boolean' }, project: { type: 'string' }, limit: { type: 'string' }, after: { type: 'string' }, messages: { type: 'boolean' } },
    async run(args, io) {
      const { runDlqCommand } = await import('./query-commands.js');
      return runDlqCommand(args, io);
    },
  },
  decisionCommand('approve'),
  decisionCommand('reject'),
  projectCommand('pause', 'pause <projectId> [--reason TEXT] [--json]', 'stop dispatching the project\'s tasks (running ones finish)', { reason: { type: 'string' } }),
  projectCommand('resume', 'resume <projectId> [--json]', 'dispatch the project\'s tasks again'),
  projectCommand('retry', 'retry <projectId> [--json]', 'a failed project: run its failed tasks again (fresh attempts) and the tasks cancelled after them'),
  projectCommand('cancel', 'cancel <projectId> [--reason TEXT] [--json]', 'cancel every task of the project that is not final', { reason: { type: 'string' } }),
  projectCommand('budget', 'budget <projectId> [--set AMOUNT|none] [--json]', 'show or set the project\'s budget limit', { set: { type: 'string' } }),
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
      const loaded = loadConfig(io.env);
      configuredCatalog(loaded.taskTypes); // the task-type overrides name types of the built-in catalogue
      const config = redactedConfig(loaded);
      io.out(args.values.json ? JSON.stringify(config) : JSON.stringify(config, null, 2));
      return 0;
    },
  },
];
