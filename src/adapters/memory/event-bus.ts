import { AgentName } from '../../domain/task.js';
import { ErrorCode, ValidationError } from '../../errors.js';
import {
  ProjectTurns,
  answerControl,
  answerQuery,
  batchPlan,
  checkControl,
  checkQuery,
  checkBody,
  dispatchInbound,
  onFailure,
  outcome,
  runBatch,
  windowSize,
  type CheckedBody,
  type ControlReply,
  type InboundKind,
  type RetryPolicy,
} from '../inbound-order.js';
import type { ApprovalDecided, ControlRequest, DeadLetterMessage, Heartbeat, TaskDispatch, TaskResult } from '../../domain/messages.js';
import type { PipelineEventInput } from '../../domain/pipeline.js';
import type { DispatchItem, EventBus, InboundHandlers, InboundSubscription, Outbound } from '../../ports/event-bus.js';

export interface InProcessEventBusOptions {
  /** Inbound messages handled at the same time, at most; default 256 (see inbound-order.ts). */
  inboundConcurrency?: number;
  /** Attempts of a message whose handler keeps failing with a retryable error before it is dead-lettered; default 5. */
  maxDeliveries?: number;
  /** Pause before the n-th retry: base * 2^(n-1), capped; default 5 ms .. 100 ms. */
  retryDelay?: { baseMs?: number; maxMs?: number };
}

export type AgentHandler = (task: TaskDispatch) => void | Promise<void>;
export type OutboundListener = (message: Outbound) => void;

/**
 * The in-process event bus: the embedded default and the bus of fast tests. Dispatches
 * go to agents registered in the same process (or wait in a per-agent backlog until one
 * registers, as a work-queue stream would keep them). Inbound messages follow the rules
 * of the NATS adapter, which live in inbound-order.ts and are checked on both by the
 * EventBus contract suite:
 *
 * - bodies are checked with the wire schemas first; a bad one is dead-lettered
 *   (`schema violation: …`) and no handler sees it; handlers get the parsed body;
 * - results and heartbeats run concurrently (up to `inboundConcurrency` running), events
 *   and decisions as barriers of their project, one at a time per project in the order
 *   sent (other projects' barriers, results and heartbeats do not wait for them);
 * - a handler's non-retryable OrchestratorError dead-letters the message (a `dlq`
 *   outbound message) with `code: message`; any other failure is retried after a short
 *   pause, up to `maxDeliveries` attempts in all, then dead-lettered (`gave up after N
 *   deliveries: …`). A message being retried keeps its place: its slot and, for an event
 *   or a decision, its turn among its project's barriers;
 * - `sendResults` is the batch form (`{"results":[…]}` on NATS): each entry handled as if
 *   alone, a refused one dead-lettered alone, a retried delivery hands over only the
 *   entries not yet durable; it resolves once every entry is durable or dead-lettered;
 * - messages sent while nobody consumes (before `consume()`, or not started when the
 *   subscription closed) are kept, in order, for the next `consume()`, as the inbound
 *   stream keeps them.
 *
 * Each `send…` resolves once its message is handled or dead-lettered (the moment the NATS
 * adapter acknowledges it). Dead letters name the subject the message would have on NATS,
 * without the prefix: `results.<projectId>`, `events.<projectId>.<TYPE>`, `tasks.<agent>`.
 */
export class InProcessEventBus implements EventBus {
  private readonly agents = new Map<string, AgentHandler>();
  /** Agent names already checked. */
  private readonly agentNames = new Set<string>();
  private readonly backlog = new Map<string, TaskDispatch[]>();
  private readonly listeners = new Set<OutboundListener>();
  private handlers: InboundHandlers | null = null;
  /** Messages whose turn has come, not started yet (in that order): they wait for a slot and a consumer. */
  private readonly ready: Inbound[] = [];
  private readonly turns = new ProjectTurns();
  /** Started, not settled. */
  private running = 0;
  /** Sent, not settled. */
  private pending = 0;
  private idleWaiters: (() => void)[] = [];
  private stoppedWaiters: (() => void)[] = [];
  private readonly window: number;
  private readonly policy: RetryPolicy;

  constructor(options: InProcessEventBusOptions = {}) {
    this.window = windowSize(options.inboundConcurrency);
    this.policy = {
      maxDeliveries: windowSize(options.maxDeliveries ?? 5, 'maxDeliveries'),
      baseMs: options.retryDelay?.baseMs ?? 5,
      maxMs: options.retryDelay?.maxMs ?? 100,
    };
  }

  async dispatchTask(agent: string, task: TaskDispatch): Promise<void> {
    if (!this.agentNames.has(agent)) {
      // The wire contract's agent names (a subject token on NATS): refused alike by both buses.
      if (!AgentName.safeParse(agent).success) throw new ValidationError(`cannot dispatch ${task.taskId}: invalid agent name`, [`agent=${JSON.stringify(agent)}`]);
      this.agentNames.add(agent);
    }
    const handler = this.agents.get(agent);
    if (!handler) {
      const list = this.backlog.get(agent) ?? [];
      list.push(task);
      this.backlog.set(agent, list);
      return;
    }
    queueMicrotask(() => void this.runAgent(agent, handler, task));
  }

  /** 1: the in-process bus has no messages to share. */
  dispatchBatchSize(): number {
    return 1;
  }

  /** Each as dispatchTask. */
  async dispatchTasks(agent: string, items: readonly DispatchItem[]): Promise<(Error | null)[]> {
    return Promise.all(items.map(({ task }) => this.dispatchTask(agent, task).then(() => null, (err: unknown) => (err instanceof Error ? err : new Error(String(err))))));
  }

  async publish(message: Outbound): Promise<void> {
    for (const listener of this.listeners) listener(message);
  }

  async consume(handlers: InboundHandlers): Promise<InboundSubscription> {
    this.handlers = handlers;
    this.pump();
    let closing: Promise<void> | null = null;
    return {
      close: () => {
        closing ??= (async () => {
          if (this.handlers === handlers) this.handlers = null;
          await this.stopped();
        })();
        return closing;
      },
    };
  }

  /** Registers an in-process agent; backlogged dispatches for it are delivered now. */
  registerAgent(agent: string, handler: AgentHandler): () => void {
    this.agents.set(agent, handler);
    const waiting = this.backlog.get(agent) ?? [];
    this.backlog.delete(agent);
    for (const task of waiting) queueMicrotask(() => void this.runAgent(agent, handler, task));
    return () => this.agents.delete(agent);
  }

  /** Observes everything the orchestrator publishes. */
  subscribe(listener: OutboundListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // Inbound, as an agent or another service would send it. Each resolves once the message
  // is handled (or dead-lettered).
  sendEvent(event: PipelineEventInput): Promise<void> {
    const projectId = String(event.projectId);
    return this.enqueue('event', projectId, `events.${projectId}.${String(event.type)}`, event);
  }
  sendResult(projectId: string, result: TaskResult): Promise<void> {
    return this.enqueue('result', projectId, `results.${projectId}`, result);
  }
  /** The batch form of results: several results of one project in one message. */
  sendResults(projectId: string, results: readonly TaskResult[]): Promise<void> {
    return this.enqueue('result', projectId, `results.${projectId}`, { results });
  }
  sendHeartbeat(projectId: string, heartbeat: Heartbeat): Promise<void> {
    return this.enqueue('heartbeat', projectId, `heartbeats.${projectId}`, heartbeat);
  }
  sendDecision(projectId: string, decision: ApprovalDecided): Promise<void> {
    return this.enqueue('decision', projectId, `approvals.decided.${projectId}`, decision);
  }

  /**
   * A control request, answered like the NATS request-reply subject (inbound-order.ts
   * `answerControl`): checked with the schema first, then the handler's result or error.
   */
  async sendControl(projectId: string, request: ControlRequest): Promise<ControlReply> {
    const handlers = this.handlers;
    if (!handlers) return { ok: false, error: { code: ErrorCode.Closed, message: 'no consumer is running' } };
    const checked = checkControl(request);
    if (!checked.ok) return checked.reply;
    return answerControl(handlers, projectId, checked.request);
  }

  /** A query, answered like the NATS `<prefix>.query.<kind>` subject (inbound-order.ts `answerQuery`). */
  async sendQuery(kind: string, body: unknown): Promise<ControlReply> {
    const handlers = this.handlers;
    if (!handlers) return { ok: false, error: { code: ErrorCode.Closed, message: 'no consumer is running' } };
    const checked = checkQuery(kind, body);
    if (!checked.ok) return checked.reply;
    return answerQuery(handlers, checked.request);
  }

  /** Resolves when every inbound message sent so far has been handled (or dead-lettered). */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Resolves when no handler runs. */
  private stopped(): Promise<void> {
    if (this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.stoppedWaiters.push(resolve));
  }

  private async runAgent(agent: string, handler: AgentHandler, task: TaskDispatch): Promise<void> {
    try {
      await handler(task);
    } catch (err) {
      await this.publish({ kind: 'dlq', body: { subject: `tasks.${agent}`, reason: `agent threw: ${(err as Error).message}`, data: JSON.stringify(task) } });
    }
  }

  private enqueue(kind: InboundKind, projectId: string, subject: string, data: unknown): Promise<void> {
    return new Promise<void>((resolve) => {
      this.pending += 1;
      const checked = checkBody(kind, projectId, data);
      const message: Inbound = { checked, subject, data, deliveries: 0, settled: new Set(), done: resolve };
      if (checked.ok && (checked.message.kind === 'event' || checked.message.kind === 'decision')) {
        const { now, turn, done } = this.turns.take(projectId);
        message.done = () => {
          done();
          resolve();
        };
        if (now) this.start(message);
        else void turn.then(() => this.start(message));
      } else {
        this.start(message);
      }
    });
  }

  private start(message: Inbound): void {
    this.ready.push(message);
    this.pump();
  }

  /** Starts the messages whose turn has come, in that order, while there are a consumer and a free slot. */
  private pump(): void {
    while (this.handlers && this.running < this.window) {
      const next = this.ready.shift();
      if (!next) return;
      this.running += 1;
      void this.handle(next, this.handlers).then((settled) => {
        this.running -= 1;
        if (settled) {
          this.pending -= 1;
          next.done();
        } else {
          this.ready.unshift(next); // no consumer any more: kept, first in line, for the next one
        }
        if (this.running === 0) {
          const waiters = this.stoppedWaiters;
          this.stoppedWaiters = [];
          for (const w of waiters) w();
        }
        if (this.pending === 0) {
          const waiters = this.idleWaiters;
          this.idleWaiters = [];
          for (const w of waiters) w();
        }
        this.pump();
      });
    }
  }

  /**
   * Runs the handler(s), retrying what may succeed later, and dead-letters what fails for
   * good; resolves true once the message is settled, false when the consumer went away
   * while it waited for a retry (it is then kept for the next one). Never rejects.
   */
  private async handle(message: Inbound, handlers: InboundHandlers): Promise<boolean> {
    const { checked } = message;
    if (!checked.ok) {
      await this.letter(message.subject, checked.reason, message.data);
      return true;
    }
    const body: CheckedBody = checked.message;
    for (;;) {
      message.deliveries += 1;
      if (body.kind === 'results') {
        const failures = await runBatch(body.body, message.settled, (r) => handlers.result(body.projectId, r));
        const failed = new Set(failures.map((f) => f.i));
        body.body.forEach((_, i) => failed.has(i) || message.settled.add(i));
        const plan = batchPlan(failures, message.deliveries, this.policy);
        for (const { i, reason } of plan.deadLetter) {
          await this.letter(message.subject, reason, body.body[i]);
          message.settled.add(i);
        }
        if (plan.retryDelayMs === null) return true;
        await pause(plan.retryDelayMs);
      } else {
        const failure = await outcome(() => dispatchInbound(handlers, body));
        if (!failure) return true;
        const action = onFailure(failure.err, message.deliveries, this.policy);
        if (!action.retry) {
          await this.letter(message.subject, action.reason, message.data);
          return true;
        }
        await pause(action.delayMs);
      }
      if (this.handlers !== handlers) return false;
    }
  }

  private async letter(subject: string, reason: string, data: unknown): Promise<void> {
    const body: DeadLetterMessage = { subject, reason, data: JSON.stringify(data) ?? String(data) };
    await this.publish({ kind: 'dlq', body }).catch(() => undefined);
  }
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

interface Inbound {
  checked: ReturnType<typeof checkBody>;
  /** The NATS subject it would have, without the prefix (dead letters name it). */
  subject: string;
  /** As sent (dead letters carry it). */
  data: unknown;
  /** Deliveries to a handler so far (retries included). */
  deliveries: number;
  /** Batch form: the entries settled (durable or dead-lettered) in earlier deliveries. */
  settled: Set<number>;
  /** Resolves the sender's promise (and ends a barrier's turn). */
  done: () => void;
}
