import { randomBytes } from 'node:crypto';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import {
  NatsEventBus,
  OrchestratorFactory,
  PgSqlClient,
  createBlackboard,
  loadConfig,
  silentLogger,
  type Blackboard,
  type ConfigOverrides,
  type EventBus,
  type Orchestrator,
  type OrchestratorConfig,
  type PipelineInput,
  type TaskRecord,
} from '../../src/index.js';
import type { TaskDispatch, TaskResult } from '../../src/domain/messages.js';
import { ServiceUnavailableError } from '../../src/errors.js';
import { atMost, connectTestNats, deleteStreams, TEST_NATS_URL } from './nats.js';
import { TEST_DATABASE_URL } from './pg-schema.js';
import { closeClients, deleteKeysWithPrefix, TEST_REDIS_URL } from './redis.js';
import { createRedisClient } from '../../src/adapters/redis/connection.js';

/**
 * The regression tests of issue 15's defects: orchestrator instances built only from the
 * public surfaces (OrchestratorFactory over `createBlackboard` and the NATS event bus),
 * fault injection through wrappers of the ports, and agents answering on the wire.
 */

/** Where one test's state lives: its own schema, Redis key prefix, NATS subject and stream prefixes. */
export interface DefectScope {
  id: string;
  schema: string;
  databaseUrl: string;
  redisUrl: string;
  natsUrl: string;
  redisPrefix: string;
  subjectPrefix: string;
  streamPrefix: string;
  /** The parsed configuration of an instance of this scope (overrides in the environment's units). */
  config(instanceId: string, overrides?: ConfigOverrides): OrchestratorConfig;
  /** Drops the schema, deletes the Redis keys and the streams of this scope (only those). */
  cleanup(): Promise<void>;
}

export async function createDefectScope(
  servers: { databaseUrl?: string; redisUrl?: string; natsUrl?: string } = {},
): Promise<DefectScope> {
  const id = randomBytes(6).toString('hex');
  const databaseUrl = servers.databaseUrl ?? TEST_DATABASE_URL;
  const redisUrl = servers.redisUrl ?? TEST_REDIS_URL;
  const natsUrl = servers.natsUrl ?? TEST_NATS_URL;
  const schema = `t_${id}`;
  const redisPrefix = `test:defects:${id}`;
  const subjectPrefix = `d${id}`;
  const streamPrefix = subjectPrefix.toUpperCase();
  return {
    id,
    schema,
    databaseUrl,
    redisUrl,
    natsUrl,
    redisPrefix,
    subjectPrefix,
    streamPrefix,
    config(instanceId, overrides = {}) {
      const base: ConfigOverrides = {
        instanceId,
        database: { url: databaseUrl, schema, poolSize: 4 },
        redis: { url: redisUrl, keyPrefix: `${redisPrefix}:k` },
        queue: { key: `${redisPrefix}:queue` },
        nats: { servers: natsUrl, subjectPrefix },
        scheduler: { intervalSeconds: 0.05, retryBackoffSeconds: 0.05 },
        approval: { enabled: true },
        logLevel: 'silent',
      };
      return loadConfig({}, merge(base, overrides));
    },
    async cleanup() {
      await atMost(
        (async () => {
          const nc = await connectTestNats(`cleanup-${id}`, natsUrl).catch(() => null);
          if (nc) {
            await deleteStreams(nc, streamPrefix).catch(() => undefined);
            await nc.close();
          }
        })(),
        15_000,
      );
      const redis = createRedisClient({ url: redisUrl, connectionName: `cleanup-${id}` });
      try {
        await atMost(deleteKeysWithPrefix(redis, redisPrefix).catch(() => 0), 10_000);
      } finally {
        await closeClients([redis]);
      }
      const admin = new PgSqlClient({ connectionString: databaseUrl, max: 1 });
      try {
        if (/^t_[a-f0-9]{12}$/.test(schema)) await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
      } finally {
        await admin.close().catch(() => undefined);
      }
    },
  };
}

function merge<T extends Record<string, unknown>>(a: T, b: Record<string, unknown>): T {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' ? merge(cur as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out as T;
}

/** A pipeline without follow-ups: PROJECT_CREATED creates nothing; tasks come from submitTasks. */
export const PLAIN_PIPELINE: PipelineInput = { name: 'plain', checkpoints: [], rules: [], emits: [] };

/**
 * A completed ANALYZE_BRIEF raises STEP_DONE, which creates one WRITE_VOICEOVER_SCRIPT (a
 * follow-up). STEP_DONE is a checkpoint only for projects created with
 * `checkpoints: ['STEP_DONE']` (an approval request is published first).
 */
export const FOLLOW_UP_PIPELINE: PipelineInput = {
  name: 'follow-up',
  checkpoints: [],
  rules: [{ on: 'STEP_DONE', create: [{ key: 'follow', type: 'WRITE_VOICEOVER_SCRIPT', input: { of: '$payload.source' } }] }],
  emits: [{ taskTypes: ['ANALYZE_BRIEF'], event: 'STEP_DONE', payload: { source: '$task.id' } }],
};

/**
 * The methods of a port, intercepted: `around` decides what a call does (calls `next()` to
 * delegate: the method's own result, so a method that is not async, such as
 * `dispatchBatchSize`, stays so when `around` returns it).
 */
export function intercept<T extends object>(
  target: T,
  around: (method: string, args: unknown[], next: () => Promise<unknown>) => unknown,
): T {
  return new Proxy(target, {
    get(obj, prop, receiver) {
      const value = Reflect.get(obj, prop, receiver);
      if (typeof value !== 'function' || typeof prop !== 'string') return value;
      return (...args: unknown[]) => around(prop, args, () => value.apply(obj, args) as Promise<unknown>);
    },
  });
}

/**
 * The bus, refusing to publish `projectId`'s approval requests (as NATS refuses a message
 * over max_payload): that project's reaction to a checkpoint fails, every time.
 */
export function refuseApprovalsOf(projectId: string) {
  return (bus: EventBus): EventBus =>
    intercept(bus, (method, args, next) => {
      const [message] = args as [{ kind?: string; body?: { projectId?: string } }];
      if (method === 'publish' && message?.kind === 'approval_requested' && message.body?.projectId === projectId) {
        return Promise.reject(new ServiceUnavailableError('nats', 'MAX_PAYLOAD_EXCEEDED (injected)'));
      }
      return next();
    });
}

/** Whether any object inside `value` has `key` equal to one of `values` (a write's event or target state, whatever the call's shape). */
export function mentions(value: unknown, key: string, values: readonly string[], depth = 0): boolean {
  if (depth > 6 || value === null || typeof value !== 'object') return false;
  if (Array.isArray(value)) return value.some((v) => mentions(v, key, values, depth + 1));
  const rec = value as Record<string, unknown>;
  if (typeof rec[key] === 'string' && values.includes(rec[key] as string)) return true;
  return Object.values(rec).some((v) => mentions(v, key, values, depth + 1));
}

/**
 * A kill switch over a blackboard and a bus: once `freeze()` is called every call of
 * theirs hangs for ever, as in a process that died (SIGKILL) at that point.
 */
export class Freezer {
  frozen = false;
  freeze(): void {
    this.frozen = true;
  }
  wrap<T extends object>(port: T): T {
    return intercept(port, (_m, _a, next) => (this.frozen ? new Promise(() => undefined) : next()));
  }
}

export interface Instance {
  name: string;
  orchestrator: Orchestrator;
  /** The blackboard the orchestrator was given (wrapped when the test asked for it). */
  blackboard: Blackboard;
  /** The real one (its own PostgreSQL pool and Redis connection). */
  raw: Blackboard;
  bus: EventBus;
  nc: NatsConnection;
  config: OrchestratorConfig;
  /** Graceful stop, then closes its connections. */
  stop(): Promise<void>;
  /**
   * The process dies: its ports hang from now on and its NATS connection is closed
   * (without stop(): its leases stay, its unacknowledged messages come back).
   */
  kill(): Promise<void>;
}

export interface InstanceOptions {
  config?: ConfigOverrides;
  pipeline?: PipelineInput;
  /** Wraps the blackboard's ports (fault injection). */
  wrap?: (blackboard: Blackboard) => Partial<Omit<Blackboard, 'close'>>;
  /** Wraps the event bus (fault injection). */
  wrapBus?: (bus: EventBus) => EventBus;
  /** Default true. */
  start?: boolean;
}

/** An orchestrator instance: own PostgreSQL pool, Redis connection and NATS connection. */
export async function startInstance(scope: DefectScope, name: string, options: InstanceOptions = {}): Promise<Instance> {
  const config = scope.config(name, options.config ?? {});
  const raw = await createBlackboard(config, silentLogger());
  const nc = await connectTestNats(`${scope.id}-${name}`, scope.natsUrl);
  const freezer = new Freezer();
  const wrapped = { ...raw, ...(options.wrap ? options.wrap(raw) : {}) };
  const blackboard: Blackboard = {
    tasks: freezer.wrap(wrapped.tasks),
    projects: freezer.wrap(wrapped.projects),
    commit: freezer.wrap(wrapped.commit),
    deadLetters: freezer.wrap(wrapped.deadLetters),
    costs: freezer.wrap(wrapped.costs),
    notices: freezer.wrap(wrapped.notices),
    queue: freezer.wrap(wrapped.queue),
    locks: freezer.wrap(wrapped.locks),
    close: () => raw.close(),
  };
  const natsBus = new NatsEventBus({
    connection: nc,
    subjectPrefix: scope.subjectPrefix,
    streamPrefix: scope.streamPrefix,
    retryDelay: { baseMs: 200, maxMs: 1_000 },
  });
  const bus = freezer.wrap(options.wrapBus ? options.wrapBus(natsBus) : natsBus);
  const orchestrator = OrchestratorFactory.create(blackboard, bus, config, { pipeline: options.pipeline ?? PLAIN_PIPELINE, logger: silentLogger() });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await atMost(nc.close(), 5_000);
    await atMost(raw.close().catch(() => undefined), 5_000);
  };
  const instance: Instance = {
    name,
    orchestrator,
    blackboard,
    raw,
    bus,
    nc,
    config,
    async stop() {
      if (!freezer.frozen) await atMost(orchestrator.stop().catch(() => undefined), 30_000);
      await close();
    },
    async kill() {
      freezer.freeze();
      await close();
    },
  };
  if (options.start !== false) {
    try {
      await orchestrator.start();
    } catch (err) {
      await close();
      throw err;
    }
  }
  return instance;
}

/** PROJECT_CREATED through the orchestrator. */
export async function createProject(
  orchestrator: Orchestrator,
  projectId: string,
  payload: Record<string, unknown> = {},
): Promise<void> {
  await orchestrator.handleEvent({
    id: `create-${projectId}`,
    type: 'PROJECT_CREATED',
    projectId,
    payload: { title: projectId, ...payload },
    occurredAt: new Date().toISOString(),
  });
}

export interface CoreAgent {
  /** Every dispatch delivered to the agent, in order. */
  deliveries: TaskDispatch[];
  /** Deliveries of one (task, attempt). */
  count(taskId: string, attempt?: number): number;
  /** Publishes a result on the wire, as the agent would. */
  answer(result: TaskResult): void;
  close(): void;
}

/**
 * Agents on a core subscription of `<prefix>.tasks.>` (the README: a core subscriber sees
 * every dispatch). `reply` decides the result of a delivery (null: no answer, for now).
 * Results are core-published on `<prefix>.results.<projectId>`, which the inbound stream captures.
 */
export function coreAgent(
  nc: NatsConnection,
  prefix: string,
  reply: (task: TaskDispatch) => TaskResult | null = completed,
): CoreAgent {
  const deliveries: TaskDispatch[] = [];
  const answer = (result: TaskResult, projectId?: string) => {
    const project = projectId ?? deliveries.find((d) => d.taskId === result.taskId)?.projectId;
    nc.publish(`${prefix}.results.${project}`, JSON.stringify(result));
  };
  const sub: Subscription = nc.subscribe(`${prefix}.tasks.>`, {
    callback: (err, msg) => {
      if (err) return;
      let task: TaskDispatch;
      try {
        task = msg.json<TaskDispatch>();
      } catch {
        return;
      }
      deliveries.push(task);
      const result = reply(task);
      if (result) answer(result, task.projectId);
    },
  });
  return {
    deliveries,
    count: (taskId, attempt) => deliveries.filter((d) => d.taskId === taskId && (attempt === undefined || d.attempt === attempt)).length,
    answer: (r) => answer(r),
    close: () => sub.unsubscribe(),
  };
}

/** The completed result of a dispatch. */
export function completed(task: TaskDispatch, cost = 0.01): TaskResult {
  return { taskId: task.taskId, fencingToken: task.fencingToken, status: 'completed', output: { ok: true, attempt: task.attempt }, actualCost: cost };
}

/**
 * Polls `check` until it holds; fails after `limitMs` (a liveness bound, not a timing
 * assertion) with `describe()`'s view of the state, so a failure says where it stuck.
 */
export async function eventually(
  check: () => Promise<boolean> | boolean,
  what: string,
  describe: () => Promise<string> | string = () => '',
  limitMs = 30_000,
  intervalMs = 50,
): Promise<void> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    // A check that throws (a server down for a moment) counts as not yet.
    if (await Promise.resolve().then(check).catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${limitMs} ms; ${await Promise.resolve().then(describe).catch((e: Error) => e.message)}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Statuses of tasks, for failure messages: `READY×3 RUNNING×1` and a few ids. */
export function summarize(tasks: readonly TaskRecord[]): string {
  const counts = new Map<string, number>();
  for (const t of tasks) counts.set(t.status, (counts.get(t.status) ?? 0) + 1);
  const states = [...counts].map(([s, n]) => `${s}×${n}`).join(' ');
  const stuck = tasks.filter((t) => t.status !== 'COMPLETED').slice(0, 3).map((t) => `${t.taskId}=${t.status}/attempts ${t.attempts}`);
  return `tasks: ${states || 'none'}${stuck.length ? ` (e.g. ${stuck.join(', ')})` : ''}`;
}

/** Waits until every task of the project is COMPLETED. */
export async function allCompleted(
  blackboard: Blackboard,
  projectId: string,
  expected: number,
  limitMs = 30_000,
  extra: () => Promise<string> | string = () => '',
): Promise<TaskRecord[]> {
  let rows: TaskRecord[] = [];
  await eventually(
    async () => {
      rows = await blackboard.tasks.listByProject(projectId);
      return rows.length === expected && rows.every((t) => t.status === 'COMPLETED');
    },
    `all ${expected} tasks of ${projectId} COMPLETED`,
    async () => `${summarize(rows)}, ${rows.length} rows; queue size ${await blackboard.queue.size().catch(() => '?')}${(await extra()) ? `; ${await extra()}` : ''}`,
    limitMs,
  );
  return rows;
}

/** Exactly one COMPLETED transition per task (the audit log). */
export async function completionsPerTask(blackboard: Blackboard, taskIds: readonly string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const id of taskIds) out.set(id, (await blackboard.tasks.listTransitions(id)).filter((t) => t.toStatus === 'COMPLETED').length);
  return out;
}
