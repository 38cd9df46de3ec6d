/**
 * A peer of the throughput figures: another job queue doing the same work as the
 * orchestrator (bench/e2e/workload.ts), side by side in the same run.
 *
 * Each peer has two halves: the producer, in the benchmark process (it creates the round's
 * queue, schema or keys, adds the jobs, and for the peers whose worker reports a job done
 * before it is durable, counts completions in the database), and the worker, in the agents
 * process (bench/e2e/agents-proc.ts hosts it on the `startPeer` command), so that the CPU
 * of each half is measured as the orchestrator's agents and status watcher are.
 */
import type { BenchConfig, PeerName } from '../config.js';
import type { Infra, RedisConnectionOptions } from '../infra.js';
import type { PrivateRedis } from './private-redis.js';

export type PeerKind = 'flat' | 'deps';

/** What the agents process needs to start a peer's worker for one round (sent over IPC: plain data). */
export interface PeerWorkerSettings {
  peer: PeerName;
  kind: PeerKind;
  queueName: string;
  /** Jobs in the worker's processor at once. */
  concurrency: number;
  /** BullMQ on Redis: the server and the key prefix. */
  redis?: RedisConnectionOptions;
  prefix?: string;
  /** PostgreSQL peers: the database, the round's schema and the connections' application_name (CpuMeter finds the backends by it). */
  databaseUrl?: string;
  schema?: string;
  applicationName?: string;
}

/** A peer's worker in the agents process. */
export interface PeerWorker {
  /** Jobs its completion callback saw, and when the last was (wall clock ms); 0 where the database counts. */
  completed(): { completed: number; lastCompletedAt: number };
  close(): Promise<void>;
}

/** One round of a peer, producer side. */
export interface PeerRound {
  worker: PeerWorkerSettings;
  total: number;
  /** Calls of `add`: one per chunk of the work (adds of `eventSize` jobs, or of `parentsPerEvent` flows). */
  chunks: number;
  add(chunk: number): Promise<void>;
  /**
   * Completions durable in the database now (one cheap COUNT). Present for the peers whose
   * worker reports a job done before its completion is committed; absent where the
   * worker's completion event follows the write (BullMQ: the Redis reply, the PostgreSQL commit).
   */
  countDurable?: () => Promise<number>;
  /** Removes what the round created (its queue's keys, its schema). */
  close(): Promise<void>;
}

/** What the producers get: the settings, the shared servers, the private ones (started on first use). */
export interface PeerContext {
  config: BenchConfig;
  infra: Infra;
  /** The `bullmq-redis-aof` peer's redis-server. */
  aofRedis(): Promise<PrivateRedis>;
}

export interface PeerDriver {
  name: PeerName;
  /** Why the peer has no fan-in round (no flows or dependencies); absent: it has one. */
  noFanIn?: string;
  /** One line on its configuration, for the report. */
  describe(): string;
  open(kind: PeerKind, round: number): Promise<PeerRound>;
}

/** application_name of a peer's connections in a run: CpuMeter counts the backends carrying it. */
export function peerApplicationName(runId: string, peer: PeerName, side: 'producer' | 'worker'): string {
  return `bench-peer-${runId}-${peer}-${side}`;
}

/** The schema of a peer's round (`bench_e2e_<run>_…`: removed with the run's other schemas, also after a crash). */
export function peerSchema(runId: string, peer: PeerName, kind: PeerKind, round: number): string {
  return `bench_e2e_${runId}_peer_${peer.replace(/[^a-z0-9]/g, '')}_${kind}${round}`;
}

/** A connection string with an application_name (pg reads it from the URL). */
export function withApplicationName(url: string, name: string): string {
  const u = new URL(url);
  u.searchParams.set('application_name', name);
  return u.toString();
}
