import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNats } from '../../src/adapters/nats/connection.js';
import { createAgentWorker, type AgentWorker } from '../../src/agent/worker.js';
import { loadConfig } from '../../src/config/config.js';
import { SimulatedAgents } from '../../src/demo/simulated-agents.js';
import { TaskTypeCatalog } from '../../src/domain/task-types.js';
import type { ProjectStatusMessage } from '../../src/domain/messages.js';
import { silentLogger } from '../../src/logger.js';
import { startService, type OrchestratorService } from '../../src/service.js';
import { ReviewConsole } from '../../src/console/review-console.js';
import { natsOutboundFeed } from '../../src/adapters/nats/outbound-feed.js';
import { rejectedMessages } from '../../src/adapters/nats/rejected-messages.js';
import { newProjectId, tasksOf } from '../helpers/e2e-project.js';
import { collect, connectTestNats, waitFor, type Collected } from '../helpers/nats.js';
import { TestNatsServer } from '../helpers/nats-server.js';
import { runCli, startAgents, stopAll, type ManagedProcess } from '../helpers/service-process.js';
import { createTestSchema, TEST_DATABASE_URL, type TestSchema } from '../helpers/pg-schema.js';
import { closeClients, connectTestRedis, deleteKeysWithPrefix, randomPrefix, TEST_REDIS_URL } from '../helpers/redis.js';

/**
 * The NATS permissions of deploy/nats, on a private nats-server that loads them: the
 * orchestrator user runs a project, one user per agent (agent.conf copied per agent, as it
 * says; script_writer is the agents example, run as a process with AGENTS=script_writer) does the work, a client user publishes the event and the decision, and the server
 * logs no permission violation; the operator's commands run as the client (a query, the DLQ
 * stream). Then an agent's user is refused what is not its own: events, control requests,
 * queries, approval decisions, another agent's tasks, every reply subject.
 */

const DEPLOY = new URL('../../deploy/nats/', import.meta.url);
const PREFIX = 'lap';
const PASSWORDS = {
  NATS_ORCHESTRATOR_PASSWORD: `o-${randomBytes(6).toString('hex')}`,
  NATS_CLIENT_PASSWORD: `c-${randomBytes(6).toString('hex')}`,
  NATS_AGENT_PASSWORD: `a-${randomBytes(6).toString('hex')}`,
};
const simulated = new SimulatedAgents(new TaskTypeCatalog());
const AGENTS = simulated.agents();

let dir: string;
let server: TestNatsServer;
let schema: TestSchema;
let redisPrefix: string;
let service: OrchestratorService | undefined;
let client: NatsConnection;
const agentConnections = new Map<string, NatsConnection>();
const workers: AgentWorker[] = [];
let examplesProcess: ManagedProcess | undefined;
let projects: Collected<ProjectStatusMessage>[];
let requests: Collected<{ approvalId: string; checkpoint: string }>[];

/** The deploy files in a directory of their own, with a user for every agent of the catalogue. */
async function writeServerConfig(): Promise<string> {
  const agentConf = await readFile(new URL('agent.conf', DEPLOY), 'utf8');
  let main = await readFile(new URL('nats-server.conf', DEPLOY), 'utf8');
  for (const name of ['orchestrator.conf', 'client.conf', 'agent.conf']) {
    await writeFile(join(dir, name), await readFile(new URL(name, DEPLOY), 'utf8'));
  }
  const example = /^.*\{ user: script_writer, .*$/m;
  const exampleUser = example.exec(main)?.[0];
  if (!exampleUser) throw new Error('deploy/nats/nats-server.conf has no script_writer user');
  const users: string[] = [];
  for (const agent of AGENTS) {
    users.push(exampleUser.replaceAll('script_writer', agent).replaceAll('SCRIPT_WRITER', agent.toUpperCase()));
    if (agent === 'script_writer') continue;
    await writeFile(join(dir, `agent-${agent}.conf`), agentConf.replaceAll('script_writer', agent).replaceAll('SCRIPT_WRITER', agent.toUpperCase()));
    main = main.replace('include ./agent.conf', `include ./agent.conf\ninclude ./agent-${agent}.conf`);
  }
  main = main.replace(example, users.join('\n'));
  const path = join(dir, 'nats-server.conf');
  await writeFile(path, main);
  return path;
}

const connectAs = (user: string, password: string, extraEnv: Record<string, string> = {}) =>
  connectNats({ ...loadConfig({ NATS_URL: server.url, NATS_USER: user, NATS_PASSWORD: password, ...extraEnv }).nats, name: `test-${user}` }, silentLogger());

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lap-nats-perm-'));
  server = await TestNatsServer.start({ configFile: await writeServerConfig(), env: PASSWORDS });
  schema = await createTestSchema();
  redisPrefix = randomPrefix('natsperm');
  const config = loadConfig({
    DATABASE_URL: TEST_DATABASE_URL,
    DATABASE_SCHEMA: schema.name,
    DATABASE_POOL_SIZE: '4',
    REDIS_URL: TEST_REDIS_URL,
    REDIS_KEY_PREFIX: `${redisPrefix}:k`,
    TASK_QUEUE_KEY: `${redisPrefix}:queue`,
    NATS_URL: server.url,
    NATS_USER: 'orchestrator',
    NATS_PASSWORD: PASSWORDS.NATS_ORCHESTRATOR_PASSWORD,
    SCHEDULER_INTERVAL: '0.05',
    RETRY_BACKOFF_BASE: '0.1',
    INSTANCE_ID: 'nats-permissions',
  });
  service = await startService(config, silentLogger());
  // script_writer: the agents example as its own process, as deploy/nats says to run it.
  examplesProcess = await startAgents({
    NATS_URL: server.url,
    NATS_USER: 'script_writer',
    NATS_PASSWORD: PASSWORDS.NATS_AGENT_PASSWORD,
    NATS_INBOX_PREFIX: '_INBOX.script_writer',
    AGENTS: 'script_writer',
    AGENT_DURATION_MS: '20',
    LOG_LEVEL: 'warn',
  });
  for (const agent of AGENTS) {
    if (agent === 'script_writer') continue;
    const nc = await connectAs(agent, PASSWORDS.NATS_AGENT_PASSWORD, { NATS_INBOX_PREFIX: `_INBOX.${agent}` });
    agentConnections.set(agent, nc);
    workers.push(
      await createAgentWorker({
        connection: nc,
        agent,
        subjectPrefix: PREFIX,
        concurrency: 4,
        handle: async (task) => simulated.run(task),
      }),
    );
  }
  client = await connectTestNats('client', server.url, { user: 'client', pass: PASSWORDS.NATS_CLIENT_PASSWORD });
  projects = collect<ProjectStatusMessage>(client, `${PREFIX}.projects.>`).messages;
  requests = collect<{ approvalId: string; checkpoint: string }>(client, `${PREFIX}.approvals.requested.>`).messages;
  await client.flush();
}, 120_000);

afterAll(async () => {
  await Promise.allSettled(workers.map((w) => w.stop({ abort: true })));
  await stopAll([examplesProcess]);
  await service?.stop();
  await Promise.allSettled([...agentConnections.values()].map((nc) => nc.close()));
  await client?.close();
  const redis = connectTestRedis('natsperm-cleanup');
  await deleteKeysWithPrefix(redis, redisPrefix);
  await closeClients([redis]);
  await schema?.drop();
  await server?.dispose();
  await rm(dir, { recursive: true, force: true });
}, 60_000);

const violations = () => server.output.split('\n').filter((line) => /violation/i.test(line));

describe('the NATS permissions of deploy/nats', () => {
  it('run a project: the orchestrator, 16 agents (one of them the agents example) and a client each as its own user, no permission violation', async () => {
    const projectId = newProjectId();
    const event = {
      id: `${projectId}:created`,
      type: 'PROJECT_CREATED',
      projectId,
      payload: { title: 'The Keeper', brief: 'a lighthouse keeper finds a message', budget: 25, checkpoints: ['SCENE_WRITTEN'] },
      occurredAt: new Date().toISOString(),
    };
    const js = jetstream(client);
    await js.publish(`${PREFIX}.events.${projectId}.PROJECT_CREATED`, JSON.stringify(event), { msgID: event.id });
    await waitFor(() => requests.some((r) => r.subject.endsWith(projectId)), 'the SCENE_WRITTEN approval request', 60_000);
    const request = requests.find((r) => r.subject.endsWith(projectId))!.body;
    expect(request.checkpoint).toBe('SCENE_WRITTEN');
    await js.publish(`${PREFIX}.approvals.decided.${projectId}`, JSON.stringify({ approvalId: request.approvalId, decision: 'approved', by: 'client' }), {
      msgID: `${request.approvalId}:approved`,
    });
    await waitFor(
      () => projects.some((p) => p.subject.endsWith(projectId) && p.body.state === 'completed'),
      `project completed\n${violations().join('\n')}`,
      90_000,
    );
    // A control request from the client, answered by the orchestrator (allow_responses).
    const reply = await client.request(`${PREFIX}.control.${projectId}`, JSON.stringify({ action: 'status' }), { timeout: 10_000 });
    expect(reply.json<{ ok: boolean; result?: { project?: { state?: string } } }>()).toMatchObject({ ok: true, result: { project: { state: 'completed' } } });
    // The operator's commands as the client user: a query answered, the DLQ stream read.
    const clientEnv = { NATS_URL: server.url, NATS_USER: 'client', NATS_PASSWORD: PASSWORDS.NATS_CLIENT_PASSWORD, NATS_SUBJECT_PREFIX: PREFIX };
    const listed = await runCli(['projects', '--json'], clientEnv);
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as { items: { projectId: string; state: string }[] }).items).toContainEqual(expect.objectContaining({ projectId, state: 'completed' }));
    const graph = await runCli(['tasks', projectId], clientEnv);
    expect(graph.code, graph.stderr).toBe(0);
    expect(graph.stdout).toMatch(/^\s*#1 {2}WRITE_SCRIPT\s+COMPLETED/m);
    const rejected = await runCli(['dlq', '--messages', '--json'], clientEnv);
    expect(rejected.code, rejected.stderr).toBe(0);
    const tasks = await tasksOf(schema.client(), projectId);
    expect(tasks.length).toBeGreaterThan(10);
    expect(tasks.filter((t) => t.status !== 'COMPLETED')).toEqual([]);
    // The review console of `orchestrator start`, as the orchestrator user: it hears the
    // outbound subjects while a browser listens and reads the rejected messages of LAP_DLQ.
    const reviewConsole = await ReviewConsole.start({
      orchestrator: service!.orchestrator,
      feed: natsOutboundFeed(service!.connection, PREFIX, silentLogger()),
      rejected: { latest: async (limit) => (await rejectedMessages(service!.connection, PREFIX, limit)).items },
    });
    const heard: string[] = [];
    const listening = reviewConsole.subscribe((e) => heard.push(e.kind));
    await listening.ready;
    // A client's malformed event: dead-lettered, heard on lap.dlq, kept in LAP_DLQ.
    await js.publish(`${PREFIX}.events.${projectId}.PROJECT_CREATED`, '{"not json', { msgID: `${projectId}:broken` });
    await waitFor(() => heard.includes('dlq'), `the console heard the dead letter\n${violations().join('\n')}`, 30_000);
    const deadLetters = await reviewConsole.deadLetters();
    expect(deadLetters.messages.some((m) => m.data === '{"not json')).toBe(true);
    listening.close();
    await reviewConsole.close();
    expect(violations()).toEqual([]);
  }, 180_000);

  it('refuse an agent events, control requests, approval decisions, other agents\' tasks and others\' replies', async () => {
    const projectId = newProjectId();
    const agent = await connectAs('script_writer', PASSWORDS.NATS_AGENT_PASSWORD, { NATS_INBOX_PREFIX: '_INBOX.script_writer' });
    agentConnections.set('script_writer', agent);
    const js = jetstream(agent);
    const refused = /permissions violation/i;
    await expect(agent.request(`${PREFIX}.control.${projectId}`, JSON.stringify({ action: 'status' }), { timeout: 5_000 })).rejects.toThrow(refused);
    await expect(agent.request(`${PREFIX}.query.projects`, '{}', { timeout: 5_000 })).rejects.toThrow(refused);
    await expect(
      js.publish(`${PREFIX}.approvals.decided.${projectId}`, JSON.stringify({ approvalId: 'apr_x', decision: 'approved', by: 'agent' }), { timeout: 5_000 }),
    ).rejects.toThrow(refused);
    await expect(
      js.publish(`${PREFIX}.events.${projectId}.PROJECT_CREATED`, JSON.stringify({ id: 'e', type: 'PROJECT_CREATED', projectId }), { timeout: 5_000 }),
    ).rejects.toThrow(refused);
    // Another agent's consumer, and a consumer of the inbound stream.
    await expect(agent.request(`$JS.API.CONSUMER.INFO.LAP_TASKS.agent_image_generator`, '', { timeout: 5_000 })).rejects.toThrow(refused);
    await expect(agent.request(`$JS.API.CONSUMER.CREATE.LAP_INBOUND.sneak`, '{}', { timeout: 5_000 })).rejects.toThrow(refused);
    // Subscriptions: another agent's dispatches, every reply subject.
    for (const subject of [`${PREFIX}.tasks.image_generator`, '_INBOX.>', `${PREFIX}.control.>`]) {
      const sub = agent.subscribe(subject);
      await expect(sub.closed).resolves.toBeInstanceOf(Error);
    }
    // The server saw the refusals as violations of the agent's user; the project was never created.
    await waitFor(() => violations().some((l) => l.includes(`${PREFIX}.control.${projectId}`)), 'the control violation in the server log');
    expect(violations().every((l) => l.includes('"script_writer"'))).toBe(true);
    expect(await tasksOf(schema.client(), projectId)).toEqual([]);
  }, 60_000);
});
