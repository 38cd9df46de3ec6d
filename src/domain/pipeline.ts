import { z } from 'zod';
import { jsonProblem, StorableJsonObject, StorableText } from './storable.js';
import { BudgetLimit, Priority, ProjectId, TaskTypeName } from './task.js';

/**
 * The declarative pipeline: which events create which tasks, which task results raise
 * which events, where humans approve, and what a rejection creates. Data, validated
 * with zod, so users can load their own file (see `loadPipeline`).
 *
 * Values in `input` and `payload` maps are literals, or references starting with `$`:
 *   $payload.a.b   a field of the event payload        $item, $index  the forEach element
 *   $event.id      the event id / type / projectId     $output.a      a completed task's output
 *   $task.input.a  a completed task's input            $comment, $decision.a  a rejection's
 */
export const EventType = z
  .string()
  .min(1)
  .max(50)
  .regex(/^[A-Z][A-Z0-9_]*$/, 'UPPER_SNAKE_CASE');
export type EventType = z.infer<typeof EventType>;

export const TaskTemplate = z.object({
  /** Local name, for `dependsOn` within the same rule. */
  key: z.string().regex(/^[a-z][a-zA-Z0-9_]*$/),
  type: TaskTypeName,
  /** A reference to an array: one task per element (fan-out). */
  forEach: z.string().startsWith('$').optional(),
  /**
   * Keys of other templates of the same rule. Two fan-outs over the same array pair up
   * element by element; a single task depending on a fan-out waits for all (fan-in).
   */
  dependsOn: z.array(z.string()).default([]),
  input: z.record(z.string(), z.unknown()).default({}),
  priority: Priority.optional(),
  /**
   * A reference to a task id this task replaces: the not-yet-started tasks depending on
   * it wait for this one instead (a redo, such as a new QA after EDIT_IMAGE).
   */
  supersedes: z.string().startsWith('$').optional(),
});
export type TaskTemplate = z.infer<typeof TaskTemplate>;

export const EventRule = z.object({
  on: EventType,
  create: z.array(TaskTemplate).default([]),
  /** The project is completed by this event (after its approval, at a checkpoint). */
  completesProject: z.boolean().default(false),
});
export type EventRule = z.infer<typeof EventRule>;

export const EmitRule = z.object({
  /** A completed task of one of these types raises `event`. */
  taskTypes: z.array(TaskTypeName).min(1),
  event: EventType,
  /** Only when the value at `path` (a reference) equals `equals`. */
  when: z.object({ path: z.string().startsWith('$'), equals: z.unknown() }).optional(),
  payload: z.record(z.string(), z.unknown()).default({}),
});
export type EmitRule = z.infer<typeof EmitRule>;

export const Pipeline = z
  .object({
    name: z.string().min(1),
    /** Events that stop for a human decision before their follow-up tasks run. */
    checkpoints: z.array(EventType),
    rules: z.array(EventRule),
    emits: z.array(EmitRule),
    /** What a rejection at a checkpoint creates (the revision), per checkpoint. */
    onReject: z.record(EventType, z.array(TaskTemplate)).default({}),
    /**
     * Per checkpoint, the array a rejection's `shots` are indexes of (a reference into the
     * checkpoint event, such as `$payload.shots`): a rejection there may name shots (each an
     * index of it, at most once) and, naming none, names them all — `$decision.shots` is then
     * every index. A rejection at a checkpoint not listed names no shots.
     */
    rejectionShots: z.record(EventType, z.string().startsWith('$')).default({}),
  })
  .superRefine((p, ctx) => {
    const seen = new Set<string>();
    p.rules.forEach((rule, i) => {
      if (seen.has(rule.on)) ctx.addIssue({ code: 'custom', path: ['rules', i, 'on'], message: `two rules for ${rule.on}` });
      seen.add(rule.on);
      checkTemplates(rule.create, ['rules', i, 'create'], ctx);
    });
    for (const [checkpoint, templates] of Object.entries(p.onReject)) {
      if (!p.checkpoints.includes(checkpoint)) {
        ctx.addIssue({ code: 'custom', path: ['onReject', checkpoint], message: `${checkpoint} is not a checkpoint` });
      }
      checkTemplates(templates, ['onReject', checkpoint], ctx);
    }
    for (const checkpoint of Object.keys(p.rejectionShots)) {
      if (!p.checkpoints.includes(checkpoint)) {
        ctx.addIssue({ code: 'custom', path: ['rejectionShots', checkpoint], message: `${checkpoint} is not a checkpoint` });
      }
    }
  });
export type Pipeline = z.infer<typeof Pipeline>;
export type PipelineInput = z.input<typeof Pipeline>;

function checkTemplates(templates: readonly TaskTemplate[], path: (string | number)[], ctx: z.RefinementCtx): void {
  const keys = new Set<string>();
  templates.forEach((t, i) => {
    if (keys.has(t.key)) ctx.addIssue({ code: 'custom', path: [...path, i, 'key'], message: `duplicate key ${t.key}` });
    for (const dep of t.dependsOn) {
      if (!keys.has(dep)) {
        ctx.addIssue({ code: 'custom', path: [...path, i, 'dependsOn'], message: `${dep} is not an earlier key of this rule` });
      }
    }
    keys.add(t.key);
  });
}

/**
 * The payload of PROJECT_CREATED (the event that creates a project), as the README's
 * contract gives it: every field optional, each of its type. `budget` must fit the
 * DECIMAL(12,4) column; extra fields are allowed (the pipeline may pass them on).
 */
export const ProjectCreatedPayload = z.object({
  /** Default: the project id. */
  title: StorableText.optional(),
  brief: StorableText.optional(),
  /** null or absent: no limit. */
  budget: BudgetLimit.nullable().optional(),
  /** The project's own checkpoints (event types); absent: the pipeline's. */
  checkpoints: z.array(EventType).optional(),
});
export type ProjectCreatedPayload = z.infer<typeof ProjectCreatedPayload>;

/**
 * When an event occurred: an ISO-8601 date-time with seconds and a zone (`Z` or `±hh:mm`),
 * as JSON carries it; in process (handleEvent, raised events) a valid `Date` as well.
 */
export const OccurredAt = z.union([z.iso.datetime({ offset: true }).transform((text) => new Date(text)), z.date()], {
  error: 'expected an ISO-8601 date-time with seconds and a zone, such as 2026-11-27T10:00:00Z',
});

/** An event as it arrives: on NATS `lap.events.<projectId>.<TYPE>`, or `handleEvent()`. */
export const PipelineEvent = z
  .object({
    id: StorableText.min(1).max(100),
    type: EventType,
    projectId: ProjectId,
    /** A JSON object PostgreSQL can store (storable.ts), at most 64 levels deep. */
    payload: StorableJsonObject.default({}),
    occurredAt: OccurredAt,
  })
  .superRefine((event, ctx) => {
    // (A payload PostgreSQL cannot store is reported once, by StorableJsonObject.)
    if (event.type !== 'PROJECT_CREATED' || jsonProblem(event.payload)) return;
    const parsed = ProjectCreatedPayload.safeParse(event.payload);
    for (const issue of parsed.error?.issues ?? []) {
      ctx.addIssue({ code: 'custom', path: ['payload', ...(issue.path as (string | number)[])], message: issue.message });
    }
  });
export type PipelineEvent = z.infer<typeof PipelineEvent>;
export type PipelineEventInput = z.input<typeof PipelineEvent>;
