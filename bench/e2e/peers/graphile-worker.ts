/**
 * The `graphile-worker` peer (0.18), a schema per round on the shared PostgreSQL, with its
 * documented batching (https://worker.graphile.org/docs/performance#batching):
 * `preset.worker.localQueue` (the pool fetches and locks `size` jobs at once) and
 * `completeJobBatchDelay` (completions of that many ms are written together), and
 * `NO_LOG_SUCCESS=1` (set for the agents process: no log line per job).
 *
 * Producer: `WorkerUtils.addJobs` of each chunk (priority: lower first in graphile-worker,
 * the same numbers as BullMQ's). graphile-worker deletes a job when it completes, and its
 * worker reports the job done before that commit (completions wait up to
 * `completeJobBatchDelay` to be batched), so the producer counts durable completions as
 * the jobs added less the rows left. It has no dependencies between jobs: no fan-in round.
 */
import { Logger, makeWorkerUtils, run, type Runner } from 'graphile-worker';
import { flatWork } from '../workload.js';
import { peerApplicationName, peerSchema, withApplicationName, type PeerContext, type PeerDriver, type PeerKind, type PeerRound, type PeerWorker, type PeerWorkerSettings } from './peer.js';

export const GW_LOCAL_QUEUE_SIZE = 500;
export const GW_COMPLETE_JOB_BATCH_DELAY_MS = 10;
const TASK = 'noop';

export function graphileWorkerDriver(ctx: PeerContext): PeerDriver {
  const c = ctx.config;
  return {
    name: 'graphile-worker',
    noFanIn: 'graphile-worker 0.18 has no dependencies between jobs (no flows)',
    describe: () =>
      `graphile-worker 0.18: addJobs in bulk, concurrentJobs ${c.concurrency}, localQueue.size ${GW_LOCAL_QUEUE_SIZE}, ` +
      `completeJobBatchDelay ${GW_COMPLETE_JOB_BATCH_DELAY_MS} ms, NO_LOG_SUCCESS=1; completions counted in the database`,
    async open(kind: PeerKind, round: number): Promise<PeerRound> {
      if (kind !== 'flat') throw new Error(this.noFanIn);
      const queueName = `${kind}_${round}`;
      const schema = peerSchema(c.runId, 'graphile-worker', kind, round);
      const settings: PeerWorkerSettings = {
        peer: 'graphile-worker',
        kind,
        queueName,
        concurrency: c.concurrency,
        databaseUrl: c.databaseUrl,
        schema,
        applicationName: peerApplicationName(c.runId, 'graphile-worker', 'worker'),
      };
      const utils = await makeWorkerUtils({
        connectionString: withApplicationName(c.databaseUrl, peerApplicationName(c.runId, 'graphile-worker', 'producer')),
        schema,
        logger: quietLogger,
      });
      const drop = async (): Promise<void> => void (await ctx.infra.pg.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`));
      try {
        await utils.migrate();
      } catch (err) {
        await utils.release();
        await drop();
        throw err;
      }
      const w = flatWork(c.n, c.eventSize, c.priorityLevels, c.seed + round);
      const specs = w.jobs.map((bulk) => bulk.map((j) => ({ identifier: TASK, payload: j.data, priority: j.opts.priority ?? 0 })));
      let added = 0;
      return {
        worker: settings,
        total: w.total,
        chunks: specs.length,
        async add(i) {
          await utils.addJobs(specs[i]!);
          added += specs[i]!.length;
        },
        async countDurable() {
          const before = added;
          const { rows } = await ctx.infra.pg.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${schema}._private_jobs`);
          return before - rows[0]!.n;
        },
        async close() {
          await utils.release();
          await drop();
        },
      };
    },
  };
}

/** graphile-worker's logger, errors and warnings only. */
const quietLogger = new Logger(() => (level, message) => {
  if (level === 'error' || level === 'warning') console.error(`graphile-worker ${level}: ${message}`);
});

/** The worker, in the agents process (NO_LOG_SUCCESS=1 in its environment). */
export async function startGraphileWorker(s: PeerWorkerSettings): Promise<PeerWorker> {
  const runner: Runner = await run({
    taskList: { [TASK]: async () => undefined },
    noHandleSignals: true,
    logger: quietLogger,
    preset: {
      worker: {
        connectionString: withApplicationName(s.databaseUrl!, s.applicationName!),
        schema: s.schema!,
        concurrentJobs: s.concurrency,
        localQueue: { size: GW_LOCAL_QUEUE_SIZE },
        completeJobBatchDelay: GW_COMPLETE_JOB_BATCH_DELAY_MS,
      },
    },
  });
  return {
    completed: () => ({ completed: 0, lastCompletedAt: 0 }),
    close: () => runner.stop(),
  };
}
