/**
 * One scenario's world for the fault-injection battery (`npm run chaos`): its own names on
 * the servers (a PostgreSQL schema, a Redis key prefix, a NATS subject prefix and the
 * streams named from it), `orchestrator start` as real processes it can SIGKILL and start
 * again, agents of its own that answer over the NATS contract (the agent SDK, as a user's
 * agents would), a watcher of what the service publishes, and the invariants checked on
 * PostgreSQL and on what was published.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { createAgentWorker, type AgentTaskContext, type AgentTaskHandler, type AgentWorker } from '../src/agent/worker.js';
import { SimulatedAgents } from '../src/demo/simulated-agents.js';
import type { TaskDispatch } from '../src/domain/messages.js';
import { TaskTypeCatalog } from '../src/domain/task-types.js';
import { silentLogger } from '../src/logger.js';
import type { NatsConnection } from '@nats-io/transport-node';
import { PgSqlClient, type SqlClient } from '../src/adapters/postgres/sql-client.js';
import { connectTestNats } from '../test/helpers/nats.js';
import { waitFor } from '../test/helpers/wait.js';
import type { TestNatsServer } from '../test/helpers/nats-server.js';
import type { PrivatePostgres } from '../test/helpers/private-postgres.js';
import type { PrivateRedis } from '../test/helpers/private-redis.js';
import { NatsWatch } from '../test/helpers/nats-watch.js';
import { startService, type ManagedProcess } from '../test/helpers/service-process.js';
import { createServiceScope, type ServiceScope } from '../test/helpers/service-scope.js';
import { checkInvariants, type Check } from './invariants.js';

/** Private servers a scenario kills or restarts (never the shared ones); the shared ones otherwise. */
export interface PrivateServers {
  postgres?: PrivatePostgres;
  redis?: PrivateRedis;
  nats?: TestNatsServer;
}

export interface WorldOptions {
  servers?: PrivateServers;
  /** Extra environment of the orchestrator processes. */
  env?: Record<string, string>;
  /** Shots PLAN_SHOTS returns: the project's fan-out (two tasks per shot, nine more). */
  shots?: number;
  /** Agent workers' concurrency (each agent). */
  concurrency?: number;
  /** DISPATCH_BATCH of the orchestrators for every agent: dispatches per message (default: one each). */
  dispatchBatch?: number;
  /** Agent workers' heartbeat period while a handler runs (default 5 s). */
  heartbeatMs?: number;
  /** Replaces the simulated agents' work for some tasks (throw: a failed result); `context` is the agent SDK's (heartbeats). */
  handle?: (task: TaskDispatch, simulated: () => ReturnType<SimulatedAgents['run']>, context: AgentTaskContext) => ReturnType<AgentTaskHandler>;
}

export class World {
  readonly orchestrators: ManagedProcess[] = [];
  private agents: AgentWorker[] = [];
  private agentConnection: Awaited<ReturnType<typeof connectTestNats>> | null = null;

  private constructor(
    readonly scope: ServiceScope,
    /** The environment of the orchestrator processes (the private servers' addresses where there are). */
    readonly env: Record<string, string>,
    /** The world's own connection to the NATS the orchestrators use. */
    readonly nc: NatsConnection,
    /** Direct reads of the orchestrators' database. */
    readonly sql: SqlClient,
    readonly watch: NatsWatch,
    readonly options: WorldOptions,
  ) {}

  static async create(options: WorldOptions = {}): Promise<World> {
    const scope = await createServiceScope({ AGENT_DURATION_MS: '0', ...options.env });
    const { postgres, redis, nats } = options.servers ?? {};
    const env = { ...scope.env };
    if (postgres) {
      env.DATABASE_URL = postgres.url;
      delete env.DATABASE_SCHEMA;
    }
    if (redis) env.REDIS_URL = redis.url;
    if (nats) env.NATS_URL = nats.url;
    if (options.dispatchBatch) {
      const agents = new SimulatedAgents(new TaskTypeCatalog(), { shots: 1 }).agents();
      env.DISPATCH_BATCH = agents.map((a) => `${a}=${options.dispatchBatch}`).join(',');
    }
    const nc = nats ? await connectTestNats(`chaos-${scope.prefix}`, nats.url, nats.clientOptions) : scope.nc;
    const sql = postgres ? new PgSqlClient({ connectionString: postgres.url, max: 2, onError: () => undefined }) : scope.sql;
    const p = scope.prefix;
    const watch = await NatsWatch.start(nc, [`${p}.status.>`, `${p}.budget.>`, `${p}.projects.>`, `${p}.dlq`, `${p}.tasks.>`]);
    return new World(scope, env, nc, sql, watch, options);
  }

  get prefix(): string {
    return this.scope.prefix;
  }

  /** `orchestrator start` as a user runs it; resolves once it says it is running. */
  async startOrchestrator(name: string, env: Record<string, string> = {}): Promise<ManagedProcess> {
    const p = await startService({ ...this.env, INSTANCE_ID: name, ...env }, name);
    this.orchestrators.push(p);
    return p;
  }

  /** The agents: one worker per agent of the catalogue, answering with the simulated outputs. */
  async startAgents(): Promise<void> {
    const simulated = new SimulatedAgents(new TaskTypeCatalog(), { shots: this.options.shots ?? 3, random: () => 0.5 });
    this.agentConnection = await connectTestNats(`chaos-agents-${this.prefix}`, this.env.NATS_URL, this.options.servers?.nats?.clientOptions ?? {});
    const handle: AgentTaskHandler = async (task, context) => {
      const run = () => simulated.run(task);
      if (this.options.handle) return this.options.handle(task, run, context);
      const { output, actualCost } = run();
      return { output, actualCost };
    };
    for (const agent of simulated.agents()) {
      this.agents.push(
        await createAgentWorker({
          connection: this.agentConnection,
          agent,
          handle,
          subjectPrefix: this.prefix,
          concurrency: this.options.concurrency ?? 20,
          heartbeatMs: this.options.heartbeatMs ?? 5_000,
          logger: silentLogger(),
        }),
      );
    }
  }

  /** A PROJECT_CREATED event: approvals off (no checkpoints) unless `approvals`; a budget when given. */
  projectCreated(projectId: string, options: { budget?: number; approvals?: boolean } = {}) {
    return {
      id: `${projectId}:created`,
      type: 'PROJECT_CREATED',
      projectId,
      payload: {
        title: `chaos ${projectId}`,
        brief: 'a lighthouse keeper finds a message in a bottle',
        ...(options.approvals ? {} : { checkpoints: [] }),
        ...(options.budget === undefined ? {} : { budget: options.budget }),
      },
      occurredAt: new Date().toISOString(),
    };
  }

  /** PROJECT_CREATED through JetStream (see projectCreated), de-duplicated by its id. */
  async createProject(projectId: string, budget?: number): Promise<void> {
    const event = this.projectCreated(projectId, budget === undefined ? {} : { budget });
    await jetstream(this.nc).publish(`${this.prefix}.events.${projectId}.PROJECT_CREATED`, JSON.stringify(event), { msgID: event.id });
  }

  /** Tasks of the project by status. */
  async statusCounts(projectId: string): Promise<Record<string, number>> {
    const { rows } = await this.sql.query<{ status: string; n: number }>(
      'SELECT status, count(*)::int AS n FROM tasks WHERE project_id = $1 GROUP BY status',
      [projectId],
    );
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }

  /** A control request over NATS, as an operator would send it (`<prefix>.control.<projectId>`); its answer. */
  async control(projectId: string, request: Record<string, unknown>): Promise<{ ok: boolean; error?: { code: string; message: string }; result?: unknown }> {
    const reply = await this.nc.request(`${this.prefix}.control.${projectId}`, JSON.stringify(request), { timeout: 30_000 });
    return reply.json();
  }

  async projectState(projectId: string): Promise<string | undefined> {
    const { rows } = await this.sql.query<{ state: string }>('SELECT state FROM projects WHERE project_id = $1', [projectId]);
    return rows[0]?.state;
  }

  /** Completed tasks in the audit log so far (every instance's). */
  async completions(projectId: string): Promise<number> {
    const { rows } = await this.sql.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM task_transitions WHERE project_id = $1 AND to_status = 'COMPLETED'`,
      [projectId],
    );
    return rows[0]?.n ?? 0;
  }

  /** Messages of the inbound stream not yet acknowledged by the orchestrators' consumer. */
  async inboundPending(): Promise<number> {
    const jsm = await jetstreamManager(this.nc);
    const info = await jsm.consumers.info(`${this.scope.streamPrefix}_INBOUND`, 'orchestrator');
    return info.num_pending + info.num_ack_pending;
  }

  /** Waits until `done()` holds, polling every `everyMs` (test/helpers/wait.ts); throws with `what` after `timeoutMs`. */
  until(done: () => Promise<boolean> | boolean, what: string, timeoutMs: number, everyMs = 100): Promise<void> {
    return waitFor(done, { timeoutMs, intervalMs: everyMs, what });
  }

  /** Waits for the project to reach `completed` (or `state`). */
  async projectDone(projectId: string, timeoutMs: number, state = 'completed'): Promise<void> {
    await this.until(async () => (await this.projectState(projectId)) === state, `project ${projectId} ${state}`, timeoutMs, 200);
  }

  /** I1–I5 on the project (see invariants.ts). */
  invariants(projectId: string): Promise<Check[]> {
    return checkInvariants(this.sql, this.watch, this.prefix, projectId);
  }

  /** Stops everything it started and removes its names from the servers. */
  async close(): Promise<void> {
    await Promise.all(this.agents.map((a) => a.stop().catch(() => undefined)));
    await this.agentConnection?.close().catch(() => undefined);
    await Promise.all(this.orchestrators.map((p) => p.stop('SIGTERM', 15_000).catch(() => undefined)));
    this.watch.close();
    if (this.nc !== this.scope.nc) await this.nc.close().catch(() => undefined);
    if (this.sql !== this.scope.sql) await this.sql.close().catch(() => undefined);
    await this.scope.cleanup();
  }
}

/** When the first message on `subjectPrefix` matching `where` arrived at or after `since` (waits up to `timeoutMs`). */
export async function firstSeenAfter<T>(world: World, subjectPrefix: string, since: number, where: (body: T) => boolean, what: string, timeoutMs = 300_000): Promise<number> {
  let at = 0;
  await world.until(
    () => {
      const m = world.watch.on<T>(subjectPrefix, where).find((x) => x.at >= since);
      if (m) at = m.at;
      return m !== undefined;
    },
    what,
    timeoutMs,
    20,
  );
  return at;
}
