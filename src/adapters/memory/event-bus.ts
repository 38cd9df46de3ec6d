import { isOrchestratorError } from '../../errors.js';
import { isBarrier, windowSize, type InboundKind } from '../inbound-order.js';
import type { ApprovalDecided, ControlRequest, DeadLetterMessage, Heartbeat, TaskDispatch, TaskResult } from '../../domain/messages.js';
import type { PipelineEventInput } from '../../domain/pipeline.js';
import type { EventBus, InboundHandlers, InboundSubscription, Outbound } from '../../ports/event-bus.js';

export interface InProcessEventBusOptions {
  /** Inbound results and heartbeats handled at the same time, at most; default 256 (see inbound-order.ts). */
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
 * registers, as a work-queue stream would keep them). Inbound messages are handed to the
 * orchestrator's handlers with the rule of the NATS adapter (inbound-order.ts): in the
 * order sent, results and heartbeats concurrently (up to `inboundConcurrency` running),
 * events and decisions as barriers of their project, one at a time per project in the
 * order sent (each starts once its project's barriers sent before it have settled; other
 * projects' barriers, results and heartbeats do not wait for them).
 *
 * A handler's error dead-letters the message (a `dlq` outbound message), except a
 * `retryable` OrchestratorError (a store or lock service briefly unavailable): that one is
 * retried after a short pause, up to `maxDeliveries` attempts in all, then dead-lettered
 * (`gave up after N deliveries: …`), like the NATS adapter does. (NATS retries any error
 * that is not a non-retryable OrchestratorError; here a plain error — a bug, or a body the
 * handler's schema refuses, which NATS catches before the handler — is dead-lettered at
 * once, as before.) A message being retried keeps its place: its slot of the window and,
 * for an event or a decision, its turn among its project's barriers (stricter than NATS, which
 * hands a retried message back to the stream and goes on).
 */
export class InProcessEventBus implements EventBus {
  private readonly agents = new Map<string, AgentHandler>();
  private readonly backlog = new Map<string, TaskDispatch[]>();
  private readonly listeners = new Set<OutboundListener>();
  private handlers: InboundHandlers | null = null;
  /** Results and heartbeats sent, not started yet (in the order sent). */
  private readonly waiting: Inbound[] = [];
  /** Barriers sent, not started yet (in the order sent): one at a time per project. */
  private readonly barriers: Inbound[] = [];
  /** Started, not settled. */
  private running = 0;
  /** Projects with a barrier (event, decision) running: their next barrier waits. */
  private readonly busy = new Set<string>();
  private idleWaiters: (() => void)[] = [];
  private readonly window: number;
  private readonly maxDeliveries: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;

  constructor(options: InProcessEventBusOptions = {}) {
    this.window = windowSize(options.inboundConcurrency);
    this.maxDeliveries = windowSize(options.maxDeliveries ?? 5, 'maxDeliveries');
    this.retryBaseMs = options.retryDelay?.baseMs ?? 5;
    this.retryMaxMs = options.retryDelay?.maxMs ?? 100;
  }

  async dispatchTask(agent: string, task: TaskDispatch): Promise<void> {
    const handler = this.agents.get(agent);
    if (!handler) {
      const list = this.backlog.get(agent) ?? [];
      list.push(task);
      this.backlog.set(agent, list);
      return;
    }
    queueMicrotask(() => void this.runAgent(handler, task));
  }

  async publish(message: Outbound): Promise<void> {
    for (const listener of this.listeners) listener(message);
  }

  async consume(handlers: InboundHandlers): Promise<InboundSubscription> {
    this.handlers = handlers;
    return {
      close: async () => {
        this.handlers = null;
        await this.idle();
      },
    };
  }

  /** Registers an in-process agent; backlogged dispatches for it are delivered now. */
  registerAgent(agent: string, handler: AgentHandler): () => void {
    this.agents.set(agent, handler);
    const waiting = this.backlog.get(agent) ?? [];
    this.backlog.delete(agent);
    for (const task of waiting) queueMicrotask(() => void this.runAgent(handler, task));
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
    return this.enqueue('event', String(event.projectId), 'events', event, (h) => h.event(event));
  }
  sendResult(projectId: string, result: TaskResult): Promise<void> {
    return this.enqueue('result', projectId, 'results', result, (h) => h.result(projectId, result));
  }
  sendHeartbeat(projectId: string, heartbeat: Heartbeat): Promise<void> {
    return this.enqueue('heartbeat', projectId, 'heartbeats', heartbeat, (h) => h.heartbeat(projectId, heartbeat));
  }
  sendDecision(projectId: string, decision: ApprovalDecided): Promise<void> {
    return this.enqueue('decision', projectId, 'approvals.decided', decision, (h) => h.decision(projectId, decision));
  }

  /** A control request, answered like the NATS request-reply subject. */
  async sendControl(projectId: string, request: ControlRequest): Promise<{ ok: true; result: unknown } | { ok: false; error: { code: string; message: string } }> {
    const handlers = this.handlers;
    if (!handlers) return { ok: false, error: { code: 'ERR_CLOSED', message: 'no consumer is running' } };
    try {
      return { ok: true, result: await handlers.control(projectId, request) };
    } catch (err) {
      return { ok: false, error: { code: isOrchestratorError(err) ? err.code : 'ERR_INTERNAL', message: (err as Error).message } };
    }
  }

  /** Resolves when every inbound message sent so far has been handled. */
  idle(): Promise<void> {
    if (this.running === 0 && this.waiting.length === 0 && this.barriers.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async runAgent(handler: AgentHandler, task: TaskDispatch): Promise<void> {
    try {
      await handler(task);
    } catch (err) {
      await this.publish({ kind: 'dlq', body: { subject: `tasks.${task.taskType}`, reason: `agent threw: ${(err as Error).message}`, data: JSON.stringify(task) } });
    }
  }

  private enqueue(kind: InboundKind, projectId: string, subject: string, data: unknown, run: (h: InboundHandlers) => Promise<void>): Promise<void> {
    return new Promise<void>((resolve) => {
      const message = { barrier: isBarrier(kind), projectId, subject, data, run, done: resolve };
      (message.barrier ? this.barriers : this.waiting).push(message);
      this.pump();
    });
  }

  /**
   * Starts what the rule allows: results and heartbeats in the order sent, while the window
   * has room; barriers one at a time per project, in the order sent (a waiting barrier does
   * not hold back other projects' barriers, nor the results sent after it).
   */
  private pump(): void {
    while (this.running < this.window) {
      // A project's earliest waiting barrier comes before its later ones: the first one
      // whose project is free is that project's next.
      const free = this.barriers.findIndex((b) => !this.busy.has(b.projectId));
      const next = free >= 0 ? this.barriers.splice(free, 1)[0]! : this.waiting.shift();
      if (!next) return;
      this.running += 1;
      if (next.barrier) this.busy.add(next.projectId);
      void this.handle(next).finally(() => {
        this.running -= 1;
        if (next.barrier) this.busy.delete(next.projectId);
        next.done();
        this.pump();
        if (this.running === 0 && this.waiting.length === 0 && this.barriers.length === 0) {
          const waiters = this.idleWaiters;
          this.idleWaiters = [];
          for (const w of waiters) w();
        }
      });
    }
  }

  /** Runs the handler (retrying what may succeed later); dead-letters what fails for good. Never rejects. */
  private async handle(message: Inbound): Promise<void> {
    const letter = (reason: string) => this.deadLetter({ subject: message.subject, reason, data: JSON.stringify(message.data) }).catch(() => undefined);
    for (let delivery = 1; ; delivery++) {
      const handlers = this.handlers;
      if (!handlers) return letter('no consumer is running');
      try {
        await message.run(handlers);
        return;
      } catch (err) {
        const reason = isOrchestratorError(err) ? `${err.code}: ${err.message}` : err instanceof Error ? err.message : String(err);
        if (!isOrchestratorError(err) || !err.retryable) return letter(reason);
        if (delivery >= this.maxDeliveries) return letter(`gave up after ${delivery} deliveries: ${reason}`);
        const delay = Math.min(this.retryBaseMs * 2 ** (delivery - 1), this.retryMaxMs);
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  private async deadLetter(body: DeadLetterMessage): Promise<void> {
    await this.publish({ kind: 'dlq', body });
  }
}

interface Inbound {
  barrier: boolean;
  /** The project named by the message (barriers are per project). */
  projectId: string;
  subject: string;
  data: unknown;
  run: (h: InboundHandlers) => Promise<void>;
  /** Resolves the sender's promise. */
  done: () => void;
}
