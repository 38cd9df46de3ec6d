/**
 * The peers of the throughput figures (bench/e2e/peers/peer.ts says what a peer is), and
 * the private servers they need for a run.
 */
import { join } from 'node:path';
import type { PeerName } from '../config.js';
import type { CpuMeter } from '../cpu.js';
import type { Infra } from '../infra.js';
import type { BenchConfig } from '../config.js';
import { bullmqDriver } from './bullmq.js';
import { graphileWorkerDriver } from './graphile-worker.js';
import { pgBossDriver } from './pg-boss.js';
import type { PeerContext, PeerDriver } from './peer.js';
import { PrivateRedis } from './private-redis.js';

export type { PeerDriver, PeerRound } from './peer.js';

/** The private servers of a run's peers: started on first use, stopped by `stop()` (also after a failure). */
export class PeerServers {
  private aof: Promise<PrivateRedis> | null = null;

  constructor(
    private readonly outDir: string,
    private readonly cpu: CpuMeter | null,
  ) {}

  /** `bullmq-redis-aof`'s redis-server: every write fsynced before its reply. */
  aofRedis(): Promise<PrivateRedis> {
    this.aof ??= PrivateRedis.start(join(this.outDir, 'redis-aof'), ['--appendonly', 'yes', '--appendfsync', 'always']).then((server) => {
      if (server.pid !== undefined) this.cpu?.track(server.pid, 'redis');
      return server;
    });
    return this.aof;
  }

  async stop(): Promise<void> {
    const aof = this.aof;
    this.aof = null;
    if (!aof) return;
    const server = await aof.catch(() => null);
    if (!server) return;
    if (server.pid !== undefined) this.cpu?.track(server.pid, null);
    await server.stop();
  }
}

export function peerDrivers(config: BenchConfig, infra: Infra, servers: PeerServers): Map<PeerName, PeerDriver> {
  const ctx: PeerContext = { config, infra, aofRedis: () => servers.aofRedis() };
  const all: Record<PeerName, () => PeerDriver> = {
    'bullmq-redis': () => bullmqDriver(ctx, 'bullmq-redis'),
    'bullmq-redis-aof': () => bullmqDriver(ctx, 'bullmq-redis-aof'),
    'bullmq-pg': () => bullmqDriver(ctx, 'bullmq-pg'),
    'graphile-worker': () => graphileWorkerDriver(ctx),
    'pg-boss': () => pgBossDriver(ctx),
  };
  return new Map(config.peers.map((p) => [p, all[p]()]));
}
