import { jetstream } from '@nats-io/jetstream';
import { headers as natsHeaders, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { SpanKind, context, propagation, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NatsEventBus } from '../../src/adapters/nats/event-bus.js';
import { injectTrace } from '../../src/adapters/nats/trace-headers.js';
import { createAgentWorker, type AgentWorker } from '../../src/agent/worker.js';
import type { TaskDispatch } from '../../src/domain/messages.js';
import { silentLogger } from '../../src/logger.js';
import { OrchestratorFactory } from '../../src/orchestrator/factory.js';
import type { Orchestrator } from '../../src/orchestrator/orchestrator.js';
import { tracingOn } from '../../src/tracing/tracing.js';
import { sqlStores } from '../../src/adapters/blackboards.js';
import type { SqlClient } from '../../src/adapters/postgres/sql-client.js';
import { RedisLockManager } from '../../src/adapters/redis/lock-manager.js';
import { RedisTaskQueue } from '../../src/adapters/redis/task-queue.js';
import { connectTestRedis, deleteKeysWithPrefix, randomPrefix } from '../helpers/redis.js';
import { postgresDatabase } from '../helpers/stores.js';
import { newProjectId } from '../helpers/e2e-project.js';
import { atMost, connectTestNats, deleteStreams, randomNatsScope, waitFor } from '../helpers/nats.js';

/**
 * Traces across NATS: an in-process orchestrator (OrchestratorFactory, the NATS event bus
 * over the shared NATS under a private prefix and streams, PostgreSQL and Redis isolated)
 * and an agent worker of the agent SDK, with the OpenTelemetry SDK registered in this
 * process and an in-memory exporter. One trace covers a caller's event, its ingest, the
 * dispatch, the agent's work, its heartbeat and result, and the result's commit.
 */

const scope = randomNatsScope();
const P = scope.subjectPrefix;

let orchestratorNc: NatsConnection;
let agentNc: NatsConnection;
let bus: NatsEventBus;
let disposeBlackboard: (() => Promise<void>) | undefined;
let sql: SqlClient;
let orchestrator: Orchestrator | undefined;
let worker: AgentWorker | undefined;
let storyboard: AgentWorker | undefined;
let blackboardOf: Parameters<typeof OrchestratorFactory.createAndStart>[0] | undefined;
/** What the first run left for the second: the project, and the SCENE_WRITTEN ingest span. */
let shared: { projectId: string; raised: ReadableSpan } | undefined;
let provider: NodeTracerProvider | undefined;
const exporter = new InMemorySpanExporter();

beforeAll(async () => {
  orchestratorNc = await connectTestNats('tracing-orchestrator');
  agentNc = await connectTestNats('tracing-agent');
  bus = new NatsEventBus({ connection: orchestratorNc, subjectPrefix: P, streamPrefix: scope.streamPrefix, logger: silentLogger() });
  await bus.ensureStreams();
});

afterAll(async () => {
  try {
    await atMost(worker?.stop({ abort: true }), 10_000);
    await atMost(storyboard?.stop({ abort: true }), 10_000);
    await atMost(orchestrator?.stop(), 10_000);
    await disposeBlackboard?.();
    if (orchestratorNc) await deleteStreams(orchestratorNc, scope.streamPrefix);
  } finally {
    await provider?.shutdown();
    trace.disable();
    context.disable();
    propagation.disable();
    await orchestratorNc?.close();
    await agentNc?.close();
  }
});

const spans = (): ReadableSpan[] => exporter.getFinishedSpans();
const named = (name: string): ReadableSpan[] => spans().filter((s) => s.name === name);
const one = (name: string, traceId: string): ReadableSpan => {
  const found = named(name).filter((s) => s.spanContext().traceId === traceId);
  expect(found.map((s) => s.name), `one span ${name} in the trace`).toEqual([name]);
  return found[0]!;
};
const parentOf = (s: ReadableSpan): string | undefined => s.parentSpanContext?.spanId;

describe('tracing', () => {
  it('is off without a registered tracer provider: a dispatch carries no trace headers', async () => {
    expect(tracingOn()).toBe(false);
    const received: Msg[] = [];
    const sub = orchestratorNc.subscribe(`${P}.tasks.untraced`, { callback: (_err, m) => void received.push(m) });
    await orchestratorNc.flush();
    const task: TaskDispatch = {
      taskId: 'tsk_untraced', projectId: 'prj_untraced', taskType: 'WRITE_SCRIPT', input: {}, attempt: 1,
      deadline: new Date(Date.now() + 60_000).toISOString(), fencingToken: 1,
    };
    await bus.dispatchTask('untraced', task);
    await waitFor(() => received.length === 1, 'the dispatch');
    sub.unsubscribe();
    expect(received[0]!.headers?.get('Nats-Msg-Id')).toBe('tsk_untraced:1');
    expect(received[0]!.headers?.has('traceparent')).toBe(false);
    // Taken by nobody else: the work-queue stream keeps it for an agent that never comes.
  });

  it('covers event → ingest → dispatch → agent → result → commit in one trace over real NATS, with the messaging conventions', async () => {
    provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    provider.register();
    expect(tracingOn()).toBe(true);

    // PostgreSQL (an own schema, migrated) and Redis (an own key prefix).
    const db = await postgresDatabase();
    sql = db.sql;
    const redis = connectTestRedis('tracing');
    const prefix = randomPrefix('trace');
    disposeBlackboard = async () => {
      await deleteKeysWithPrefix(redis, prefix);
      redis.disconnect();
      await db.close();
    };
    const blackboard = {
      ...sqlStores(db.sql),
      queue: new RedisTaskQueue({ redis, key: `${prefix}:queue` }),
      locks: new RedisLockManager({ redis, prefix }),
      close: async () => undefined,
    };
    blackboardOf = blackboard;
    orchestrator = await OrchestratorFactory.createAndStart(
      blackboard,
      bus,
      { instanceId: 'tracing', approval: { enabled: true }, scheduler: { intervalSeconds: 0.05 } },
      { logger: silentLogger() },
    );
    const agentTracer = trace.getTracer('test-agent');
    worker = await createAgentWorker({
      connection: agentNc,
      agent: 'script_writer',
      subjectPrefix: P,
      streamPrefix: scope.streamPrefix,
      heartbeatMs: 50,
      logger: silentLogger(),
      // The agent's own span, in the context the SDK gives the handler: a child of its `process` span.
      handle: (task) =>
        agentTracer.startActiveSpan('write the script', async (span) => {
          try {
            // One heartbeat at least, handled by the orchestrator, before the result.
            await waitFor(() => named(`process ${P}.heartbeats.{projectId}`).length > 0, 'a heartbeat handled');
            return { output: { script: `INT. LIGHTHOUSE - NIGHT (${task.taskId})` }, actualCost: 0.2 };
          } finally {
            span.end();
          }
        }),
    });

    // A caller's event with its trace in the headers: the orchestrator continues it.
    const projectId = newProjectId();
    const event = {
      id: `${projectId}:created`, type: 'PROJECT_CREATED', projectId,
      payload: { title: 'The Keeper', brief: 'a lighthouse keeper finds a message', budget: 25 },
      occurredAt: new Date().toISOString(),
    };
    const caller = trace.getTracer('test-caller').startSpan('submit the project', { kind: SpanKind.PRODUCER });
    const h = natsHeaders();
    injectTrace(trace.setSpan(context.active(), caller), h);
    await jetstream(orchestratorNc).publish(`${P}.events.${projectId}.PROJECT_CREATED`, JSON.stringify(event), { msgID: event.id, headers: h });
    caller.end();
    const traceId = caller.spanContext().traceId;

    // The script written, its result committed, the event it raised (SCENE_WRITTEN, a checkpoint) ingested.
    await waitFor(() => named('ingest SCENE_WRITTEN').length > 0 && named('commit results').length > 0, 'the result committed and SCENE_WRITTEN ingested', 30_000);
    await waitFor(() => named(`process ${P}.tasks.{agent}`).length === 1 && named(`process ${P}.results.{projectId}`).length === 1, 'the messages settled');

    const processEvent = one(`process ${P}.events.{projectId}.{type}`, traceId);
    const ingest = one('ingest PROJECT_CREATED', traceId);
    const send = one(`send ${P}.tasks.{agent}`, traceId);
    const work = one(`process ${P}.tasks.{agent}`, traceId);
    const own = one('write the script', traceId);
    const sendHeartbeat = named(`send ${P}.heartbeats.{projectId}`).filter((s) => s.spanContext().traceId === traceId);
    const processHeartbeat = named(`process ${P}.heartbeats.{projectId}`).filter((s) => s.spanContext().traceId === traceId);
    const sendResult = one(`send ${P}.results.{projectId}`, traceId);
    const processResult = one(`process ${P}.results.{projectId}`, traceId);
    const commit = one('commit results', traceId);

    // The chain of parents: caller → process event → ingest → send task → process task (agent)
    // → its work, its heartbeats, its result → process result → commit.
    expect(parentOf(processEvent)).toBe(caller.spanContext().spanId);
    expect(parentOf(ingest)).toBe(processEvent.spanContext().spanId);
    expect(parentOf(send)).toBe(ingest.spanContext().spanId);
    expect(parentOf(work)).toBe(send.spanContext().spanId);
    expect(parentOf(own)).toBe(work.spanContext().spanId);
    expect(sendHeartbeat.length).toBeGreaterThan(0);
    for (const s of sendHeartbeat) expect(parentOf(s)).toBe(work.spanContext().spanId);
    expect(processHeartbeat.length).toBeGreaterThan(0);
    const heartbeatSends = new Set(sendHeartbeat.map((s) => s.spanContext().spanId));
    for (const s of processHeartbeat) expect(heartbeatSends.has(parentOf(s)!)).toBe(true);
    expect(parentOf(sendResult)).toBe(work.spanContext().spanId);
    expect(parentOf(processResult)).toBe(sendResult.spanContext().spanId);
    expect(parentOf(commit)).toBe(processResult.spanContext().spanId);

    // Kinds and the messaging attributes.
    const {
      rows: [task],
    } = await sql.query<{ task_id: string; fencing_token: number; trace_parent: string | null; status: string }>(
      'SELECT task_id, fencing_token, trace_parent, status FROM tasks WHERE project_id = $1 AND task_type = $2',
      [projectId, 'WRITE_SCRIPT'],
    );
    expect(task!.status).toBe('COMPLETED');
    const attempt = `${task!.task_id}:${task!.fencing_token}`;
    expect(processEvent.kind).toBe(SpanKind.CONSUMER);
    expect(processEvent.attributes).toMatchObject({
      'messaging.system': 'nats',
      'messaging.destination.name': `${P}.events.${projectId}.PROJECT_CREATED`,
      'messaging.message.id': event.id,
    });
    expect(ingest.kind).toBe(SpanKind.INTERNAL);
    expect(send.kind).toBe(SpanKind.PRODUCER);
    expect(send.attributes).toMatchObject({ 'messaging.system': 'nats', 'messaging.destination.name': `${P}.tasks.script_writer`, 'messaging.message.id': attempt });
    expect(work.kind).toBe(SpanKind.CONSUMER);
    expect(work.attributes).toMatchObject({ 'messaging.system': 'nats', 'messaging.destination.name': `${P}.tasks.script_writer`, 'messaging.message.id': attempt });
    expect(sendResult.kind).toBe(SpanKind.PRODUCER);
    expect(sendResult.attributes).toMatchObject({ 'messaging.system': 'nats', 'messaging.destination.name': `${P}.results.${projectId}`, 'messaging.message.id': `${attempt}:result` });
    expect(processResult.kind).toBe(SpanKind.CONSUMER);
    expect(processResult.attributes).toMatchObject({ 'messaging.system': 'nats', 'messaging.destination.name': `${P}.results.${projectId}`, 'messaging.message.id': `${attempt}:result` });
    for (const s of [...sendHeartbeat, ...processHeartbeat]) {
      expect(s.attributes).toMatchObject({ 'messaging.system': 'nats', 'messaging.destination.name': `${P}.heartbeats.${projectId}` });
    }

    // Durable: the task stores its ingest's traceparent (migration 008), which every dispatch continues.
    expect(task!.trace_parent).toBe(`00-${traceId}-${ingest.spanContext().spanId}-01`);

    // The event the result raised is an event of its own: a new trace, linked to the task's.
    // (A sweep may meet the event again, as a duplicate: the first ingest is the one that wrote its tasks.)
    const raised = named('ingest SCENE_WRITTEN')[0]!;
    expect(raised.spanContext().traceId).not.toBe(traceId);
    expect(raised.parentSpanContext).toBeUndefined();
    expect(raised.links.map((l) => l.context.spanId)).toEqual([ingest.spanContext().spanId]);
    // Its tasks wait for the checkpoint's approval, with that trace stored.
    const { rows: waiting } = await sql.query<{ trace_parent: string | null; status: string }>(
      'SELECT trace_parent, status FROM tasks WHERE project_id = $1 AND task_type = $2',
      [projectId, 'PLAN_SHOTS'],
    );
    expect(waiting).toEqual([{ status: 'WAITING_APPROVAL', trace_parent: `00-${raised.spanContext().traceId}-${raised.spanContext().spanId}-01` }]);
    shared = { projectId, raised };
  });

  it('dispatches a task in its event\'s trace from the stored traceparent, in another instance after a restart', async () => {
    expect(shared).toBeDefined();
    const { projectId, raised } = shared!;
    const traceId = raised.spanContext().traceId;
    // The instance that ingested SCENE_WRITTEN stops; another one takes over the project.
    await orchestrator!.stop();
    orchestrator = await OrchestratorFactory.createAndStart(
      blackboardOf!,
      bus,
      { instanceId: 'tracing-2', approval: { enabled: true }, scheduler: { intervalSeconds: 0.05 } },
      { logger: silentLogger() },
    );
    storyboard = await createAgentWorker({
      connection: agentNc,
      agent: 'storyboard_artist',
      subjectPrefix: P,
      streamPrefix: scope.streamPrefix,
      logger: silentLogger(),
      handle: async () => ({ output: { shots: [{ index: 0, prompt: 'the lighthouse at dusk', durationSeconds: 4 }] }, actualCost: 0.1 }),
    });
    const {
      rows: [approval],
    } = await sql.query<{ approval_id: string }>("SELECT approval_id FROM approvals WHERE project_id = $1 AND status = 'pending'", [projectId]);
    // The reviewer's decision, untraced: PLAN_SHOTS is released, queued and dispatched by the new instance.
    await jetstream(orchestratorNc).publish(
      `${P}.approvals.decided.${projectId}`,
      JSON.stringify({ approvalId: approval!.approval_id, decision: 'approved', by: 'reviewer' }),
      { msgID: `${approval!.approval_id}:approved` },
    );
    await waitFor(() => named('ingest SHOT_PLANNED').length > 0, 'PLAN_SHOTS completed and SHOT_PLANNED ingested', 30_000);
    await waitFor(() => named(`process ${P}.results.{projectId}`).filter((s) => s.spanContext().traceId === traceId).length === 1, 'the result settled');

    const send = one(`send ${P}.tasks.{agent}`, traceId);
    expect(send.attributes).toMatchObject({ 'messaging.system': 'nats', 'messaging.destination.name': `${P}.tasks.storyboard_artist` });
    // A child of the SCENE_WRITTEN ingest, which the other instance ran before the restart.
    expect(parentOf(send)).toBe(raised.spanContext().spanId);
    const work = one(`process ${P}.tasks.{agent}`, traceId);
    expect(parentOf(work)).toBe(send.spanContext().spanId);
    const sendResult = one(`send ${P}.results.{projectId}`, traceId);
    const processResult = one(`process ${P}.results.{projectId}`, traceId);
    expect(parentOf(processResult)).toBe(sendResult.spanContext().spanId);
    expect(parentOf(one('commit results', traceId))).toBe(processResult.spanContext().spanId);
    // The decision's own message: a trace of its own (it carried none).
    const decision = named(`process ${P}.approvals.decided.{projectId}`);
    expect(decision).toHaveLength(1);
    expect(decision[0]!.parentSpanContext).toBeUndefined();
  });

  it('links the commit of a result that came without trace context to its task\'s trace', async () => {
    // No script writer now: the result is published by hand, without headers (an agent without an SDK).
    await worker!.stop();
    worker = undefined;
    const projectId = newProjectId();
    await jetstream(orchestratorNc).publish(
      `${P}.events.${projectId}.PROJECT_CREATED`,
      JSON.stringify({ id: `${projectId}:created`, type: 'PROJECT_CREATED', projectId, payload: { title: 'Untraced', budget: 25 }, occurredAt: new Date().toISOString() }),
      { msgID: `${projectId}:created` },
    );
    let task: { task_id: string; fencing_token: number; trace_parent: string } | undefined;
    await waitFor(async () => {
      const { rows } = await sql.query<{ task_id: string; fencing_token: number; trace_parent: string }>(
        "SELECT task_id, fencing_token, trace_parent FROM tasks WHERE project_id = $1 AND status = 'RUNNING'",
        [projectId],
      );
      task = rows[0];
      return task !== undefined;
    }, 'the script task RUNNING');
    const ingest = named('ingest PROJECT_CREATED').find((s) => s.attributes['lap.project.id'] === projectId)!;
    expect(task!.trace_parent).toBe(`00-${ingest.spanContext().traceId}-${ingest.spanContext().spanId}-01`);
    await jetstream(orchestratorNc).publish(
      `${P}.results.${projectId}`,
      JSON.stringify({ taskId: task!.task_id, status: 'completed', fencingToken: task!.fencing_token, output: { script: 'untraced' }, actualCost: 0.1 }),
      { msgID: `${task!.task_id}:${task!.fencing_token}:result` },
    );
    const committed = () =>
      named('commit results').filter((s) => s.links.some((l) => l.context.spanId === ingest.spanContext().spanId));
    await waitFor(() => committed().length > 0, 'the commit linked to the task');
    const commit = committed()[0]!;
    // In the trace of the result's message (a root: it carried none), linked to the event's.
    expect(commit.spanContext().traceId).not.toBe(ingest.spanContext().traceId);
    const processResult = spans().find((s) => s.spanContext().spanId === parentOf(commit))!;
    expect(processResult.name).toBe(`process ${P}.results.{projectId}`);
    expect(processResult.parentSpanContext).toBeUndefined();
  });
});
