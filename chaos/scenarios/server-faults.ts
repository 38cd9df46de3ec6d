import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { newProjectId } from '../../test/helpers/e2e-project.js';
import { TestNatsServer } from '../../test/helpers/nats-server.js';
import { PrivatePostgres } from '../../test/helpers/private-postgres.js';
import { PrivateRedis } from '../../test/helpers/private-redis.js';
import { expectThat, type Scenario, type ScenarioResult } from '../scenario.js';
import { firstSeenAfter, World, type PrivateServers } from '../world.js';

const run = promisify(execFile);
const SHOTS = 300;
const TASKS = 2 * SHOTS + 9;

/**
 * A project on private servers with a fault injected once a third of it is done: the
 * service must ride it out (never exit), and the project complete with the invariants
 * holding. `fault` returns when the server is back, with the figure's moment.
 */
async function serverFault(
  servers: PrivateServers,
  name: string,
  fault: (world: World, log: (line: string) => void) => Promise<number>,
  figure: { label: string; subject: 'tasks' | 'status' },
  log: (line: string) => void,
): Promise<ScenarioResult> {
  const world = await World.create({ shots: SHOTS, servers });
  try {
    await world.startAgents();
    const projectId = newProjectId();
    const orchestrator = await world.startOrchestrator(name);
    await world.createProject(projectId);
    await world.until(async () => (await world.completions(projectId)) >= TASKS / 3, `${Math.round(TASKS / 3)} completions`, 300_000, 50);
    const backAt = await fault(world, log);
    const next =
      figure.subject === 'tasks'
        ? await firstSeenAfter<{ projectId: string }>(world, `${world.prefix}.tasks.`, backAt, (d) => d.projectId === projectId, 'a dispatch after the fault')
        : await firstSeenAfter<{ to: string }>(world, `${world.prefix}.status.${projectId}.`, backAt, (s) => s.to === 'COMPLETED', 'a completion after the fault');
    await world.projectDone(projectId, 600_000);
    const counts = await world.statusCounts(projectId);
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    return {
      did: `${total} tasks, the fault after ${Math.round(TASKS / 3)} completions`,
      checks: [
        expectThat('the service kept running', orchestrator.running, orchestrator.running ? 'running' : orchestrator.describe().slice(-500)),
        expectThat('project completed', (await world.projectState(projectId)) === 'completed', JSON.stringify(counts)),
        expectThat(`${TASKS} tasks`, total === TASKS, `${total} tasks`),
        ...(await world.invariants(projectId)),
      ],
      figure: { label: figure.label, value: (next - backAt) / 1000, unit: 's' },
    };
  } finally {
    await world.close();
  }
}

/** Scenario 2: PostgreSQL `pg_ctl restart -m immediate` mid-run. Figure: PostgreSQL back → the next completion. */
export function postgresCrash(): Scenario {
  return {
    id: 'postgres-crash-restart',
    title: 'PostgreSQL restart -m immediate mid-run',
    async run(log) {
      const postgres = await PrivatePostgres.start();
      try {
        return await serverFault(
          { postgres },
          'chaos-2',
          async () => {
            await postgres.crashRestart();
            log('PostgreSQL crashed and restarted');
            return Date.now();
          },
          { label: 'PostgreSQL back → next completion', subject: 'status' },
          log,
        );
      } finally {
        await postgres.dispose();
      }
    },
  };
}

/** Scenario 3: nats-server `kill -9`, down `downMs`, started again on the same store. Figure: NATS back → the next dispatch. */
export function natsKill(downMs: number): Scenario {
  return {
    id: `nats-kill-${downMs / 1000}s`,
    title: `nats-server kill -9, down ${downMs / 1000} s`,
    async run(log) {
      const nats = await TestNatsServer.start();
      try {
        return await serverFault(
          { nats },
          'chaos-3',
          async () => {
            await nats.kill();
            await new Promise((r) => setTimeout(r, downMs));
            await nats.startAgain();
            log(`NATS killed, back after ${downMs / 1000} s`);
            return Date.now();
          },
          { label: 'NATS back → next dispatch', subject: 'tasks' },
          log,
        );
      } finally {
        await nats.dispose();
      }
    },
  };
}

/**
 * Scenario 4: Redis `SHUTDOWN NOSAVE` mid-run, started again empty: the queue is rebuilt
 * from PostgreSQL and the fencing counter lifted above every stored token (I5). Figure:
 * Redis back → the next dispatch.
 */
export function redisLost(): Scenario {
  return {
    id: 'redis-shutdown-nosave',
    title: 'Redis SHUTDOWN NOSAVE, back empty',
    async run(log) {
      const redis = await PrivateRedis.start();
      try {
        return await serverFault(
          { redis },
          'chaos-4',
          async () => {
            await run('redis-cli', ['-p', String(redis.port), 'SHUTDOWN', 'NOSAVE']).catch(() => undefined);
            await redis.restartEmpty();
            log('Redis shut down without saving, back empty');
            return Date.now();
          },
          { label: 'Redis back → next dispatch', subject: 'tasks' },
          log,
        );
      } finally {
        await redis.stop();
      }
    },
  };
}
