import { isOrchestratorError } from '../../errors.js';
import type { ApprovalDecided, ControlRequest, DeadLetterMessage, Heartbeat, TaskDispatch, TaskResult } from '../../domain/messages.js';
import type { PipelineEventInput } from '../../domain/pipeline.js';
import type { EventBus, InboundHandlers, InboundSubscription, Outbound } from '../../ports/event-bus.js';

export type AgentHandler = (task: TaskDispatch) => void | Promise<void>;
export type OutboundListener = (message: Outbound) => void;

/**
 * The in-process event bus: the embedded default and the bus of fast tests. Dispatches
 * go to agents registered in the same process (or wait in a per-agent backlog until one
 * registers, as a work-queue stream would keep them); inbound messages are handed to the
 * orchestrator's handlers one at a time per kind, in order. A handler's non-retryable
 * error dead-letters the message (a `dlq` outbound message), like the NATS adapter does.
 */
export class InProcessEventBus implements EventBus {
  private readonly agents = new Map<string, AgentHandler>();
  private readonly backlog = new Map<string, TaskDispatch[]>();
  private readonly listeners = new Set<OutboundListener>();
  private handlers: InboundHandlers | null = null;
  private readonly pending: (() => Promise<void>)[] = [];
  private draining = false;
  private idleWaiters: (() => void)[] = [];

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

  // Inbound, as an agent or another service would send it.
  sendEvent(event: PipelineEventInput): Promise<void> {
    return this.enqueue('events', event, (h) => h.event(event));
  }
  sendResult(projectId: string, result: TaskResult): Promise<void> {
    return this.enqueue('results', result, (h) => h.result(projectId, result));
  }
  sendHeartbeat(projectId: string, heartbeat: Heartbeat): Promise<void> {
    return this.enqueue('heartbeats', heartbeat, (h) => h.heartbeat(projectId, heartbeat));
  }
  sendDecision(projectId: string, decision: ApprovalDecided): Promise<void> {
    return this.enqueue('approvals.decided', decision, (h) => h.decision(projectId, decision));
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
    if (!this.draining && this.pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async runAgent(handler: AgentHandler, task: TaskDispatch): Promise<void> {
    try {
      await handler(task);
    } catch (err) {
      await this.publish({ kind: 'dlq', body: { subject: `tasks.${task.taskType}`, reason: `agent threw: ${(err as Error).message}`, data: JSON.stringify(task) } });
    }
  }

  private enqueue(subject: string, data: unknown, run: (h: InboundHandlers) => Promise<void>): Promise<void> {
    return new Promise<void>((resolve) => {
      this.pending.push(async () => {
        const handlers = this.handlers;
        if (!handlers) {
          await this.deadLetter({ subject, reason: 'no consumer is running', data: JSON.stringify(data) });
        } else {
          try {
            await run(handlers);
          } catch (err) {
            const reason = isOrchestratorError(err) ? `${err.code}: ${err.message}` : (err as Error).message;
            await this.deadLetter({ subject, reason, data: JSON.stringify(data) });
          }
        }
        resolve();
      });
      void this.drain();
    });
  }

  private async deadLetter(body: DeadLetterMessage): Promise<void> {
    await this.publish({ kind: 'dlq', body });
  }

  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    while (this.pending.length) await this.pending.shift()!();
    this.draining = false;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
