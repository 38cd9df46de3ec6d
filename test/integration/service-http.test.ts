import { jetstream } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProjectStatusMessage } from '../../src/domain/messages.js';
import { newProjectId, PIPELINE_TASKS, projectRow, publishDecision, publishProjectCreated } from '../helpers/e2e-project.js';
import { TestNatsServer } from '../helpers/nats-server.js';
import { PrivatePostgres } from '../helpers/private-postgres.js';
import { PrivateRedis } from '../helpers/private-redis.js';
import { NatsWatch, until } from '../helpers/nats-watch.js';
import { startAgents, startService, stopAll, type ManagedProcess } from '../helpers/service-process.js';
import { createServiceScope, type ServiceScope } from '../helpers/service-scope.js';

/**
 * The operator's HTTP surface of `orchestrator start` (real PostgreSQL, Redis and NATS,
 * under this file's own names; HTTP on a free port): /livez, /readyz with its checks, and
 * /metrics scraped while a whole project runs, its counters compared with the audit log.
 * Then /readyz of a service whose NATS user may not subscribe to `<prefix>.control.>`, and
 * of one whose (private) Redis, then PostgreSQL, go away and come back.
 */

let scope: ServiceScope;
let watch: NatsWatch;
const processes: (ManagedProcess | undefined)[] = [];

beforeAll(async () => {
  scope = await createServiceScope({ AGENT_DURATION_MS: '20' });
  const p = scope.prefix;
  watch = await NatsWatch.start(scope.nc, [`${p}.projects.>`, `${p}.approvals.requested.>`]);
}, 60_000);

afterAll(async () => {
  await stopAll(processes);
  watch?.close();
  await scope?.cleanup();
}, 60_000);

/** The URL the service printed it serves HTTP on. */
function httpUrl(service: ManagedProcess): string {
  const m = / serving HTTP on (http:\/\/\S+) /.exec(service.stdout);
  if (!m) throw new Error(`no HTTP address printed\n${service.describe()}`);
  return m[1]!;
}

/** One scrape, as samples: `name{labels}` → value. */
async function scrape(url: string): Promise<Map<string, number>> {
  const res = await fetch(`${url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/plain');
  const samples = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

/** The sum of the samples of `name` whose labels include every `label="value"` given. */
function sum(samples: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const [key, value] of samples) {
    const brace = key.indexOf('{');
    if ((brace === -1 ? key : key.slice(0, brace)) !== name) continue;
    if (Object.entries(labels).every(([k, v]) => key.includes(`${k}="${v}"`))) total += value;
  }
  return total;
}

async function readyz(url: string): Promise<{ status: number; text: string; json: { status: string; failing: string[] } }> {
  const text = await fetch(`${url}/readyz`);
  const json = await fetch(`${url}/readyz`, { headers: { accept: 'application/json' } });
  return { status: text.status, text: await text.text(), json: (await json.json()) as { status: string; failing: string[] } };
}

describe('orchestrator start over HTTP', () => {
  it('is live and ready, and its metrics follow a whole project', async () => {
    const p = scope.prefix;
    const service = await startService(scope.env);
    processes.push(service);
    const url = httpUrl(service);

    const live = await fetch(`${url}/livez`);
    expect(live.status).toBe(200);
    const ready = await readyz(url);
    expect(ready.status, ready.text).toBe(200);
    for (const check of ['postgres', 'migrations', 'redis', 'nats', 'inbound_consumer', 'control_subscription', 'query_subscription', 'orchestrator']) {
      expect(ready.text).toContain(`[+]${check} ok`);
    }
    expect(ready.json).toMatchObject({ status: 'ready', failing: [] });

    // Before any work: the families are there, at zero; the default process metrics too.
    const before = await scrape(url);
    expect(sum(before, 'lap_task_transitions_total')).toBe(0);
    expect(before.get('lap_tasks{status="COMPLETED"}')).toBe(0);
    expect(before.get('lap_queue_depth')).toBe(0);
    expect(before.get('lap_approvals_pending')).toBe(0);
    expect(before.has('process_cpu_user_seconds_total')).toBe(true);
    expect(before.has('nodejs_heap_size_used_bytes')).toBe(true);
    expect([...before.keys()].some((k) => /task_id|project_id/.test(k))).toBe(false);

    const agents = await startAgents(scope.env);
    processes.push(agents);
    const projectId = newProjectId();
    await publishProjectCreated(scope.nc, p, projectId);
    // One message that is not JSON: dead-lettered before any handler.
    await jetstream(scope.nc).publish(`${p}.events.${newProjectId()}.SCENE_WRITTEN`, 'not json');

    // The first checkpoint: the script is written, the request waits for a reviewer.
    const first = await watch.waitFor<{ approvalId: string }>(`${p}.approvals.requested.${projectId}`, () => true, `the first approval request\n${service.describe()}`);
    const waiting = await scrape(url);
    expect(waiting.get('lap_approvals_pending')).toBe(1);
    expect(sum(waiting, 'lap_task_transitions_total', { task_type: 'WRITE_SCRIPT', from: 'RUNNING', to: 'COMPLETED' })).toBe(1);
    await until(async () => sum(await scrape(url), 'lap_inbound_messages_total', { kind: 'event', outcome: 'handled' }) === 1, 'PROJECT_CREATED counted as handled');
    await until(async () => sum(await scrape(url), 'lap_dead_letters_total', { source: 'message', reason: 'ERR_NOT_JSON' }) === 1, 'the bad message dead-lettered');

    // The review console of the same process shows the request with the example agents' script.
    const inbox = (await (await fetch(`${url}/api/inbox`)).json()) as { approvalId: string; checkpoint: string; content: { kind: string; script?: string } }[];
    expect(inbox.find((r) => r.approvalId === first.body.approvalId)).toMatchObject({ checkpoint: 'SCENE_WRITTEN', content: { kind: 'script' } });
    expect(inbox.find((r) => r.approvalId === first.body.approvalId)!.content.script).toContain('FADE IN');

    // A reviewer approves every request until the project completes.
    const decided = new Set<string>([first.body.approvalId]);
    await publishDecision(scope.nc, p, projectId, first.body.approvalId);
    await until(async () => {
      for (const { body } of watch.on<{ approvalId: string }>(`${p}.approvals.requested.${projectId}`)) {
        if (decided.has(body.approvalId)) continue;
        decided.add(body.approvalId);
        await publishDecision(scope.nc, p, projectId, body.approvalId);
      }
      return watch.on<ProjectStatusMessage>(`${p}.projects.${projectId}`, (s) => s.state === 'completed').length > 0;
    }, `project ${projectId} completed\n${service.describe()}`, 120_000);

    // The console's project page: the graph holds every task, the checkpoints are the reviewer's, a keyframe is an image.
    const page = (await (await fetch(`${url}/api/projects/${projectId}`)).json()) as {
      project: { state: string };
      graph: { nodes: { taskId: string; taskType: string }[] };
      checkpoints: { status: string; by: string }[];
    };
    expect(page.project.state).toBe('completed');
    expect(page.graph.nodes).toHaveLength(Object.values(PIPELINE_TASKS).reduce((a, b) => a + b, 0));
    expect(page.checkpoints.map((c) => `${c.status} by ${c.by}`)).toEqual(Array(4).fill('approved by e2e-reviewer'));
    const keyframe = page.graph.nodes.find((n) => n.taskType === 'GENERATE_KEYFRAME')!;
    const task = (await (await fetch(`${url}/api/tasks/${keyframe.taskId}`)).json()) as { artifacts: { mediaType: string; href: string | null }[] };
    expect(task.artifacts[0]).toMatchObject({ mediaType: 'image/svg+xml', href: expect.stringMatching(/^data:image\/svg\+xml;base64,/) });

    // The counters moved as the run did: they match the audit log, written by this one instance.
    const { rows: audit } = await scope.sql.query<{ task_type: string; from_status: string | null; to_status: string; n: number }>(
      `SELECT t.task_type, a.from_status, a.to_status, count(*)::int AS n
         FROM task_transitions a JOIN tasks t USING (task_id) GROUP BY 1, 2, 3`,
    );
    const completedTasks = Object.values(PIPELINE_TASKS).reduce((a, b) => a + b, 0);
    let after = await scrape(url);
    // The last settles and reactions may still be finishing: the counters catch up with the audit log, the leases are given back.
    await until(async () => {
      after = await scrape(url);
      return sum(after, 'lap_task_transitions_total') >= audit.reduce((n, r) => n + r.n, 0) && after.get('lap_leases_held') === 0 && after.get('lap_reactions_pending') === 0;
    }, 'the counters caught up with the audit log');
    for (const r of audit) {
      expect(sum(after, 'lap_task_transitions_total', { task_type: r.task_type, from: r.from_status ?? 'none', to: r.to_status }), `${r.task_type} ${r.from_status} → ${r.to_status}`).toBe(r.n);
    }
    expect(sum(after, 'lap_task_transitions_total', { to: 'COMPLETED' })).toBe(completedTasks);
    expect(after.get('lap_tasks{status="COMPLETED"}')).toBe(completedTasks);
    expect(after.get('lap_tasks{status="RUNNING"}')).toBe(0);
    expect(after.get('lap_queue_depth')).toBe(0);
    expect(after.get('lap_approvals_pending')).toBe(0);
    expect(after.get('lap_outbox_backlog')).toBe(0);
    expect(after.get('lap_leases_held')).toBe(0);
    const dispatched = sum(after, 'lap_task_transitions_total', { from: 'READY', to: 'RUNNING' });
    expect(dispatched).toBe(completedTasks);
    // Every READY here was dispatched here: one wait each; every attempt ended completed.
    expect(sum(after, 'lap_task_ready_wait_seconds_count')).toBe(dispatched);
    expect(sum(after, 'lap_task_attempt_duration_seconds_count', { outcome: 'completed' })).toBe(completedTasks);
    expect(sum(after, 'lap_task_attempt_duration_seconds_count', { task_type: 'GENERATE_KEYFRAME', outcome: 'completed' })).toBe(3);
    expect(sum(after, 'lap_approval_wait_seconds_count', { decision: 'approved' })).toBe(decided.size);
    expect(sum(after, 'lap_inbound_messages_total', { kind: 'decision', outcome: 'handled' })).toBe(decided.size);
    expect(sum(after, 'lap_inbound_messages_total', { kind: 'invalid', outcome: 'dead_lettered' })).toBe(1);
    expect(sum(after, 'lap_inbound_messages_total', { kind: 'results', outcome: 'handled' }) + sum(after, 'lap_inbound_messages_total', { kind: 'result', outcome: 'handled' })).toBeGreaterThan(0);
    expect(sum(after, 'lap_reactions_total', { outcome: 'ok' })).toBeGreaterThan(sum(waiting, 'lap_reactions_total', { outcome: 'ok' }));
    const row = await projectRow(scope.sql, projectId);
    expect(after.get('lap_budget_spent')).toBeCloseTo(row!.spent, 6);
    expect(after.get('lap_budget_reserved')).toBeCloseTo(row!.reserved, 6);
    expect(sum(after, 'lap_task_transitions_total')).toBeGreaterThan(sum(waiting, 'lap_task_transitions_total'));

    // Stopped: the exit is clean and the port closed.
    expect((await service.stop('SIGTERM')).code).toBe(0);
    await expect(fetch(`${url}/livez`)).rejects.toThrow();
  }, 180_000);
});

describe('readiness with a NATS user that may not subscribe to the control subject', () => {
  let nats: TestNatsServer | undefined;
  let own: ServiceScope | undefined;

  afterAll(async () => {
    await own?.cleanup().catch(() => undefined);
    await nats?.dispose();
  }, 60_000);

  it('answers 503 naming control_subscription, while /livez stays 200', async () => {
    own = await createServiceScope();
    const prefix = own.prefix;
    nats = await TestNatsServer.start({
      config: `authorization {
  users = [
    { user: orch, password: orch-secret, permissions: { publish: ">", subscribe: { allow: ">", deny: "${prefix}.control.>" } } }
  ]
}
`,
    });
    const service = await startService({ ...own.env, NATS_URL: nats.url, NATS_USER: 'orch', NATS_PASSWORD: 'orch-secret' }, 'orchestrator (no control)');
    processes.push(service);
    const url = httpUrl(service);
    expect((await fetch(`${url}/livez`)).status).toBe(200);
    const ready = await readyz(url);
    expect(ready.status, ready.text).toBe(503);
    expect(ready.json.status).toBe('not ready');
    expect(ready.json.failing).toEqual(['control_subscription']);
    expect(ready.text).toMatch(/\[-\]control_subscription failed: .*control\.>.*[Pp]ermissions [Vv]iolation/);
    expect(ready.text).toContain('[+]inbound_consumer ok');
    expect(ready.text).toContain('[+]postgres ok');
    expect(ready.text).not.toContain('orch-secret');
    expect((await service.stop('SIGTERM')).code).toBe(0);
  }, 120_000);
});

describe('readiness when Redis or PostgreSQL goes away', () => {
  let pg: PrivatePostgres | undefined;
  let redis: PrivateRedis | undefined;
  let own: ServiceScope | undefined;

  afterAll(async () => {
    await own?.cleanup().catch(() => undefined);
    await pg?.dispose();
    await redis?.stop();
  }, 60_000);

  it('answers 503 naming the server while it is down (and the migrations with PostgreSQL), and 200 once it is back', async () => {
    pg = await PrivatePostgres.start();
    redis = await PrivateRedis.start();
    own = await createServiceScope();
    const env = { ...own.env, DATABASE_URL: pg.url, REDIS_URL: redis.url };
    delete (env as Record<string, string | undefined>).DATABASE_SCHEMA;
    const service = await startService(env, 'orchestrator (private PostgreSQL and Redis)');
    processes.push(service);
    const url = httpUrl(service);
    expect((await readyz(url)).status).toBe(200);

    await redis.stop();
    const noRedis = await readyz(url);
    expect(noRedis.status, noRedis.text).toBe(503);
    expect(noRedis.json.failing).toEqual(['redis']);
    expect(noRedis.text).toMatch(/\[-\]redis failed: /);
    await redis.restartEmpty();
    await until(async () => (await readyz(url)).status === 200, `ready again after Redis\n${service.describe()}`);

    await pg.stop();
    const down = await readyz(url);
    expect(down.status, down.text).toBe(503);
    expect(down.json.failing).toEqual(expect.arrayContaining(['postgres', 'migrations']));
    expect(down.json.failing).not.toContain('redis');
    expect(down.text).toMatch(/\[-\]postgres failed: /);
    expect((await fetch(`${url}/livez`)).status).toBe(200);
    // The stored-state gauges are left out while their source cannot be read; the scrape still answers.
    const scraped = await scrape(url);
    expect(sum(scraped, 'lap_metrics_collect_errors_total', { source: 'postgres' })).toBeGreaterThanOrEqual(1);

    await pg.startAgain();
    await until(async () => (await readyz(url)).status === 200, `ready again\n${service.describe()}`);
    expect((await service.stop('SIGTERM')).code).toBe(0);
  }, 120_000);
});
