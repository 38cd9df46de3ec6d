import { jetstream } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeadLetterMessage, TaskDispatch, TaskResult } from '../../src/domain/messages.js';
import type { EventBus, InboundHandlers } from '../../src/ports/event-bus.js';
import type { PipelineInput } from '../../src/index.js';
import { completed, coreAgent, createDefectScope, eventually, startInstance, type CoreAgent, type DefectScope, type Instance } from '../helpers/defects.js';
import { connectTestNats } from '../helpers/nats.js';
import { NatsWatch } from '../helpers/nats-watch.js';

/**
 * Values PostgreSQL refuses (a budget that does not fit NUMERIC(12,4), a NUL or an unpaired
 * surrogate in a string, a payload nested too deep for JSON.stringify), sent on the real
 * NATS to an orchestrator over the real PostgreSQL: each is dead-lettered on its first
 * delivery with its reason, never retried as if transient, while a valid project sent
 * between them completes and a project whose task got a bad result completes with a good one.
 */

/** PROJECT_CREATED creates a WRITE_SCRIPT from the payload's title and brief; its completion completes the project. */
const PIPELINE: PipelineInput = {
  name: 'edge',
  checkpoints: [],
  rules: [
    { on: 'PROJECT_CREATED', create: [{ key: 'script', type: 'WRITE_SCRIPT', input: { title: '$payload.title', brief: '$payload.brief' } }] },
    { on: 'SCRIPT_WRITTEN', completesProject: true },
  ],
  emits: [{ taskTypes: ['WRITE_SCRIPT'], event: 'SCRIPT_WRITTEN' }],
};

/** How many times the orchestrator's handlers were handed each event (by id) and each result (by task id). */
const handed = new Map<string, number>();
const count = (key: string) => handed.set(key, (handed.get(key) ?? 0) + 1);

/** The bus, counting what it hands to the handlers. */
function counting(bus: EventBus): EventBus {
  return new Proxy(bus, {
    get(obj, prop, receiver) {
      const value = Reflect.get(obj, prop, receiver);
      if (prop !== 'consume' || typeof value !== 'function') return typeof value === 'function' ? value.bind(obj) : value;
      return (h: InboundHandlers) =>
        value.call(obj, {
          event: (e) => (count(e.id), h.event(e)),
          result: (p, r) => (count(`result:${r.taskId}:${r.status}`), h.result(p, r)),
          heartbeat: (p, b) => h.heartbeat(p, b),
          decision: (p, d) => h.decision(p, d),
          control: (p, c) => h.control(p, c),
        } satisfies InboundHandlers);
    },
  });
}

const deep = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;

let scope: DefectScope;
let instance: Instance;
let watch: NatsWatch;
let agent: CoreAgent;
let closeNats: () => Promise<void>;

beforeAll(async () => {
  scope = await createDefectScope();
  instance = await startInstance(scope, 'a', { pipeline: PIPELINE, wrapBus: counting });
  const nc = await connectTestNats(`edge-${scope.id}`, scope.natsUrl);
  closeNats = () => nc.close();
  watch = await NatsWatch.start(nc, [`${scope.subjectPrefix}.dlq`]);
  // The victim's task gets an unstorable result first; the test answers it properly later.
  agent = coreAgent(nc, scope.subjectPrefix, (task): TaskResult | null =>
    task.projectId === 'prj_victim'
      ? { taskId: task.taskId, fencingToken: task.fencingToken, status: 'completed', output: { script: 'a\u0000b' }, actualCost: 0.01 }
      : completed(task),
  );
}, 60_000);

afterAll(async () => {
  agent?.close();
  watch?.close();
  await instance?.stop();
  await closeNats?.();
  await scope?.cleanup();
}, 60_000);

describe('values the database refuses', () => {
  it('are dead-lettered on their first delivery, with the reason, while valid projects complete', async () => {
    const p = scope.subjectPrefix;
    const js = jetstream(instance.nc);
    const created = (projectId: string, payload: string) =>
      `{"id":"create-${projectId}","type":"PROJECT_CREATED","projectId":"${projectId}","payload":${payload},"occurredAt":"2026-11-27T10:00:00Z"}`;
    const bad: { projectId: string; payload: string; reason: RegExp }[] = [
      { projectId: 'prj_huge_budget', payload: '{"title":"t","brief":"b","budget":1e308}', reason: /budget/ },
      { projectId: 'prj_nul_title', payload: '{"title":"a\\u0000b","brief":"b"}', reason: /title/ },
      { projectId: 'prj_surrogate_title', payload: '{"title":"a\\uD800b","brief":"b"}', reason: /title/ },
      { projectId: 'prj_nul_key', payload: '{"title":"t","brief":"b","extra":{"k\\u0000":1}}', reason: /payload/ },
      { projectId: 'prj_deep_brief', payload: `{"title":"t","brief":${deep(10_000)}}`, reason: /brief|depth|deep/ },
    ];
    const send = (projectId: string, payload: string) => js.publish(`${p}.events.${projectId}.PROJECT_CREATED`, created(projectId, payload));
    // Interleaved: the valid project between the bad ones.
    await send(bad[0]!.projectId, bad[0]!.payload);
    await send(bad[1]!.projectId, bad[1]!.payload);
    await send('prj_valid', '{"title":"The Keeper","brief":"a lighthouse keeper","budget":25}');
    for (const b of bad.slice(2)) await send(b.projectId, b.payload);
    await send('prj_victim', '{"title":"Victim","brief":"gets a bad result first","budget":25}');

    const letterOf = (subject: string, taskResult?: string) =>
      watch.waitFor<DeadLetterMessage>(`${p}.dlq`, (l) => l.subject === subject && (taskResult === undefined || l.data.includes(taskResult)), `the dead letter of ${subject}`);
    for (const b of bad) {
      const letter = (await letterOf(`${p}.events.${b.projectId}.PROJECT_CREATED`)).body;
      expect(letter.reason, b.projectId).not.toMatch(/gave up after/);
      expect(letter.reason, b.projectId).toMatch(/^schema violation: /);
      expect(letter.reason, b.projectId).toMatch(b.reason);
      // Refused before any handler saw it, so never retried.
      expect(handed.get(`create-${b.projectId}`) ?? 0, b.projectId).toBe(0);
      expect(await instance.raw.projects.getProject(b.projectId), b.projectId).toBeNull();
    }

    // The victim's unstorable result is dead-lettered at once; its task is still running.
    await eventually(() => agent.deliveries.some((d) => d.projectId === 'prj_victim'), 'the victim task dispatched');
    const victimTask = agent.deliveries.find((d) => d.projectId === 'prj_victim')! as TaskDispatch;
    const resultLetter = (await letterOf(`${p}.results.prj_victim`, 'a\\u0000b')).body;
    expect(resultLetter.reason).toMatch(/^schema violation: output/);
    expect(handed.get(`result:${victimTask.taskId}:completed`) ?? 0).toBe(0);
    // A failed result whose error has an unpaired surrogate: refused too.
    await js.publish(`${p}.results.prj_victim`, `{"taskId":"${victimTask.taskId}","status":"failed","fencingToken":${victimTask.fencingToken},"error":"x\\uDC00y"}`);
    const failedLetter = (await letterOf(`${p}.results.prj_victim`, 'x\\uDC00y')).body;
    expect(failedLetter.reason).toMatch(/^schema violation: error/);
    expect(handed.get(`result:${victimTask.taskId}:failed`) ?? 0).toBe(0);
    expect((await instance.raw.tasks.getTask(victimTask.taskId))?.status).toBe('RUNNING');
    agent.answer(completed(victimTask));

    for (const projectId of ['prj_valid', 'prj_victim']) {
      await eventually(async () => (await instance.raw.projects.getProject(projectId))?.state === 'completed', `${projectId} completed`);
    }
    expect(await instance.raw.projects.getProject('prj_valid')).toMatchObject({ title: 'The Keeper', budgetLimit: 25 });
    expect(watch.on(`${p}.dlq`)).toHaveLength(bad.length + 2);
  }, 120_000);
});
