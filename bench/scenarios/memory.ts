/**
 * Figures 4b and 5: the orchestrator's memory and its recovery time, on one environment,
 * each figure from a fresh orchestrator process (no agents: dispatched tasks stay RUNNING):
 *
 * 1. baseline: empty tables (the project only);
 * 2. recovery: `recoveryTasks` READY tasks seeded in PostgreSQL and in the Redis queue
 *    (what a crash leaves behind), then a restart: process spawned → first READY → RUNNING
 *    on the status subject, split into process boot, start() (restore of the RUNNING
 *    actors, queue re-filled) and start() → first dispatch; then memory, once every
 *    non-final task's actor is loaded (they load on demand after a restart). Repeated
 *    `rounds` times (each restart finds the same backlog, minus ≤ MAX_CONCURRENT_TASKS
 *    that went RUNNING, which are completed between the rounds, as their agents would have
 *    done: restored RUNNING, they would fill every slot of the next process);
 * 3. final: those tasks made COMPLETED, `finalTasks` COMPLETED tasks added, a restart:
 *    memory (final tasks should cost nothing) and start() time.
 *
 * Memory is read in the orchestrator process after two forced GCs (--expose-gc):
 * heap used, heap total and RSS.
 */
import type { Ctx } from '../e2e/context.js';
import { OrchestratorProc, StatusWatch } from '../e2e/context.js';
import type { MemoryReport } from '../e2e/orchestrator-proc.js';
import { seedQueue, seedTasks } from '../e2e/seed.js';
import { summarize, type Summary } from '../e2e/stats.js';

export interface RecoveryRound {
  /** Seconds: spawn → first dispatch, and its parts. */
  total: number;
  boot: number;
  start: number;
  toFirstDispatch: number;
  live: number;
  memory: MemoryReport;
}

export interface MemoryResult {
  baseline: MemoryReport;
  recovery: Summary & { tasks: number; rounds: RecoveryRound[]; startSeconds: Summary; seedSeconds: number };
  /** With recoveryTasks non-final tasks (median round). */
  nonFinal: MemoryReport & { tasks: number };
  final: MemoryReport & { tasks: number; startSeconds: number; seedSeconds: number };
}

export async function runMemory(ctx: Ctx): Promise<MemoryResult> {
  const c = ctx.config;
  const env = ctx.infra.newEnv('memory');
  const projectId = 'bench_memory';
  const watch = new StatusWatch(ctx.infra.nc, env.subjectPrefix);
  try {
    await watch.ready();
    // 1. baseline
    const base = await OrchestratorProc.start(ctx, env, 'memory-baseline');
    let baseline: MemoryReport;
    try {
      await ctx.infra.publishEvent(env, projectId, 'PROJECT_CREATED', `${env.id}_created`, { title: 'bench memory' });
      await ctx.infra.waitForProject(env, projectId);
      baseline = await base.proc.memory();
    } finally {
      await base.proc.stop();
    }

    // 2. recovery with recoveryTasks READY tasks, in PostgreSQL and in the queue
    const seedSeconds =
      (await seedTasks(ctx.infra, env, { idPrefix: 'rec_', count: c.recoveryTasks, status: 'READY', projectId, levels: c.priorityLevels })) +
      (await seedQueue(ctx.infra, env.queueKey, { idPrefix: 'rec_', count: c.recoveryTasks, levels: c.priorityLevels }));
    ctx.log(`memory: seeded ${c.recoveryTasks} READY tasks in ${seedSeconds.toFixed(1)} s`);
    const rounds: RecoveryRound[] = [];
    for (let round = 0; round < c.rounds; round++) {
      watch.firstDispatchAt = 0;
      const { proc, started, spawnAt } = await OrchestratorProc.start(ctx, env, `recovery-${round}`);
      try {
        const ok = await watch.until(() => watch.firstDispatchAt > 0, Date.now() + 60_000);
        if (!ok) throw new Error('no dispatch within 60 s of the restart');
        const memory = await proc.memory(true);
        rounds.push({
          total: (watch.firstDispatchAt - spawnAt) / 1000,
          boot: (started.loadedAt - spawnAt) / 1000,
          start: (started.startedAt - started.startAt) / 1000,
          toFirstDispatch: (watch.firstDispatchAt - started.startedAt) / 1000,
          live: memory.live,
          memory,
        });
        const r = rounds.at(-1)!;
        ctx.log(
          `recovery ${round + 1}/${c.rounds}: first dispatch ${r.total.toFixed(2)} s after spawn (boot ${r.boot.toFixed(2)}, start() ${r.start.toFixed(2)}, ` +
            `then ${r.toFirstDispatch.toFixed(2)}); ${r.live} live actors, heap ${(memory.heapUsed / 2 ** 20).toFixed(0)} MiB, RSS ${(memory.rss / 2 ** 20).toFixed(0)} MiB`,
        );
      } finally {
        await proc.stop();
      }
      // The tasks this round dispatched hold their slots (RUNNING, within their timeout: no
      // agent runs here), which the next process restores: MAX_CONCURRENT_TASKS of them
      // leave it nothing to dispatch. They complete here, as if their agents had finished
      // while the orchestrator was down, so each restart finds the same situation: the
      // backlog of READY tasks and no attempt running.
      await ctx.infra.pg.query(
        `UPDATE ${env.schema}.tasks SET status = 'COMPLETED', completed_at = now() AT TIME ZONE 'UTC', deadline = NULL,
           actual_cost = 0, output = '{}'::jsonb, snapshot = NULL, version = version + 1, updated_at = now() AT TIME ZONE 'UTC'
         WHERE status = 'RUNNING'`,
      );
      await ctx.infra.pg.query(`DELETE FROM ${env.schema}.dispatch_outbox`);
    }
    const mid = [...rounds].sort((a, b) => a.total - b.total)[rounds.length >> 1]!;

    // 3. final tasks only
    await ctx.infra.pg.query(
      `UPDATE ${env.schema}.tasks SET status = 'COMPLETED', completed_at = now() AT TIME ZONE 'UTC', snapshot = NULL
       WHERE status IN ('READY', 'RUNNING')`,
    );
    await ctx.infra.redis.unlink(env.queueKey);
    const finalSeed = await seedTasks(ctx.infra, env, { idPrefix: 'fin_', count: c.finalTasks, status: 'COMPLETED', projectId, levels: c.priorityLevels });
    const finalCount = c.finalTasks + c.recoveryTasks;
    ctx.log(`memory: seeded ${c.finalTasks} COMPLETED tasks in ${finalSeed.toFixed(1)} s (${finalCount} final in all)`);
    const fin = await OrchestratorProc.start(ctx, env, 'memory-final');
    let final: MemoryResult['final'];
    try {
      const memory = await fin.proc.memory();
      final = { ...memory, tasks: finalCount, startSeconds: (fin.started.startedAt - fin.started.startAt) / 1000, seedSeconds: finalSeed };
    } finally {
      await fin.proc.stop();
    }
    return {
      baseline,
      recovery: {
        ...summarize(rounds.map((r) => r.total)),
        tasks: c.recoveryTasks,
        rounds,
        startSeconds: summarize(rounds.map((r) => r.start)),
        seedSeconds,
      },
      nonFinal: { ...mid.memory, tasks: c.recoveryTasks },
      final,
    };
  } finally {
    watch.close();
    await ctx.infra.dropEnv(env);
  }
}
