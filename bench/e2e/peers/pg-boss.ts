/**
 * The `pg-boss` peer (v12), a schema per round on the shared PostgreSQL.
 *
 * Producer: `createQueue(name, { notify: true })`, then `insert` of each chunk in bulk
 * (flat), or `flow` of each chunk's parents and children (fan-in: a parent `dependsOn` its
 * children; pg-boss unblocks it in its background flow resolver, which the worker's instance
 * runs — `supervise`, `flowIntervalSeconds` 1, the least allowed). Priorities: pg-boss
 * fetches higher first, so a job's priority is its level.
 *
 * Worker: `work(name, { batchSize: 50, burstWhenBatchFull: true, notifyPollingIntervalSeconds:
 * 0.5, pollingIntervalSeconds: 0.5 }, handler)` on an instance with `useListenNotify: true` (LISTEN/NOTIFY, opt-in in v12): the no-op handler
 * takes 50 jobs at once (`batchSize`: BENCH_CONCURRENCY), pg-boss completes the batch after it returns. Its completion is
 * not counted by the worker (the handler returns before the commit): the producer counts
 * `state = 'completed'` rows.
 */
import { PgBoss, type FlowJob, type JobInsert } from 'pg-boss';
import { fanInWork, flatWork } from '../workload.js';
import { peerApplicationName, peerSchema, type PeerContext, type PeerDriver, type PeerKind, type PeerRound, type PeerWorker, type PeerWorkerSettings } from './peer.js';

export const PGBOSS_FLOW_INTERVAL_S = 1;
/**
 * The worker's poll while NOTIFY is active (default 30 s): an insert wakes it at once, but a
 * parent the flow resolver unblocks sends no NOTIFY, so without a shorter poll the fan-in
 * round waits 30 s for it. 0.5 s is the least allowed.
 */
export const PGBOSS_NOTIFY_POLL_S = 0.5;

export function pgBossDriver(ctx: PeerContext): PeerDriver {
  const c = ctx.config;
  return {
    name: 'pg-boss',
    describe: () =>
      `pg-boss 12: insert in bulk, work with batchSize ${c.concurrency} (burstWhenBatchFull), LISTEN/NOTIFY on; ` +
      `notifyPollingIntervalSeconds ${PGBOSS_NOTIFY_POLL_S}; fan-in with flow() (flowIntervalSeconds ${PGBOSS_FLOW_INTERVAL_S}); completions counted in the database`,
    async open(kind: PeerKind, round: number): Promise<PeerRound> {
      const queueName = `${kind}_${round}`;
      const schema = peerSchema(c.runId, 'pg-boss', kind, round);
      const settings: PeerWorkerSettings = {
        peer: 'pg-boss',
        kind,
        queueName,
        concurrency: c.concurrency,
        databaseUrl: c.databaseUrl,
        schema,
        applicationName: peerApplicationName(c.runId, 'pg-boss', 'worker'),
      };
      const boss = new PgBoss({
        connectionString: c.databaseUrl,
        schema,
        application_name: peerApplicationName(c.runId, 'pg-boss', 'producer'),
        max: 4,
        supervise: false,
        schedule: false,
      });
      boss.on('error', () => undefined);
      const drop = async (): Promise<void> => void (await ctx.infra.pg.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`));
      try {
        await boss.start();
        await boss.createQueue(queueName, { notify: true });
      } catch (err) {
        await boss.stop({ graceful: false }).catch(() => undefined);
        await drop();
        throw err;
      }
      let chunks: (() => Promise<unknown>)[];
      let total: number;
      if (kind === 'flat') {
        const w = flatWork(c.n, c.eventSize, c.priorityLevels, c.seed + round);
        total = w.total;
        const inserts: JobInsert[][] = w.jobs.map((bulk) =>
          bulk.map((j) => ({ data: j.data, priority: c.priorityLevels - (j.opts.priority ?? c.priorityLevels) })),
        );
        chunks = inserts.map((jobs) => () => boss.insert(queueName, jobs));
      } else {
        const w = fanInWork(c.parents, c.children, c.parentsPerEvent, queueName);
        total = w.total;
        const flows: FlowJob[][] = w.flows.map((bulk) =>
          bulk.flatMap((parent, p) => {
            const ref = `p${(parent.data as { parent: number }).parent ?? p}`;
            const kids: FlowJob[] = (parent.children ?? []).map((child, k) => ({ ref: `${ref}c${k}`, name: queueName, data: child.data as object }));
            return [...kids, { ref, name: queueName, data: parent.data as object, dependsOn: kids.map((k) => k.ref) }];
          }),
        );
        chunks = flows.map((jobs) => () => boss.flow(jobs));
      }
      return {
        worker: settings,
        total,
        chunks: chunks.length,
        async add(i) {
          await chunks[i]!();
        },
        async countDurable() {
          const { rows } = await ctx.infra.pg.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${schema}.job WHERE state = 'completed'`);
          return rows[0]!.n;
        },
        async close() {
          await boss.stop({ graceful: false }).catch(() => undefined);
          await drop();
        },
      };
    },
  };
}

/** The worker, in the agents process. */
export async function startPgBossWorker(s: PeerWorkerSettings, onError: (err: unknown) => void): Promise<PeerWorker> {
  const boss = new PgBoss({
    connectionString: s.databaseUrl!,
    schema: s.schema!,
    application_name: s.applicationName!,
    useListenNotify: true,
    // The flow resolver runs under supervision (fan-in); maintenance is not due in a round.
    supervise: s.kind === 'deps',
    flowIntervalSeconds: PGBOSS_FLOW_INTERVAL_S,
    schedule: false,
    migrate: false,
  });
  boss.on('error', onError);
  await boss.start();
  await boss.work(
    s.queueName,
    { batchSize: s.concurrency, burstWhenBatchFull: true, pollingIntervalSeconds: PGBOSS_NOTIFY_POLL_S, notifyPollingIntervalSeconds: PGBOSS_NOTIFY_POLL_S },
    async () => undefined,
  );
  return {
    completed: () => ({ completed: 0, lastCompletedAt: 0 }),
    close: () => boss.stop({ graceful: true, timeout: 10_000 }),
  };
}
