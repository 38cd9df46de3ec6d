import {
  jetstream,
  jetstreamManager,
  type Consumer,
  type ConsumerMessages,
  type JetStreamClient,
  type JsMsg,
} from '@nats-io/jetstream';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { TaskDispatch, TaskDispatchBatch, TaskResult } from '../domain/messages.js';
import { AgentName } from '../domain/task.js';
import { ValidationError } from '../errors.js';
import { silentLogger, type Logger } from '../logger.js';
import { DeadLetterPublisher } from '../adapters/nats/dead-letter.js';
import { JetStreamPublisher } from '../adapters/nats/jetstream-publisher.js';
import { bytesToText, formatIssues, parseJson } from '../adapters/nats/inbound.js';
import {
  agentConsumerName,
  defaultStreamPrefix,
  durableConfig,
  ensureConsumer,
  ensureStream,
  jetstreamFailure,
  streamConfig,
  streamNames,
} from '../adapters/nats/streams.js';
import { onReconnect } from '../adapters/nats/connection.js';
import { natsSubjects, subjectTemplates, type NatsSubjects, type SubjectTemplates } from '../adapters/nats/subjects.js';
import { injectTrace, processTraced, sendTraced } from '../adapters/nats/trace-headers.js';
import { linksTo, tracingOn, type Context } from '../tracing/tracing.js';

export interface AgentTaskContext {
  /** Aborted only by `stop({ abort: true })`; a plain `stop()` lets the handler finish. */
  signal: AbortSignal;
  /** Sends a heartbeat now (they are also sent every `heartbeatMs` while the handler runs). */
  heartbeat(): Promise<void>;
  /** 1 on the first delivery of this dispatch to the agent, more after a worker crash. */
  delivery: number;
}

export interface AgentTaskOutcome {
  output?: Record<string, unknown>;
  actualCost?: number;
}

/** Does the work; resolves with the output and cost, or throws (→ a `failed` result with the message). */
export type AgentTaskHandler = (task: TaskDispatch, context: AgentTaskContext) => Promise<AgentTaskOutcome>;

export interface AgentWorkerOptions {
  connection: NatsConnection;
  /** The agent name (the `<agent>` of `lap.tasks.<agent>`). */
  agent: string;
  handle: AgentTaskHandler;
  /** Default `lap`; must match the orchestrator's. */
  subjectPrefix?: string;
  /** Default: the subject prefix upper-cased; must match the orchestrator's. */
  streamPrefix?: string;
  /** Heartbeat period while a handler runs (the first one after one period); default 10 000 ms. */
  heartbeatMs?: number;
  /** Tasks handled at the same time; default 1. */
  concurrency?: number;
  /**
   * Results of one project that finish in the same turn of the event loop go to the
   * orchestrator in one message (`{ "results": [...] }`); default true. False: one message per result.
   */
  batchResults?: boolean;
  /**
   * A results message carries about this many bytes of results at most (a result bigger
   * than this goes alone); default 64 KiB. Keep it under the orchestrator's
   * MAX_PAYLOAD_BYTES, which a message is checked against as a whole.
   */
  resultBatchBytes?: number;
  /** Deliveries of a dispatch (worker crashes) before the stream stops offering it; default 5. */
  maxDeliveries?: number;
  logger?: Logger;
}

export interface AgentWorker {
  readonly agent: string;
  /** Tasks being handled now. */
  readonly running: number;
  /**
   * Stops pulling tasks, waits for the running handlers to finish and their results to
   * be published, then resolves. With `abort`, the handlers' signal is aborted first.
   */
  stop(options?: { abort?: boolean }): Promise<void>;
}

const FETCH_EXPIRES_MS = 5_000;
const RESULT_PUBLISH_ATTEMPTS = 3;
const RESULT_PUBLISH_TIMEOUT_MS = 10_000;
const ERROR_MAX = 10_000;
/** A results message carries at most this many results. */
const RESULTS_PER_MESSAGE = 500;
/** Default `resultBatchBytes`. */
const RESULT_BATCH_BYTES = 64 * 1024;

/**
 * Starts an agent worker: a durable pull consumer (`agent_<agent>`) on the task
 * work-queue stream, so dispatches made before the worker started are received, and
 * shared by every process of the agent (each dispatch goes to one of them). A dispatch is
 * pulled only when a slot is free (no prefetch: tasks may be long), kept alive with the
 * heartbeats, and acknowledged once its result is stored in the inbound stream.
 * A message of several dispatches (`{"dispatches":[…]}`, sent to the agents the
 * orchestrator's DISPATCH_BATCH names) is pulled for the slots it fills (the pull counts
 * the dispatches per message of the last one); its dispatches run as slots free, in
 * order, each as if it had come alone, and the message is acknowledged once every one has
 * its result stored (kept alive meanwhile with `working()` each heartbeat period).
 * Resolves once the consumer exists.
 */
export async function createAgentWorker(options: AgentWorkerOptions): Promise<AgentWorker> {
  if (!AgentName.safeParse(options.agent).success) {
    throw new ValidationError('invalid agent name', [`agent=${JSON.stringify(options.agent)}`]);
  }
  const concurrency = options.concurrency ?? 1;
  const heartbeatMs = options.heartbeatMs ?? 10_000;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new ValidationError('concurrency must be a positive integer');
  if (!(heartbeatMs > 0)) throw new ValidationError('heartbeatMs must be positive');
  const prefix = options.subjectPrefix ?? 'lap';
  const subjects = natsSubjects(prefix);
  const names = streamNames(options.streamPrefix ?? defaultStreamPrefix(prefix));
  const nc = options.connection;
  const js = jetstream(nc);
  const durable = agentConsumerName(options.agent);
  try {
    const jsm = await jetstreamManager(nc);
    // The orchestrator owns the layout (it updates it); an agent only creates what is missing.
    await ensureStream(jsm, streamConfig('tasks', names, subjects), 'create-if-missing');
    await ensureStream(jsm, streamConfig('inbound', names, subjects), 'create-if-missing');
    await ensureStream(jsm, streamConfig('dlq', names, subjects), 'create-if-missing');
    const ackWaitMs = Math.max(30_000, heartbeatMs * 3);
    await ensureConsumer(jsm, names.tasks, durableConfig(durable, {
      ackWaitMs,
      maxDeliver: options.maxDeliveries ?? 5,
      filterSubject: subjects.task(options.agent),
    }));
    const consumer = await js.consumers.get(names.tasks, durable);
    return new Worker({ ...options, concurrency, heartbeatMs }, subjects, js, consumer).start();
  } catch (err) {
    throw jetstreamFailure(`start of agent worker ${options.agent}`, err);
  }
}

type WorkerSettings = AgentWorkerOptions & { concurrency: number; heartbeatMs: number };

/** A message taken from the stream, until every dispatch it carries is settled. */
interface Delivery {
  m: JsMsg;
  /** Its dispatches not settled yet. */
  left: number;
  /** One of them could not be settled (its result not stored): the message is handed back. */
  failed: boolean;
  /** `working()` every heartbeat period, for a message of several dispatches. */
  timer: NodeJS.Timeout | null;
}

/** `{ "dispatches": [...] }`: the batch form of a dispatch message. */
function isBatch(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && 'dispatches' in value;
}

class Worker implements AgentWorker {
  readonly agent: string;
  private readonly logger: Logger;
  private readonly deadLetters: DeadLetterPublisher;
  /** Results: stored in the inbound stream, acknowledgements on one subscription. */
  private readonly results: JetStreamPublisher;
  private readonly active = new Set<Promise<void>>();
  private readonly controllers = new Set<AbortController>();
  private stopping = false;
  private fetching: ConsumerMessages | null = null;
  /** Ends the pull on a reconnect (the server lost it), so the worker pulls again at once. */
  private stopWatching: () => void = () => undefined;
  private wake: (() => void) | null = null;
  private loop: Promise<void> = Promise.resolve();
  private stopped: Promise<void> | null = null;
  /** Results waiting for the next flush (see `settle`); `trace`: the task's `process` span (tracing on). */
  private readonly finished: { d: Delivery; task: TaskDispatch; result: TaskResult; done: () => void; trace: Context | undefined }[] = [];
  /** Dispatches taken (in a message of several) waiting for a slot, in order. */
  private readonly waiting: { delivery: Delivery; task: TaskDispatch }[] = [];
  /** Dispatches in the last message taken: the fetch asks for the free slots divided by this. */
  private perMessage = 1;
  private readonly templates: SubjectTemplates;

  constructor(
    private readonly settings: WorkerSettings,
    private readonly subjects: NatsSubjects,
    js: JetStreamClient,
    private readonly consumer: Consumer,
  ) {
    this.agent = settings.agent;
    this.templates = subjectTemplates(subjects.prefix);
    this.logger = (settings.logger ?? silentLogger()).child({ agent: settings.agent });
    this.deadLetters = new DeadLetterPublisher(js, subjects.dlq, this.logger);
    this.results = new JetStreamPublisher(settings.connection, RESULT_PUBLISH_TIMEOUT_MS);
  }

  get running(): number {
    return this.active.size;
  }

  start(): this {
    this.stopWatching = onReconnect(this.settings.connection, () => void this.fetching?.close().catch(() => undefined));
    this.loop = this.run();
    return this;
  }

  stop(options: { abort?: boolean } = {}): Promise<void> {
    if (options.abort) {
      for (const c of this.controllers) c.abort(new Error('agent worker stopped'));
      // Not started: their messages are handed back once the rest of them settle.
      for (const { delivery } of this.waiting.splice(0)) this.settled(delivery, false);
    }
    this.stopped ??= (async () => {
      this.stopping = true;
      this.stopWatching();
      this.wake?.();
      const fetching = this.fetching;
      if (fetching) void fetching.close().catch(() => undefined);
      await this.loop;
      // The dispatches of messages taken start as slots free, after a plain stop too.
      while (this.active.size) await Promise.allSettled([...this.active]);
    })();
    return this.stopped;
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      await this.freeSlot();
      // Let the tasks finishing at the same moment free their slots too: one bigger pull.
      if (this.active.size > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.stopping) break;
      if (this.settings.connection.isClosed()) {
        this.logger.warn('NATS connection closed; the worker takes no more tasks');
        return;
      }
      try {
        // Messages for the free slots, counting the dispatches per message of the last one.
        const batch = await this.consumer.fetch({
          max_messages: Math.max(1, Math.floor((this.settings.concurrency - this.active.size) / this.perMessage)),
          expires: FETCH_EXPIRES_MS,
        });
        this.fetching = batch;
        if (this.stopping) void batch.close();
        for await (const m of batch) {
          if (this.stopping) m.nak(); // not started: another worker of the agent may take it now
          else this.receive(m);
        }
      } catch (err) {
        if (this.stopping) break;
        this.logger.warn({ err }, 'fetching tasks failed; retrying');
        await this.pause(1_000);
      } finally {
        this.fetching = null;
      }
    }
  }

  /** Resolves once a slot is free and no dispatch taken waits for one (or at stop). */
  private freeSlot(): Promise<void> {
    if ((this.active.size < this.settings.concurrency && !this.waiting.length) || this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      this.wake = resolve;
    });
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /**
   * A message taken: its dispatches — one (TaskDispatch), or several (TaskDispatchBatch) —
   * run as slots free, in order. A message that is neither is dead-lettered whole; an
   * entry of a batch that is no TaskDispatch is dead-lettered alone, and the others run.
   */
  private receive(m: JsMsg): void {
    const json = parseJson(bytesToText(m.data));
    const batch = json.ok && isBatch(json.value) ? TaskDispatchBatch.safeParse(json.value) : null;
    const single = json.ok && !batch ? TaskDispatch.safeParse(json.value) : null;
    if (!json.ok || (batch && !batch.success) || (single && !single.success)) {
      const reason = !json.ok ? json.reason : `schema violation: ${formatIssues((batch ?? single)!.error!)}`;
      this.launch(this.deadLetter(m, reason, bytesToText(m.data)).then((ok) => (ok ? m.term() : m.nak(5_000))));
      return;
    }
    const entries = batch ? batch.data!.dispatches : [single!.data!];
    const delivery: Delivery = { m, left: entries.length, failed: false, timer: null };
    this.perMessage = entries.length;
    // The dispatches waiting for a slot run no handler to keep the message: kept here.
    if (entries.length > 1) delivery.timer = setInterval(() => m.working(), this.settings.heartbeatMs);
    for (const entry of entries) {
      const parsed = batch ? TaskDispatch.safeParse(entry) : null;
      if (parsed && !parsed.success) {
        const reason = `schema violation in a dispatches batch: ${formatIssues(parsed.error)}`;
        this.launch(this.deadLetter(m, reason, JSON.stringify(entry)).then((ok) => this.settled(delivery, ok)));
      } else {
        this.waiting.push({ delivery, task: parsed ? parsed.data : (entry as TaskDispatch) });
      }
    }
    this.fillSlots();
  }

  /** True once the dead letter is stored. */
  private async deadLetter(m: JsMsg, reason: string, data: string): Promise<boolean> {
    try {
      await this.deadLetters.send({ subject: m.subject, reason, data });
      return true;
    } catch {
      return false;
    }
  }

  /** Starts the dispatches waiting, as far as the slots go (after a plain stop too: their messages were taken). */
  private fillSlots(): void {
    while (this.waiting.length && this.active.size < this.settings.concurrency) {
      const { delivery, task } = this.waiting.shift()!;
      this.launch(this.process(delivery, task));
    }
  }

  private launch(work: Promise<void>): void {
    const p = work
      .catch((err: unknown) => this.logger.error({ err }, 'task processing failed'))
      .finally(() => {
        this.active.delete(p);
        this.fillSlots();
        const wake = this.wake;
        this.wake = null;
        wake?.();
      });
    this.active.add(p);
  }

  /**
   * One dispatch of a message settled (its result stored, or its dead letter): the message
   * is acknowledged once all are, or handed back (`nak`) if one of them could not be (all
   * its dispatches come again; results already stored are found applied).
   */
  private settled(d: Delivery, ok: boolean): void {
    if (!ok) d.failed = true;
    if (--d.left > 0) return;
    if (d.timer) clearInterval(d.timer);
    if (d.failed) d.m.nak(5_000);
    else d.m.ack();
  }

  private async process(d: Delivery, task: TaskDispatch): Promise<void> {
    if (!tracingOn()) {
      const result = await this.run1(d.m, task, undefined);
      return this.settle(d, task, result, undefined);
    }
    // Traced: the task's work in the CONSUMER span `process <prefix>.tasks.{agent}`, a child
    // of the dispatch's `send` span (its message's headers); the handler runs with it active
    // (its own spans are its children), and the result and heartbeats carry it back.
    await processTraced(this.templates.task, d.m.subject, `${task.taskId}:${task.fencingToken}`, d.m.headers, async (ctx) => {
      const result = await this.run1(d.m, task, ctx);
      await this.settle(d, task, result, ctx);
    });
  }

  /**
   * Publishes a result and then settles its dispatch. Results that finish in the same
   * turn of the event loop are published together: those of one project in one message
   * (`batchResults`), the messages in one synchronous pass; a dispatch is settled once the
   * stream has stored the message with its result.
   */
  private settle(d: Delivery, task: TaskDispatch, result: TaskResult, trace: Context | undefined): Promise<void> {
    return new Promise((resolve) => {
      this.finished.push({ d, task, result, done: resolve, trace });
      if (this.finished.length === 1) setImmediate(() => void this.flushResults());
    });
  }

  private async flushResults(): Promise<void> {
    const finished = this.finished.splice(0).map((f) => ({ ...f, json: JSON.stringify(f.result) }));
    const batch = this.settings.batchResults ?? true;
    await Promise.all(
      (batch ? resultMessages(finished, this.settings.resultBatchBytes ?? RESULT_BATCH_BYTES) : finished.map((f) => [f])).map(async (group) => {
        let err: unknown = null;
        try {
          await this.publishResults(group);
        } catch (e) {
          err = e;
        }
        for (const { d, task, done } of group) {
          if (err) this.logger.error({ err, taskId: task.taskId }, 'cannot publish the result; the task will be redelivered');
          this.settled(d, !err);
          done();
        }
      }),
    );
  }

  /** Runs the handler with heartbeats; always resolves with the result to publish. */
  private async run1(m: JsMsg, task: TaskDispatch, trace: Context | undefined): Promise<TaskResult> {
    const controller = new AbortController();
    this.controllers.add(controller);
    const heartbeat = async (): Promise<void> => {
      m.working();
      const subject = this.subjects.heartbeats(task.projectId);
      const body = JSON.stringify({ taskId: task.taskId, fencingToken: task.fencingToken });
      if (!trace) return this.settings.connection.publish(subject, body);
      // Traced: a PRODUCER span, a child of the task's `process` span, in the headers.
      await sendTraced(this.templates.heartbeats, subject, undefined, async (ctx) => {
        const h = natsHeaders();
        injectTrace(ctx, h);
        this.settings.connection.publish(subject, body, { headers: h });
      }, { parent: trace });
    };
    const beat = () => void heartbeat().catch((err: unknown) => this.logger.warn({ err, taskId: task.taskId }, 'heartbeat failed'));
    // The first heartbeat after one period, not at the start: the dispatch set the deadline,
    // and a task shorter than the period sends none (one inbound message per task, its result).
    const timer = setInterval(beat, this.settings.heartbeatMs);
    const base = { taskId: task.taskId, fencingToken: task.fencingToken };
    try {
      const outcome = await this.settings.handle(task, { signal: controller.signal, heartbeat, delivery: m.info.deliveryCount });
      const candidate = { ...base, status: 'completed' as const, ...pick(outcome) };
      const checked = TaskResult.safeParse(candidate);
      if (checked.success) return checked.data;
      return { ...base, status: 'failed', error: `invalid handler outcome: ${formatIssues(checked.error)}` };
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      return { ...base, status: 'failed', error: (message || 'handler failed').slice(0, ERROR_MAX) };
    } finally {
      clearInterval(timer);
      this.controllers.delete(controller);
    }
  }

  /**
   * Stores results of one project in the inbound stream — one alone as a TaskResult, more
   * as a TaskResultBatch — and resolves on the stream's acknowledgement (the dispatches are
   * acknowledged only after), up to RESULT_PUBLISH_ATTEMPTS attempts with a growing pause
   * between them. Every attempt carries the same message id: a retry of a message the
   * stream did store is dropped as a duplicate.
   */
  private async publishResults(group: readonly { task: TaskDispatch; json: string; trace: Context | undefined }[]): Promise<void> {
    const first = group[0]!.task;
    const subject = this.subjects.results(first.projectId);
    const [body, id] =
      group.length === 1
        ? [group[0]!.json, `${first.taskId}:${first.fencingToken}:result`]
        : [`{"results":[${group.map((g) => g.json).join(',')}]}`, `${first.taskId}:${first.fencingToken}:results:${group.length}`];
    if (!tracingOn()) return this.publishAttempts(subject, body, id, undefined);
    const traced = group.find((g) => g.trace !== undefined)?.trace;
    if (!traced) return this.publishAttempts(subject, body, id, undefined);
    // Traced: a PRODUCER span, a child of the (first) task's `process` span, linked to the
    // others of the message, in the headers: the orchestrator's `process` span continues it.
    return sendTraced(this.templates.results, subject, id, (ctx) => this.publishAttempts(subject, body, id, ctx), {
      parent: traced,
      links: linksTo(group.filter((g) => g.trace !== traced).map((g) => g.trace)),
      count: group.length,
    });
  }

  private async publishAttempts(subject: string, body: string, id: string, trace: Context | undefined): Promise<void> {
    let lastError: unknown;
    for (let attempt = 1; attempt <= RESULT_PUBLISH_ATTEMPTS; attempt++) {
      if (attempt > 1) await new Promise((resolve) => setTimeout(resolve, 500 * (attempt - 1)));
      try {
        await this.results.publish(subject, body, id, trace);
        return;
      } catch (err) {
        lastError = err;
      }
    }
    throw lastError;
  }
}

/**
 * Results finished together, grouped into messages: by project, at most
 * RESULTS_PER_MESSAGE and about `maxBytes` of JSON each (a bigger result goes alone).
 */
function resultMessages<T extends { task: TaskDispatch; json: string }>(finished: readonly T[], maxBytes: number): T[][] {
  const open = new Map<string, { items: T[]; bytes: number }>();
  const messages: T[][] = [];
  for (const f of finished) {
    let current = open.get(f.task.projectId);
    if (!current || current.items.length >= RESULTS_PER_MESSAGE || current.bytes + f.json.length > maxBytes) {
      current = { items: [], bytes: 0 };
      open.set(f.task.projectId, current);
      messages.push(current.items);
    }
    current.items.push(f);
    current.bytes += f.json.length + 1;
  }
  return messages;
}

function pick(outcome: AgentTaskOutcome | undefined): Partial<Pick<TaskResult, 'output' | 'actualCost'>> {
  const out: Partial<Pick<TaskResult, 'output' | 'actualCost'>> = {};
  if (outcome?.output !== undefined) out.output = outcome.output;
  if (outcome?.actualCost !== undefined) out.actualCost = outcome.actualCost;
  return out;
}
