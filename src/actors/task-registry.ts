import { z } from 'zod';
import {
  DependencyCycleError,
  TaskNotFoundError,
  UnknownDependencyError,
  ValidationError,
  VersionConflictError,
} from '../errors.js';
import { NewTaskInput, newTaskId, type TaskStatus } from '../domain/task.js';
import type { TaskTypeCatalog } from '../domain/task-types.js';
import type { Clock } from '../ports/clock.js';
import type { Commit, TransitionOutcome } from '../ports/commit.js';
import { noMetrics, type Metrics } from '../ports/metrics.js';
import type { NewTaskRecord, TaskRecord } from '../ports/task-store.js';
import { TASK_MACHINE_VERSION } from '../machines/task-machine.js';
import { TaskActor, type InitialSnapshot, type PreparedTransition, type SendOptions, type TaskActorDeps, type TaskTransition } from './task-actor.js';
import type { TaskEvent } from '../machines/task-machine.js';
import { createTaskSteps, type TaskSteps } from '../machines/task-steps.js';
import type { CommittedInspection } from '../inspect/committed-steps.js';
import type { TaskActorRef } from './system.js';
import { auditDetail, initialTaskSnapshot, patchFromSnapshot, storedSnapshot } from './task-snapshot.js';

/** How many times an item is decided: on the held copy, then on rows read fresh. */
export const DECIDE_ROUNDS = 3;

export interface BatchItem {
  taskId: string;
  event: TaskEvent;
  options?: SendOptions;
}

/** What the store returns with a written transition besides its version (see TransitionOutcome). */
type WrittenExtras = Omit<Extract<TransitionOutcome, { ok: true }>, 'ok' | 'version'>;

/** Per item: the durable transition, with what the store returned with it; or the refusal. */
export type BatchOutcome = ({ ok: true; transition: TaskTransition } & WrittenExtras) | { ok: false; error: Error };

export interface TaskRegistryDeps extends Omit<TaskActorDeps, 'steps'> {
  /** Where the transitions are written (with their budget effects and raised events). */
  commit: Commit;
  /** The task machine's steps (default: made once per registry). */
  steps?: TaskSteps;
  catalog: TaskTypeCatalog;
  clock: Clock;
  /** TASK_TIMEOUT: the per-attempt timeout of task types that set none. */
  defaultTimeoutMs: number;
  /** TASK_MAX_ATTEMPTS: attempts of task types that set none. */
  defaultMaxAttempts?: number;
  /** Cost estimate of a new task (default: the catalogue's cost model). */
  estimateCost?: (taskType: string, agent: string, input: Record<string, unknown>) => number;
  /** Where each committed step (creations included) is reported; default: nowhere. */
  metrics?: Metrics;
}

export interface CreateTasksOptions {
  /** Create the tasks in WAITING_APPROVAL (the follow-up tasks of a checkpoint). */
  awaitingApproval?: boolean;
  /** The W3C traceparent of the ingest that creates them (tracing on): their dispatches continue its trace. */
  traceParent?: string | null;
}

/**
 * Holds the live actors of non-final tasks, and only those: a task that reaches a final
 * state is stopped and dropped, so completed tasks in the table cost no memory. Creates
 * tasks (validated, defaulted from the catalogue, dependencies checked), restores actors
 * after a restart, and routes events to them.
 */
export class TaskRegistry {
  private readonly live = new Map<string, TaskActor>();
  private readonly deps: TaskRegistryDeps & TaskActorDeps;
  /** Initial snapshots of built rows, taken by `adopt` (so a new actor does not restore what was just computed). */
  private readonly initial = new WeakMap<NewTaskRecord, InitialSnapshot>();
  /** The inspection fed from committed steps; undefined (one check per commit) when inspection is off. */
  private readonly inspection: CommittedInspection | undefined;
  private readonly metrics: Metrics;

  constructor(deps: TaskRegistryDeps) {
    this.deps = { ...deps, steps: deps.steps ?? createTaskSteps() };
    this.inspection = deps.system?.inspection;
    this.metrics = deps.metrics ?? noMetrics;
  }

  get liveCount(): number {
    return this.live.size;
  }

  /**
   * Creates tasks in one store round trip. Dependencies must name tasks of the same
   * batch or existing tasks; a cycle or an unknown id refuses the whole batch.
   */
  async createTasks(inputs: readonly NewTaskInput[], options: CreateTasksOptions = {}): Promise<TaskRecord[]> {
    const records = await this.prepare(inputs, options);
    await this.deps.store.createTasks(records, this.deps.instanceId);
    return this.adopt(records);
  }

  /**
   * Validates and builds task rows (defaults from the catalogue, initial snapshot,
   * dependencies checked) without writing them: the caller writes them, possibly in a
   * larger transaction, then calls `adopt`.
   */
  async prepare(inputs: readonly NewTaskInput[], options: CreateTasksOptions = {}): Promise<NewTaskRecord[]> {
    const parsed = z.array(NewTaskInput).safeParse(inputs);
    if (!parsed.success) {
      throw new ValidationError(
        'invalid task',
        parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`),
      );
    }
    const now = this.deps.clock.now();
    const records = parsed.data.map((input) => this.buildRecord(input, now, options.awaitingApproval ?? false));
    if (options.traceParent) for (const r of records) r.traceParent = options.traceParent;
    await this.checkDependencies(records);
    return records;
  }

  /**
   * The READY variants of built PENDING rows without dependencies: each one's machine
   * takes DEPENDENCIES_MET at `at`, so the row can be written READY at once
   * (`createdSteps`; see EventIngest.ready). The rows given are left as they are.
   */
  readyVariants(records: readonly NewTaskRecord[], at: number): NewTaskRecord[] {
    const out: NewTaskRecord[] = [];
    for (const r of records) {
      if (r.status !== 'PENDING' || r.dependencies.length > 0 || !this.initial.has(r)) continue;
      out.push(this.stepVariant(r, { type: 'DEPENDENCIES_MET', at }));
    }
    return out;
  }

  /**
   * The RUNNING variant of a READY variant (see readyVariants): its machine takes DISPATCH
   * with the lease's fencing token, so the row can be written RUNNING at once — the task
   * dispatched in the same write that creates it.
   */
  dispatchVariant(ready: NewTaskRecord, dispatch: { at: number; fencingToken: number; deadline: number }): NewTaskRecord {
    return this.stepVariant(ready, { type: 'DISPATCH', ...dispatch });
  }

  /** `record` after one more step of its machine, not yet written. */
  private stepVariant(record: NewTaskRecord, event: TaskEvent): NewTaskRecord {
    const built = this.initial.get(record);
    if (!built) throw new Error(`task ${record.taskId}: not a row built by this registry`);
    const next = this.deps.steps.step(built.snapshot, event);
    const patch = patchFromSnapshot(next);
    const from = record.status;
    const variant: NewTaskRecord = {
      ...record,
      ...patch,
      output: record.output,
      snapshot: storedSnapshot(next),
      createdSteps: [...(record.createdSteps ?? []), { from, to: patch.status, event: event.type, detail: auditDetail(event) }],
    };
    this.initial.set(variant, { snapshot: next, history: [...(built.history ?? []), { snapshot: built.snapshot, event }] });
    return variant;
  }

  /** Holds the actors of rows just written (version 1, or 1 + the steps of one created past PENDING). */
  adopt(records: readonly NewTaskRecord[]): TaskRecord[] {
    const created = records.map(({ createdSteps, ...r }) => ({ ...r, version: 1 + (createdSteps?.length ?? 0), updatedAt: r.createdAt }));
    created.forEach((record, i) => {
      this.reportCreated(records[i]!);
      const initial = this.initial.get(records[i]!);
      const actor = TaskActor.fromRecord(record, this.deps, initial);
      this.live.set(record.taskId, actor);
      if (this.inspection) this.inspectCreated(actor, initial);
    });
    return created;
  }

  /** A written row's audit steps, to the metrics: the creation, then each step it was created past (as its audit rows). */
  private reportCreated(r: NewTaskRecord): void {
    const at = r.createdAt.getTime();
    const steps = r.createdSteps;
    this.metrics.taskStep(r.taskId, r.taskType, null, steps?.length ? 'PENDING' : r.status, at, null);
    if (steps) for (const s of steps) this.metrics.taskStep(r.taskId, r.taskType, s.from, s.to, at, null);
  }

  /** The creation of a task, and the steps it took before its first write, to the inspection. */
  private inspectCreated(actor: TaskActor, initial: InitialSnapshot | undefined): void {
    const history = initial?.history ?? [];
    const steps = history.map((h, i) => ({ event: h.event, snapshot: history[i + 1]?.snapshot ?? actor.getSnapshot() }));
    this.inspection!.created(actor, history[0]?.snapshot ?? actor.getSnapshot(), steps);
  }

  /**
   * Activates a task's actor (see `TaskActor.activate`): a live XState actor, child of its
   * project's actor, taking every step committed from now on, until the task is final or
   * its actor is evicted. Passivated actors need none of this; it is for a caller that
   * wants to watch one (subscribe to it, find it by `system.get('task:<id>')`).
   */
  async activate(taskId: string): Promise<TaskActorRef> {
    return (await this.get(taskId)).activate();
  }

  /** The actor of a task: the live one, or restored from the store. */
  async get(taskId: string): Promise<TaskActor> {
    const live = this.live.get(taskId);
    if (live) return live;
    const record = await this.deps.store.getTask(taskId);
    if (!record) throw new TaskNotFoundError(taskId);
    const actor = TaskActor.fromRecord(record, this.deps);
    if (!actor.terminal) this.live.set(taskId, actor);
    return actor;
  }

  /** The actors of the tasks this process holds, of `taskIds` (no store read). */
  peekMany(taskIds: readonly string[]): Map<string, TaskActor> {
    const found = new Map<string, TaskActor>();
    for (const id of taskIds) {
      const live = this.live.get(id);
      if (live) found.set(id, live);
    }
    return found;
  }

  /** The actors of many tasks: the live ones, the others restored with one store read. Missing ids are left out. */
  async getMany(taskIds: readonly string[]): Promise<Map<string, TaskActor>> {
    const found = new Map<string, TaskActor>();
    const missing: string[] = [];
    for (const id of taskIds) {
      const live = this.live.get(id);
      if (live) found.set(id, live);
      else missing.push(id);
    }
    if (missing.length) {
      for (const record of await this.deps.store.getTasks(missing)) {
        const actor = this.live.get(record.taskId) ?? TaskActor.fromRecord(record, this.deps);
        if (!actor.terminal) this.live.set(record.taskId, actor);
        found.set(record.taskId, actor);
      }
    }
    return found;
  }

  /**
   * Sends many events (one per task) and writes all the transitions in one round trip.
   * Each item succeeds or fails on its own, like `send`: an illegal event, a stale token,
   * a version conflict or a budget that does not fit fail that item only.
   *
   * Decisions use the authoritative row. An actor held in memory may be stale (another
   * process moved the task since): the write checks its row version, and an item whose
   * write finds the row moved on, or whose event a held copy refuses, is decided again on
   * the row read fresh from the store, up to `DECIDE_ROUNDS` times. Only a refusal by a
   * fresh row is final; a stale view never refuses an event.
   */
  async sendMany(items: readonly BatchItem[]): Promise<BatchOutcome[]> {
    const outcomes: BatchOutcome[] = new Array(items.length);
    let todo = items.map((item, index) => ({ item, index }));
    for (let round = 0; todo.length > 0; round++) {
      const ids = todo.map((t) => t.item.taskId);
      const { actors, fresh } = round === 0 ? await this.#held(ids) : await this.#reload(ids);
      const last = round + 1 >= DECIDE_ROUNDS;
      const again: typeof todo = [];
      const pending: { index: number; entry: (typeof todo)[number]; actor: TaskActor; prepared: PreparedTransition }[] = [];
      for (const entry of todo) {
        const actor = actors.get(entry.item.taskId);
        if (!actor) {
          outcomes[entry.index] = { ok: false, error: new TaskNotFoundError(entry.item.taskId) };
          continue;
        }
        try {
          pending.push({ index: entry.index, entry, actor, prepared: actor.prepare(entry.item.event, entry.item.options) });
        } catch (err) {
          // A held copy's refusal may come from a stale view: decided again on the row.
          if (!fresh.has(actor.taskId) && !last) again.push(entry);
          else outcomes[entry.index] = { ok: false, error: err as Error };
        }
      }
      const written = await this.deps.commit.applyTransitions(pending.map((p) => p.prepared.write));
      written.forEach((outcome, i) => {
        const { index, entry, actor, prepared } = pending[i]!;
        if (outcome.ok) {
          const before = actor.getSnapshot();
          const transition = actor.commit(prepared, outcome.version);
          this.metrics.taskStep(actor.taskId, actor.taskType, transition.from, transition.to, transition.at, prepared.next.context.startedAt);
          // A live (activated) actor is inspected by XState itself; a passivated one from here.
          if (this.inspection && !actor.activated) this.inspection.step(actor, before, { event: prepared.event, snapshot: transition.snapshot });
          const ok: BatchOutcome = { ok: true, transition };
          if (outcome.project) ok.project = outcome.project;
          if (outcome.input) ok.input = outcome.input;
          outcomes[index] = ok;
          if (actor.terminal) this.evict(actor.taskId);
        } else if (outcome.error instanceof VersionConflictError) {
          this.evict(actor.taskId);
          if (!last) again.push(entry);
          else outcomes[index] = { ok: false, error: outcome.error };
        } else {
          outcomes[index] = { ok: false, error: outcome.error };
        }
      });
      todo = again;
    }
    return outcomes;
  }

  /**
   * Sends an event to a task; resolves once the transition is durable. Decided like an
   * item of `sendMany`: on the row read fresh when a held copy refused the event or was
   * stale. A refusal throws its typed error; nothing changes then.
   */
  async send(taskId: string, event: TaskEvent, options?: SendOptions): Promise<TaskTransition> {
    const [outcome] = await this.sendMany([{ taskId, event, ...(options ? { options } : {}) }]);
    if (!outcome!.ok) throw outcome!.error;
    return outcome!.transition;
  }

  /** The actors of `taskIds` (held ones, else loaded), and which were read from the store now. */
  async #held(taskIds: readonly string[]): Promise<{ actors: Map<string, TaskActor>; fresh: Set<string> }> {
    const fresh = new Set(taskIds.filter((id) => !this.live.has(id)));
    return { actors: await this.getMany(taskIds), fresh };
  }

  /** The actors of `taskIds`, rebuilt from their rows read now (held copies replaced). */
  async #reload(taskIds: readonly string[]): Promise<{ actors: Map<string, TaskActor>; fresh: Set<string> }> {
    for (const id of taskIds) this.evict(id);
    return { actors: await this.getMany(taskIds), fresh: new Set(taskIds) };
  }

  /**
   * The actors of `taskIds` rebuilt from their rows read now, replacing held copies (a
   * caller that found a held copy in a state it did not expect checks the row).
   */
  async refresh(taskIds: readonly string[]): Promise<Map<string, TaskActor>> {
    return (await this.#reload(taskIds)).actors;
  }

  /**
   * Restores the actors of the non-final tasks (only of `statuses` when given), a page at
   * a time. Returns how many. Actors not restored are loaded from the store when first
   * needed (`get`, `getMany`), like any actor evicted before.
   */
  async restore(pageSize = 1000, statuses?: readonly TaskStatus[]): Promise<number> {
    let after: string | undefined;
    let count = 0;
    for (;;) {
      const page = await this.deps.store.loadNonFinal({ limit: pageSize, ...(after ? { afterTaskId: after } : {}), ...(statuses ? { statuses } : {}) });
      for (const record of page) {
        if (!this.live.has(record.taskId)) this.live.set(record.taskId, TaskActor.fromRecord(record, this.deps));
        count++;
      }
      if (page.length < pageSize) return count;
      after = page[page.length - 1]!.taskId;
    }
  }

  /** The live actors (non-final tasks this process holds). */
  liveActors(): IterableIterator<TaskActor> {
    return this.live.values();
  }

  /** Drops a task's live actor (it is reloaded from the store when next needed). */
  evict(taskId: string): void {
    const actor = this.live.get(taskId);
    if (!actor) return;
    actor.stop();
    this.live.delete(taskId);
  }

  stopAll(): void {
    for (const id of [...this.live.keys()]) this.evict(id);
  }

  private buildRecord(input: z.output<typeof NewTaskInput>, now: number, awaitingApproval: boolean): NewTaskRecord {
    const spec = this.deps.catalog.get(input.taskType);
    const taskId = input.taskId ?? newTaskId();
    const maxAttempts = input.maxAttempts ?? spec.maxAttempts ?? this.deps.defaultMaxAttempts ?? 3;
    const assignedTo = input.assignedTo ?? spec.agent;
    const snapshot = initialTaskSnapshot(
      this.deps.steps,
      { taskId, projectId: input.projectId, taskType: input.taskType, maxAttempts },
      { awaitingApproval, at: now },
    );
    const patch = patchFromSnapshot(snapshot);
    const record: NewTaskRecord = {
      taskId,
      projectId: input.projectId,
      taskType: input.taskType,
      assignedTo,
      status: patch.status,
      priority: input.priority ?? spec.priority,
      input: input.input,
      output: null,
      dependencies: input.dependencies,
      estimatedCost:
        input.estimatedCost ??
        (this.deps.estimateCost ?? ((type, _agent, i) => this.deps.catalog.estimateCost(type, i)))(input.taskType, assignedTo, input.input),
      actualCost: null,
      createdAt: new Date(now),
      startedAt: null,
      completedAt: null,
      attempts: 0,
      maxAttempts,
      lastError: null,
      deadline: null,
      notBefore: null,
      fencingToken: null,
      timeoutMs: input.timeoutMs ?? spec.timeoutMs ?? this.deps.defaultTimeoutMs,
      snapshot: storedSnapshot(snapshot),
      machineVersion: TASK_MACHINE_VERSION,
    };
    this.initial.set(record, { snapshot });
    return record;
  }

  private async checkDependencies(records: readonly NewTaskRecord[]): Promise<void> {
    const inBatch = new Map(records.map((r) => [r.taskId, r]));
    if (inBatch.size !== records.length) throw new ValidationError('duplicate task id in one batch');
    const external = new Set<string>();
    for (const r of records) {
      for (const dep of r.dependencies) {
        if (dep === r.taskId) throw new DependencyCycleError([r.taskId, r.taskId]);
        if (!inBatch.has(dep)) external.add(dep);
      }
    }
    if (external.size) {
      const found = new Set((await this.deps.store.getTasks([...external])).map((t) => t.taskId));
      for (const r of records) {
        const missing = r.dependencies.find((d) => !inBatch.has(d) && !found.has(d));
        if (missing) throw new UnknownDependencyError(r.taskId, missing);
      }
    }
    // Existing tasks cannot depend on new ones, so a cycle can only lie within the batch.
    const cycle = findCycle(records);
    if (cycle) throw new DependencyCycleError(cycle);
  }
}

/** Depth-first search for a cycle among the batch's own dependency edges. */
export function findCycle(records: readonly { taskId: string; dependencies: readonly string[] }[]): string[] | null {
  const edges = new Map(records.map((r) => [r.taskId, r.dependencies]));
  const state = new Map<string, 'visiting' | 'done'>();
  const path: string[] = [];
  const visit = (id: string): string[] | null => {
    const s = state.get(id);
    if (s === 'done') return null;
    if (s === 'visiting') return [...path.slice(path.indexOf(id)), id];
    state.set(id, 'visiting');
    path.push(id);
    for (const dep of edges.get(id) ?? []) {
      if (!edges.has(dep)) continue;
      const found = visit(dep);
      if (found) return found;
    }
    path.pop();
    state.set(id, 'done');
    return null;
  };
  for (const id of edges.keys()) {
    const found = visit(id);
    if (found) return found;
  }
  return null;
}

