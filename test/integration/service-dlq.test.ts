import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeadLetterMessage, ProjectStatusMessage, TaskDispatch, TaskStatusMessage } from '../../src/domain/messages.js';
import { countByType, newProjectId, PIPELINE_TASKS, publishDecision, publishProjectCreated, tasksOf, transitionsOf } from '../helpers/e2e-project.js';
import { NatsWatch, until } from '../helpers/nats-watch.js';
import { startAgents, startService, stopAll, type ManagedProcess } from '../helpers/service-process.js';
import { createServiceScope, type ServiceScope } from '../helpers/service-scope.js';

/**
 * Bad input on the real NATS, sent while `orchestrator start` and the agents run a valid
 * project: each message lands on `<prefix>.dlq` (and in the DLQ stream) with a reason
 * naming the problem, and the valid project still completes.
 */

const MAX_PAYLOAD = 65_536;

let scope: ServiceScope;
let watch: NatsWatch;
const processes: (ManagedProcess | undefined)[] = [];

beforeAll(async () => {
  scope = await createServiceScope({ MAX_PAYLOAD_BYTES: String(MAX_PAYLOAD) });
  const p = scope.prefix;
  watch = await NatsWatch.start(scope.nc, [`${p}.status.>`, `${p}.projects.>`, `${p}.approvals.requested.>`, `${p}.tasks.>`, `${p}.dlq`]);
}, 60_000);

afterAll(async () => {
  await stopAll(processes);
  watch?.close();
  await scope?.cleanup();
}, 60_000);

describe('bad inbound messages against the running service', () => {
  it('dead-letters each kind of bad input with its reason while a valid project completes', async () => {
    const p = scope.prefix;
    const js = jetstream(scope.nc);
    const service = await startService(scope.env);
    processes.push(service);
    const agents = await startAgents(scope.env);
    processes.push(agents);
    const projectId = newProjectId();
    await publishProjectCreated(scope.nc, p, projectId);

    // The reviewer approves every request of the valid project, over the whole test.
    const decided = new Set<string>();
    let reviewing = true;
    const reviewer = (async () => {
      while (reviewing) {
        for (const { body } of watch.on<{ approvalId: string }>(`${p}.approvals.requested.${projectId}`)) {
          if (decided.has(body.approvalId)) continue;
          decided.add(body.approvalId);
          await publishDecision(scope.nc, p, projectId, body.approvalId);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();

    // A real task and the fencing token it ran under: WRITE_SCRIPT, once it is COMPLETED.
    const done = await watch.waitFor<TaskStatusMessage>(
      `${p}.status.${projectId}.`,
      (s) => s.taskType === 'WRITE_SCRIPT' && s.to === 'COMPLETED',
      `WRITE_SCRIPT completed\n${service.describe()}`,
    );
    const script = done.body.taskId;
    const dispatch = watch.on<TaskDispatch>(`${p}.tasks.`, (d) => d.taskId === script)[0]!.body;
    expect(dispatch.fencingToken).toBeGreaterThan(0);

    const results = `${p}.results.${projectId}`;
    const send = (subject: string, body: unknown) => js.publish(subject, typeof body === 'string' ? body : JSON.stringify(body));
    const readScript = async () =>
      (
        await scope.sql.query<{ output: Record<string, unknown>; actualCost: number; version: string }>(
          `SELECT output, actual_cost::float8 AS "actualCost", version FROM tasks WHERE task_id = $1`,
          [script],
        )
      ).rows[0]!;
    const applied = await readScript();
    // The agent's result delivered again (as after a crash between write and ack): applied
    // already, so acknowledged with no dead letter and no change.
    await send(results, { taskId: script, status: 'completed', fencingToken: dispatch.fencingToken, output: applied.output, actualCost: applied.actualCost });
    const cases: { name: string; marker: string; reason: RegExp; send: (marker: string) => Promise<unknown> }[] = [
      { name: 'not JSON', marker: 'm-not-json', reason: /^not JSON: /, send: (m) => send(results, `{ ${m} this is not json`) },
      {
        name: 'schema violation',
        marker: 'm-schema',
        reason: /^schema violation: .*status/,
        send: (m) => send(results, { marker: m, taskId: script, status: 'finished', fencingToken: dispatch.fencingToken }),
      },
      {
        name: 'over-size message',
        marker: 'm-oversize',
        reason: new RegExp(`^payload of \\d+ bytes exceeds the limit of ${MAX_PAYLOAD} bytes`),
        send: (m) => send(`${p}.events.${projectId}.SCENE_WRITTEN`, `{"marker":"${m}","pad":"${'x'.repeat(MAX_PAYLOAD + 1_000)}"}`),
      },
      {
        name: 'unknown project',
        marker: 'm-unknown-project',
        reason: /project prj_nowhere does not exist/,
        send: (m) =>
          send(`${p}.events.prj_nowhere.SCENE_WRITTEN`, {
            marker: m, id: 'evt-nowhere', type: 'SCENE_WRITTEN', projectId: 'prj_nowhere', payload: { script: 'x' }, occurredAt: new Date().toISOString(),
          }),
      },
      {
        name: 'unknown task id',
        marker: 'm-unknown-task',
        reason: /task tsk_nosuchtask does not exist/,
        send: (m) => send(results, { marker: m, taskId: 'tsk_nosuchtask', status: 'completed', fencingToken: 1, output: {} }),
      },
      {
        name: 'stale fencing token',
        marker: 'm-stale-token',
        reason: new RegExp(`task ${script}: fencing token ${dispatch.fencingToken - 1} is older than the current token ${dispatch.fencingToken}`),
        send: (m) => send(results, { marker: m, taskId: script, status: 'completed', fencingToken: dispatch.fencingToken - 1, output: { script: 'stale' } }),
      },
      {
        name: 'illegal transition',
        marker: 'm-illegal',
        reason: new RegExp(`task ${script}: event FAIL is not allowed in state COMPLETED`),
        send: (m) => send(results, { marker: m, taskId: script, status: 'failed', fencingToken: dispatch.fencingToken, error: 'failed after all' }),
      },
      {
        name: 'conflicting completion',
        marker: 'm-conflict',
        reason: new RegExp(`task ${script}: event COMPLETE is not allowed in state COMPLETED`),
        send: (m) =>
          send(results, { marker: m, taskId: script, status: 'completed', fencingToken: dispatch.fencingToken, output: { script: 'again' }, actualCost: applied.actualCost + 1 }),
      },
      {
        name: 'unknown approval',
        marker: 'm-unknown-approval',
        reason: new RegExp(`approval apr_nosuchapproval does not exist in project ${projectId}`),
        send: (m) => send(`${p}.approvals.decided.${projectId}`, { marker: m, approvalId: 'apr_nosuchapproval', decision: 'approved', by: 'intruder' }),
      },
    ];
    for (const c of cases) await c.send(c.marker);

    const letters = () => watch.on<DeadLetterMessage>(`${p}.dlq`);
    for (const c of cases) {
      const letter = await watch.waitFor<DeadLetterMessage>(`${p}.dlq`, (l) => l.data.includes(c.marker), `the dead letter of the ${c.name}\n${service.describe()}`);
      expect(letter.body.reason, c.name).toMatch(c.reason);
    }
    expect(letters()).toHaveLength(cases.length);
    const oversize = letters().find((l) => l.body.data.includes('m-oversize'))!.body;
    expect(oversize.subject).toBe(`${p}.events.${projectId}.SCENE_WRITTEN`);
    expect(oversize.data.length).toBeLessThanOrEqual(64 * 1024);

    // The valid project was not disturbed: it completes, WRITE_SCRIPT completed once.
    await until(
      () => watch.on<ProjectStatusMessage>(`${p}.projects.${projectId}`, (b) => b.state === 'completed').length > 0,
      `project ${projectId} completed\n${service.describe()}\n${agents.describe()}`,
      120_000,
    );
    reviewing = false;
    await reviewer;
    const tasks = await tasksOf(scope.sql, projectId);
    expect(countByType(tasks)).toEqual(PIPELINE_TASKS);
    expect(tasks.every((t) => t.status === 'COMPLETED')).toBe(true);
    const scriptRows = (await transitionsOf(scope.sql, projectId)).filter((r) => r.task_id === script);
    expect(scriptRows.filter((r) => r.to_status === 'COMPLETED')).toHaveLength(1);
    expect(tasks.find((t) => t.task_id === script)?.fencing_token).toBe(dispatch.fencingToken);
    const unknown = await scope.sql.query('SELECT project_id FROM projects WHERE project_id = $1', ['prj_nowhere']);
    expect(unknown.rows).toEqual([]);

    // Every inbound message was settled; the dead letters are stored in the DLQ stream as
    // well, and no more arrived meanwhile (the redelivered result left none).
    const jsm = await jetstreamManager(scope.nc);
    await until(async () => (await jsm.streams.info(`${scope.streamPrefix}_INBOUND`)).state.messages === 0, 'the inbound stream drained');
    expect(letters()).toHaveLength(cases.length);
    expect(await readScript()).toEqual(applied);
    expect((await jsm.streams.info(`${scope.streamPrefix}_DLQ`)).state.messages).toBe(cases.length);

    expect(await service.stop('SIGTERM'), service.describe()).toEqual({ code: 0, signal: null });
    expect(await agents.stop('SIGTERM'), agents.describe()).toEqual({ code: 0, signal: null });
  }, 240_000);
});
