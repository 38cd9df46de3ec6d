import type {
  ControlRequest,
  ApprovalDecided,
  ApprovalExpired,
  ApprovalRequested,
  BudgetStatus,
  DeadLetterMessage,
  Heartbeat,
  ProjectStatusMessage,
  QueryRequest,
  TaskDispatch,
  TaskResult,
  TaskStatusMessage,
} from '../domain/messages.js';
import type { PipelineEvent } from '../domain/pipeline.js';

/** A dispatch, with the traceparent stored with its task (its ingest's; null when untraced): the dispatch's span is its child. */
export interface DispatchItem {
  task: TaskDispatch;
  traceParent?: string | null;
}

/** What the orchestrator publishes, once the change behind it is durable. */
export type Outbound =
  | { kind: 'status'; body: TaskStatusMessage }
  | { kind: 'budget'; body: BudgetStatus }
  | { kind: 'project'; body: ProjectStatusMessage }
  | { kind: 'approval_requested'; body: ApprovalRequested }
  | { kind: 'approval_expired'; body: ApprovalExpired }
  | { kind: 'dlq'; body: DeadLetterMessage };

/**
 * Handlers for what comes in. Each resolves once the message's effect is durable; the
 * bus acknowledges the message only then (and redelivers it otherwise). A handler that
 * rejects with a non-retryable error means the message is bad: the bus dead-letters it
 * (a `dlq` message with the reason) and does not hand it over again. Any other rejection
 * is retried with back-off, then dead-lettered. Handlers get bodies the bus has checked
 * against the wire schemas. A project's events and decisions are handed over one at a
 * time, in arrival order (a retried one keeps its turn); results and heartbeats
 * concurrently. Every adapter runs test/contract/event-bus.contract.ts.
 */
export interface InboundHandlers {
  event(event: PipelineEvent): Promise<void>;
  result(projectId: string, result: TaskResult): Promise<void>;
  heartbeat(projectId: string, heartbeat: Heartbeat): Promise<void>;
  decision(projectId: string, decision: ApprovalDecided): Promise<void>;
  /**
   * A control request (request-reply): the reply is `{ ok: true, result }` with what this
   * resolves to, or `{ ok: false, error: { code, message } }` when it rejects.
   */
  control(projectId: string, request: ControlRequest): Promise<unknown>;
  /**
   * A query (request-reply, `<prefix>.query.<kind>`): answered like a control request. A
   * bus whose handlers have none answers `ERR_VALIDATION` (no queries here).
   */
  query?(request: QueryRequest): Promise<unknown>;
}

export interface InboundSubscription {
  close(): Promise<void>;
}

/** The messaging port: NATS in production, in-process for the embedded default. */
export interface EventBus {
  /** Delivers a task to its agent (`lap.tasks.<agent>`); resolves once handed over durably. */
  dispatchTask(agent: string, task: TaskDispatch): Promise<void>;
  /**
   * The most dispatches one message to `agent` carries: on NATS, the number the deployment
   * gives the agent in DISPATCH_BATCH; otherwise 1 (each dispatch its own message, by
   * dispatchTask). The dispatch outbox hands the dispatches of an agent above 1 to dispatchTasks.
   */
  dispatchBatchSize(agent: string): number;
  /**
   * Delivers dispatches to one agent together: on NATS, several in one message
   * (`{"dispatches":[…]}`, at most dispatchBatchSize(agent) and about 64 KiB each; a bigger
   * dispatch, or one alone, goes as dispatchTask sends it). Resolves with, per dispatch in
   * order, null once it is handed over durably or the error that stopped it (never rejects).
   */
  dispatchTasks(agent: string, items: readonly DispatchItem[]): Promise<(Error | null)[]>;
  publish(message: Outbound): Promise<void>;
  /** Starts delivering inbound messages to the handlers. */
  consume(handlers: InboundHandlers): Promise<InboundSubscription>;
}

/**
 * What the orchestrators publish, heard by a reader (the review console, the demo's
 * progress): every instance's notices, from the subscription on (no history).
 */
export interface OutboundFeed {
  /** Hears each message until the returned function is called. */
  subscribe(listener: (message: Outbound) => void): Promise<() => Promise<void>>;
}
