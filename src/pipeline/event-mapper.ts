import { FanOutLimitError, ValidationError } from '../errors.js';
import { newTaskId } from '../domain/task.js';
import type { TaskTypeCatalog } from '../domain/task-types.js';
import { Pipeline, type PipelineInput, type EventRule, type PipelineEvent, type TaskTemplate } from '../domain/pipeline.js';

/** A task the mapper plans: ids assigned, dependencies resolved to task ids. */
export interface PlannedTask {
  taskId: string;
  projectId: string;
  taskType: string;
  input: Record<string, unknown>;
  dependencies: string[];
  priority?: number;
  /** The task whose waiting dependents this one takes over (see TaskTemplate.supersedes). */
  supersedes?: string;
}

/** An event raised by a completed task. */
export interface RaisedEvent {
  type: string;
  payload: Record<string, unknown>;
}

export interface CompletedTaskView {
  taskId: string;
  projectId: string;
  taskType: string;
  input: Record<string, unknown>;
  output: Record<string, unknown> | null;
}

type Scope = Record<string, unknown>;

export interface EventMapperOptions {
  /** MAX_TASKS_PER_EVENT: an event (or rejection) that would create more is refused whole (FanOutLimitError). */
  maxTasksPerEvent?: number;
}

/** A rejection's decision as the revision is planned from it (`$comment`, `$decision.…`). */
export interface RejectionDecision {
  comment?: string;
  /** The shots (indexes) a rejection names, where its checkpoint takes them (Pipeline.rejectionShots). */
  shots?: readonly number[];
  [k: string]: unknown;
}

/**
 * Turns events into tasks by the declarative pipeline; pure (no I/O), so a whole
 * pipeline can be checked without servers.
 */
export class EventMapper {
  readonly pipeline: Pipeline;
  private readonly rules: ReadonlyMap<string, EventRule>;
  /** MAX_TASKS_PER_EVENT (unbounded when not given). */
  readonly maxTasksPerEvent: number;

  constructor(pipeline: PipelineInput, catalog: TaskTypeCatalog, options: EventMapperOptions = {}) {
    this.maxTasksPerEvent = options.maxTasksPerEvent ?? Number.POSITIVE_INFINITY;
    const parsed = Pipeline.safeParse(pipeline);
    if (!parsed.success) {
      throw new ValidationError('invalid pipeline', parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
    }
    this.pipeline = parsed.data;
    const templates = [...parsed.data.rules.flatMap((r) => r.create), ...Object.values(parsed.data.onReject).flat()];
    for (const t of templates) {
      if (!catalog.has(t.type)) throw new ValidationError(`pipeline ${parsed.data.name}: unknown task type ${t.type}`);
    }
    this.rules = new Map(parsed.data.rules.map((r) => [r.on, r]));
  }

  isCheckpoint(eventType: string): boolean {
    return this.pipeline.checkpoints.includes(eventType);
  }

  /** Whether the pipeline does anything with this event type. */
  handles(eventType: string): boolean {
    return this.rules.has(eventType);
  }

  completesProject(eventType: string): boolean {
    return this.rules.get(eventType)?.completesProject ?? false;
  }

  /**
   * The tasks an event creates (empty when the pipeline has no rule for it). Throws
   * ValidationError when the payload breaks the data contract, FanOutLimitError when it
   * would create more than MAX_TASKS_PER_EVENT tasks (counted before any is planned).
   */
  mapEventToTasks(event: PipelineEvent): PlannedTask[] {
    const rule = this.rules.get(event.type);
    if (!rule) return [];
    return this.expand(rule.create, event.projectId, this.eventScope(event), event.type, `event ${event.type} (${event.id})`);
  }

  /**
   * The revision tasks of a rejection at a checkpoint, from the decision as
   * `rejectionDecision` checks and completes it (a preview rejection naming no shots redoes
   * them all). Throws ValidationError (FanOutLimitError) when it cannot be planned.
   */
  mapRejection(checkpointEvent: PipelineEvent, decision: RejectionDecision): PlannedTask[] {
    const templates = this.pipeline.onReject[checkpointEvent.type] ?? [];
    const checked = { ...decision, ...this.rejectionDecision(checkpointEvent, decision) };
    const scope = { ...this.eventScope(checkpointEvent), comment: checked.comment ?? '', decision: checked };
    return this.expand(templates, checkpointEvent.projectId, scope, `${checkpointEvent.type} rejection`, `the rejection at ${checkpointEvent.type} (${checkpointEvent.id})`);
  }

  /**
   * How many shots a rejection at this checkpoint may name (indexes 0 to count - 1): the
   * length of its Pipeline.rejectionShots array; null where a rejection names no shots.
   */
  shotCount(checkpointEvent: PipelineEvent): number | null {
    const ref = this.pipeline.rejectionShots[checkpointEvent.type];
    if (ref === undefined) return null;
    const items = resolveRef(ref, this.eventScope(checkpointEvent));
    return Array.isArray(items) ? items.length : 0;
  }

  /**
   * A rejection's decision checked against its checkpoint, before anything is committed:
   * `shots` only where the checkpoint takes them (Pipeline.rejectionShots), each an index
   * of its array, at most once; none named means every shot. Throws ValidationError.
   */
  rejectionDecision(checkpointEvent: PipelineEvent, decision: Pick<RejectionDecision, 'comment' | 'shots'>): { comment: string; shots?: number[] } {
    const comment = decision.comment ?? '';
    const { shots } = decision;
    const count = this.shotCount(checkpointEvent);
    const at = `a rejection at ${checkpointEvent.type}`;
    if (count === null) {
      if (shots !== undefined) {
        const where = Object.keys(this.pipeline.rejectionShots);
        throw new ValidationError(`${at} names no shots`, [`shots: given ${JSON.stringify(shots)}; shots are named only at ${where.length ? where.join(', ') : 'no checkpoint of this pipeline'}`]);
      }
      return { comment };
    }
    if (shots === undefined) return { comment, shots: Array.from({ length: count }, (_, i) => i) };
    const outside = shots.filter((s) => !Number.isInteger(s) || s < 0 || s >= count);
    if (outside.length) {
      throw new ValidationError(`${at}: no such shot`, [`shots: ${outside.join(', ')} ${outside.length === 1 ? 'is' : 'are'} not among the ${count} shots (indexes ${count ? `0 to ${count - 1}` : 'none'})`]);
    }
    const twice = shots.filter((s, i) => shots.indexOf(s) !== i);
    if (twice.length) throw new ValidationError(`${at}: a shot named twice`, [`shots: ${[...new Set(twice)].join(', ')}`]);
    return { comment, shots: [...shots] };
  }

  /** The events a completed task raises. */
  eventsForCompletion(task: CompletedTaskView): RaisedEvent[] {
    const scope: Scope = {
      output: task.output ?? {},
      task: { id: task.taskId, type: task.taskType, input: task.input, projectId: task.projectId },
    };
    const raised: RaisedEvent[] = [];
    for (const emit of this.pipeline.emits) {
      if (!emit.taskTypes.includes(task.taskType)) continue;
      if (emit.when && !deepEqual(resolveRef(emit.when.path, scope), emit.when.equals)) continue;
      raised.push({ type: emit.event, payload: resolveValue(emit.payload, scope) as Record<string, unknown> });
    }
    return raised;
  }

  private eventScope(event: PipelineEvent): Scope {
    return { payload: event.payload, event: { id: event.id, type: event.type, projectId: event.projectId } };
  }

  private expand(templates: readonly TaskTemplate[], projectId: string, scope: Scope, what: string, label: string): PlannedTask[] {
    // Checked and counted first: nothing is planned for an event over the limit.
    const itemsOf = templates.map((template) => {
      const items = template.forEach === undefined ? null : resolveRef(template.forEach, scope);
      if (items !== null && !Array.isArray(items)) {
        throw new ValidationError(`${what}: ${template.forEach!.slice(1)} must be an array (for ${template.type})`);
      }
      return items as unknown[] | null;
    });
    const count = itemsOf.reduce((n, items) => n + (items === null ? 1 : items.length), 0);
    if (count > this.maxTasksPerEvent) throw new FanOutLimitError(label, count, this.maxTasksPerEvent);
    const byKey = new Map<string, { template: TaskTemplate; tasks: PlannedTask[] }>();
    const out: PlannedTask[] = [];
    for (const [t, template] of templates.entries()) {
      const items = itemsOf[t]!;
      const instances = items === null ? [{ scope }] : items.map((item, index) => ({ scope: { ...scope, item, index } }));
      const tasks = instances.map(({ scope: s }, index): PlannedTask => {
        const dependencies = template.dependsOn.flatMap((key) => {
          const dep = byKey.get(key)!;
          // Two fan-outs pair up element by element; anything else waits for all of them.
          const pairwise = items !== null && dep.template.forEach === template.forEach;
          return pairwise ? [dep.tasks[index]!.taskId] : dep.tasks.map((t) => t.taskId);
        });
        const supersedes = template.supersedes === undefined ? undefined : resolveRef(template.supersedes, s);
        return {
          taskId: newTaskId(),
          projectId,
          taskType: template.type,
          input: resolveValue(template.input, s) as Record<string, unknown>,
          dependencies,
          ...(template.priority === undefined ? {} : { priority: template.priority }),
          ...(typeof supersedes === 'string' ? { supersedes } : {}),
        };
      });
      byKey.set(template.key, { template, tasks });
      out.push(...tasks);
    }
    return out;
  }
}

/** `$a.b.c` looked up in the scope; undefined when any step is missing. */
export function resolveRef(ref: string, scope: Scope): unknown {
  let cur: unknown = scope;
  for (const part of ref.slice(1).split('.')) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/** Resolves every `$reference` string inside a literal; keys whose reference is missing are dropped. */
export function resolveValue(value: unknown, scope: Scope): unknown {
  if (typeof value === 'string') return value.startsWith('$') ? resolveRef(value, scope) : value;
  if (Array.isArray(value)) return value.map((v) => resolveValue(v, scope));
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const resolved = resolveValue(v, scope);
      if (resolved !== undefined) out[k] = resolved;
    }
    return out;
  }
  return value;
}

function deepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
