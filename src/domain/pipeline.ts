import { z } from 'zod';
import { Priority, ProjectId, TaskTypeName } from './task.js';

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

/** An event as it arrives: on NATS `lap.events.<projectId>.<TYPE>`, or `handleEvent()`. */
export const PipelineEvent = z.object({
  id: z.string().min(1).max(100),
  type: EventType,
  projectId: ProjectId,
  payload: z.record(z.string(), z.unknown()).default({}),
  occurredAt: z.coerce.date(),
});
export type PipelineEvent = z.infer<typeof PipelineEvent>;
export type PipelineEventInput = z.input<typeof PipelineEvent>;
