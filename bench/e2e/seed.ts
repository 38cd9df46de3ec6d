/**
 * Bulk seeding for the scale figures, straight into PostgreSQL (INSERT … SELECT
 * generate_series, in chunks) and Redis (ZADD of many members, pipelined), not through
 * the orchestrator's API. Rows look like the orchestrator's own: the stored snapshot of
 * the real task machine (none: the columns are the state, as storedSnapshot decides; a
 * persisted snapshot where it keeps one, only the task id differing), the queue score of
 * queue-put.lua.
 * No audit rows are written (task_transitions): nothing on the measured paths reads them.
 */
import { transition } from 'xstate';
import { initialTaskSnapshot, storedSnapshot } from '../../src/actors/task-snapshot.js';
import { TASK_MACHINE_VERSION, taskMachine } from '../../src/machines/task-machine.js';
import { createTaskSteps } from '../../src/machines/task-steps.js';
import type { BenchEnv, Infra } from './infra.js';
import { NOOP_AGENT, NOOP_TYPE, orchestratorPriority } from './workload.js';

export type SeedStatus = 'READY' | 'COMPLETED';

const SQL_CHUNK = 100_000;
const ZADD_MEMBERS = 5_000;
const ZADD_PER_PIPELINE = 20;
/** The score layout of commands/queue-put.lua: (1000 - priority) * 2^42 + sequence. */
const SEQ_LIMIT = 2 ** 42;

/** The seeded task's id and level; the same formulas in SQL and here. */
export function seedId(idPrefix: string, g: number): string {
  return `${idPrefix}${String(g).padStart(8, '0')}`;
}
export function seedLevel(g: number, levels: number): number {
  return (g * 7919) % levels;
}

function snapshot(status: SeedStatus, projectId: string): unknown {
  const now = Date.now();
  const s0 = initialTaskSnapshot(createTaskSteps(), { taskId: 'x', projectId, taskType: NOOP_TYPE, maxAttempts: 3 }, { awaitingApproval: false, at: now });
  const [ready] = transition(taskMachine, s0, { type: 'DEPENDENCIES_MET', at: now });
  if (status === 'READY') return storedSnapshot(ready);
  const [running] = transition(taskMachine, ready, { type: 'DISPATCH', at: now, fencingToken: 1, deadline: now + 300_000 });
  const [done] = transition(taskMachine, running, { type: 'COMPLETE', at: now, actualCost: 0 });
  return storedSnapshot(done);
}

export interface SeedTasks {
  idPrefix: string;
  count: number;
  status: SeedStatus;
  /** The project, which must exist; with `perProject`, the prefix of the projects created here. */
  projectId: string;
  /** Creates projects `<projectId><(g-1) / perProject>` (contiguous blocks of g) and spreads the tasks over them. */
  perProject?: number;
  levels: number;
}

/** Inserts tasks g = 1..count (ids `<idPrefix><g, 8 digits>`) in `status`; returns seconds taken. */
export async function seedTasks(infra: Infra, env: BenchEnv, o: SeedTasks): Promise<number> {
  const started = Date.now();
  const perProject = Math.max(1, o.perProject ?? o.count);
  const spread = o.perProject !== undefined;
  if (spread) {
    await infra.pg.query(
      `INSERT INTO ${env.schema}.projects (project_id, title, state, budget_limit, checkpoints, created_at, updated_at)
       SELECT $1 || i, 'bench', 'active', NULL, NULL, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC'
       FROM generate_series(0, $2::int) AS i ON CONFLICT (project_id) DO NOTHING`,
      [o.projectId, Math.ceil(o.count / perProject) - 1],
    );
  }
  const project = spread ? `$2 || ((g - 1) / ${perProject})` : '$2';
  const L = o.levels;
  const priority = L <= 1 ? '500' : `round(((g::bigint * 7919) % ${L}) * 1000.0 / ${L - 1})::int`;
  const done = o.status === 'COMPLETED';
  const now = `(now() AT TIME ZONE 'UTC')`;
  const text = `
    INSERT INTO ${env.schema}.tasks (task_id, project_id, task_type, assigned_to, status, priority, input, output,
      dependencies, estimated_cost, actual_cost, created_at, started_at, completed_at, attempts, max_attempts,
      fencing_token, timeout_ms, snapshot, machine_version, version, ready_at, updated_at)
    SELECT s.id, s.project, '${NOOP_TYPE}', '${NOOP_AGENT}', $3, s.priority, jsonb_build_object('i', s.g),
      ${done ? `'{}'::jsonb` : 'NULL'}, '[]'::jsonb, 0, ${done ? '0' : 'NULL'}, ${now},
      ${done ? now : 'NULL'}, ${done ? now : 'NULL'}, ${done ? 1 : 0}, 3, ${done ? 1 : 'NULL'}, 300000,
      CASE WHEN $4::jsonb IS NULL THEN NULL ELSE jsonb_set($4::jsonb, '{context,taskId}', to_jsonb(s.id)) END, $5, ${done ? 4 : 2}, ${done ? 'NULL' : now}, ${now}
    FROM (SELECT g, $1 || lpad(g::text, 8, '0') AS id, ${project} AS project, ${priority} AS priority
          FROM generate_series($6::int, $7::int) AS g) AS s`;
  const stored = snapshot(o.status, o.projectId);
  const snap = stored === null ? null : JSON.stringify(stored);
  for (let from = 1; from <= o.count; from += SQL_CHUNK) {
    const to = Math.min(o.count, from + SQL_CHUNK - 1);
    await infra.pg.query(text, [o.idPrefix, o.projectId, o.status, snap, TASK_MACHINE_VERSION, from, to]);
  }
  await infra.pg.query(`ANALYZE ${env.schema}.tasks`);
  return (Date.now() - started) / 1000;
}

/** ZADDs the seeded ids g = 1..count into `key` with the queue's scores; returns seconds taken. */
export async function seedQueue(infra: Infra, key: string, o: { idPrefix: string; count: number; levels: number }): Promise<number> {
  const started = Date.now();
  let pipeline = infra.redis.pipeline();
  let queued = 0;
  for (let from = 1; from <= o.count; from += ZADD_MEMBERS) {
    const args: (string | number)[] = [];
    for (let g = from; g <= Math.min(o.count, from + ZADD_MEMBERS - 1); g++) {
      const score = (1000 - orchestratorPriority(seedLevel(g, o.levels), o.levels)) * SEQ_LIMIT + g;
      args.push(score, seedId(o.idPrefix, g));
    }
    pipeline.zadd(key, ...args);
    if (++queued === ZADD_PER_PIPELINE) {
      await exec(pipeline);
      pipeline = infra.redis.pipeline();
      queued = 0;
    }
  }
  if (queued) await exec(pipeline);
  return (Date.now() - started) / 1000;
}

async function exec(pipeline: ReturnType<Infra['redis']['pipeline']>): Promise<void> {
  const results = (await pipeline.exec()) ?? [];
  const failed = results.find(([err]) => err);
  if (failed) throw failed[0];
}
