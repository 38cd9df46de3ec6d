/** The peers' workers, started by the agents process (bench/e2e/agents-proc.ts) on `startPeer`. */
import { startBullmqWorker } from './bullmq.js';
import { startGraphileWorker } from './graphile-worker.js';
import type { PeerWorker, PeerWorkerSettings } from './peer.js';
import { startPgBossWorker } from './pg-boss.js';

export type { PeerWorker, PeerWorkerSettings } from './peer.js';

export function startPeerWorker(s: PeerWorkerSettings, onJob: (data: unknown) => void, onError: (err: unknown) => void): Promise<PeerWorker> {
  switch (s.peer) {
    case 'bullmq-redis':
    case 'bullmq-redis-aof':
    case 'bullmq-pg':
      return startBullmqWorker(s, onJob, onError);
    case 'graphile-worker':
      return startGraphileWorker(s);
    case 'pg-boss':
      return startPgBossWorker(s, onError);
  }
}
