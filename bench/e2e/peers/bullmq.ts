/**
 * The BullMQ 6 peers, one code path, three backends:
 *
 * - `bullmq-redis`: the shared Redis (no persistence), the reference — today's BullMQ side;
 * - `bullmq-redis-aof`: a private redis-server with `--appendonly yes --appendfsync always`;
 * - `bullmq-pg`: BullMQ's PostgreSQL backend (`withBackend(createPostgresBackend)`), one
 *   schema per round on the shared PostgreSQL.
 *
 * Flat: `Queue.addBulk` of the workload's chunks; fan-in: `FlowProducer.addBulk`. The
 * Worker (concurrency 50, no-op processor) counts its `completed` events: BullMQ emits one
 * after the job's move to completed returned — on Redis its reply (with `appendfsync
 * always`, after the fsync), on PostgreSQL the commit — so they are durable when counted.
 * Completed jobs are kept (no `removeOnComplete`), as the orchestrator keeps its tasks.
 */
import { createPostgresBackend, FlowProducer, Queue, Worker, withBackend, type Job } from 'bullmq';
import type { PeerName } from '../config.js';
import { redisOptions } from '../infra.js';
import { wallMs } from '../stats.js';
import { fanInWork, flatWork } from '../workload.js';
import { peerApplicationName, peerSchema, type PeerContext, type PeerDriver, type PeerKind, type PeerRound, type PeerWorker, type PeerWorkerSettings } from './peer.js';

type BullPeer = Extract<PeerName, 'bullmq-redis' | 'bullmq-redis-aof' | 'bullmq-pg'>;

const pgClasses = withBackend(createPostgresBackend);

/** Producers and Worker of one backend, with the same surface. */
interface Classes {
  queue(name: string): Queue;
  flows(): FlowProducer;
  worker(name: string, processor: (job: Job) => Promise<void>, concurrency: number): Worker;
}

function redisClasses(s: Pick<PeerWorkerSettings, 'redis' | 'prefix'>): Classes {
  const connection = s.redis!;
  const prefix = s.prefix!;
  return {
    queue: (name) => new Queue(name, { connection, prefix }),
    flows: () => new FlowProducer({ connection, prefix }),
    worker: (name, processor, concurrency) => new Worker(name, processor, { connection, prefix, concurrency }),
  };
}

/** `migrate`: the producer creates the round's schema (BullMQ's migrations); the worker finds it. */
function postgresClasses(s: Pick<PeerWorkerSettings, 'databaseUrl' | 'schema' | 'applicationName'>, max: number, migrate: boolean): Classes {
  const connection = { connectionString: s.databaseUrl!, schema: s.schema!, application_name: s.applicationName!, max, migrate };
  // withBackend's classes are typed with the backend; the bench uses the common surface only.
  return {
    queue: (name) => new pgClasses.Queue(name, { connection }) as unknown as Queue,
    flows: () => new pgClasses.FlowProducer({ connection }) as unknown as FlowProducer,
    worker: (name, processor, concurrency) => new pgClasses.Worker(name, processor, { connection, concurrency }) as unknown as Worker,
  };
}

function classesOf(s: PeerWorkerSettings, max: number, migrate = false): Classes {
  return s.peer === 'bullmq-pg' ? postgresClasses(s, max, migrate) : redisClasses(s);
}

export function bullmqDriver(ctx: PeerContext, name: BullPeer): PeerDriver {
  const c = ctx.config;
  return {
    name,
    describe: () =>
      name === 'bullmq-redis'
        ? 'BullMQ on the shared Redis, no persistence'
        : name === 'bullmq-redis-aof'
          ? 'BullMQ on a private redis-server, --appendonly yes --appendfsync always'
          : 'BullMQ with its PostgreSQL backend (createPostgresBackend), a schema per round',
    async open(kind: PeerKind, round: number): Promise<PeerRound> {
      const queueName = `${kind}_${round}`;
      const settings: PeerWorkerSettings = { peer: name, kind, queueName, concurrency: c.concurrency };
      let cleanup: () => Promise<void>;
      if (name === 'bullmq-pg') {
        settings.databaseUrl = c.databaseUrl;
        settings.schema = peerSchema(c.runId, name, kind, round);
        settings.applicationName = peerApplicationName(c.runId, name, 'worker');
        const schema = settings.schema;
        cleanup = async () => void (await ctx.infra.pg.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`));
      } else if (name === 'bullmq-redis-aof') {
        const server = await ctx.aofRedis();
        await server.flush();
        settings.redis = redisOptions(server.url);
        settings.prefix = 'bench';
        cleanup = () => server.flush();
      } else {
        settings.redis = redisOptions(c.redisUrl);
        settings.prefix = ctx.infra.bullPrefix;
        cleanup = async () => void (await ctx.infra.deleteRedisKeys(`${settings.prefix}:${queueName}:*`));
      }
      const classes = classesOf({ ...settings, ...(settings.applicationName ? { applicationName: peerApplicationName(c.runId, name, 'producer') } : {}) }, 4, true);
      const flat = kind === 'flat' ? flatWork(c.n, c.eventSize, c.priorityLevels, c.seed + round) : null;
      const fanIn = kind === 'deps' ? fanInWork(c.parents, c.children, c.parentsPerEvent, queueName) : null;
      const queue = classes.queue(queueName);
      const flows = fanIn ? classes.flows() : null;
      try {
        await queue.waitUntilReady();
        await flows?.waitUntilReady();
      } catch (err) {
        await flows?.close();
        await queue.close();
        await cleanup();
        throw err;
      }
      return {
        worker: settings,
        total: flat?.total ?? fanIn!.total,
        chunks: flat?.jobs.length ?? fanIn!.flows.length,
        async add(i) {
          if (flat) await queue.addBulk(flat.jobs[i]!);
          else await flows!.addBulk(fanIn!.flows[i]!);
        },
        async close() {
          await flows?.close();
          await queue.close();
          await cleanup();
        },
      };
    },
  };
}

/** The Worker, in the agents process. `onJob` sees each job's data (the latency figure's `sentAt`). */
export async function startBullmqWorker(s: PeerWorkerSettings, onJob: (data: unknown) => void, onError: (err: unknown) => void): Promise<PeerWorker> {
  let completed = 0;
  let lastCompletedAt = 0;
  const worker = classesOf(s, 10).worker(s.queueName, async (job) => void onJob(job.data), s.concurrency);
  worker.on('completed', () => {
    completed++;
    lastCompletedAt = wallMs();
  });
  worker.on('error', onError);
  await worker.waitUntilReady();
  return {
    completed: () => ({ completed, lastCompletedAt }),
    close: () => worker.close(true),
  };
}
