import type { Pipeline } from '../domain/pipeline.js';
import type { TaskOrigin } from '../ports/console.js';
import type { ApprovalRecord } from '../ports/project-store.js';
import type { TaskRecord } from '../ports/task-store.js';

/** Where a task came from, as far as the rows tell: the tasks whose raised event created it, and how. */
export interface Lineage {
  triggers: string[];
  origin?: TaskOrigin;
}

type LineageTask = Pick<TaskRecord, 'taskId' | 'taskType' | 'status' | 'input' | 'output' | 'dependencies' | 'createdAt' | 'completedAt'>;

/** The task that raised a checkpoint event: its id is `<taskId>:<event type>` (the results' raised events). */
function raisingTask(approval: Pick<ApprovalRecord, 'eventId' | 'checkpoint'>): string | null {
  const suffix = `:${approval.checkpoint}`;
  return approval.eventId.endsWith(suffix) ? approval.eventId.slice(0, -suffix.length) : null;
}

const shotOf = (t: LineageTask): number | undefined => (typeof t.input.shotIndex === 'number' ? t.input.shotIndex : undefined);

/**
 * The event edges of a project's graph, read from what is stored (tasks do not record the
 * event that created them):
 * - a checkpoint's follow-ups (its request's tasks) come from the task that raised it;
 * - a rejection's revisions (the checkpoint's `onReject` types created after the decision
 *   and before the checkpoint's next request) come from that task too, and are revisions;
 * - a repair (a type a conditionally raised event creates, as VISUAL_QA_FAILED's
 *   EDIT_IMAGE, outside any request) comes from the latest task of the raising type for
 *   the same shot that ended before it was created.
 * Within each group, only the tasks that wait for none of the group get the edge.
 */
export function lineageOf(tasks: readonly LineageTask[], approvals: readonly ApprovalRecord[], pipeline: Pick<Pipeline, 'rules' | 'emits' | 'onReject'>): Map<string, Lineage> {
  const out = new Map<string, Lineage>();
  const byId = new Map(tasks.map((t) => [t.taskId, t]));
  const entry = (taskId: string): Lineage => {
    let e = out.get(taskId);
    if (!e) out.set(taskId, (e = { triggers: [] }));
    return e;
  };
  const linkGroup = (group: readonly LineageTask[], trigger: string, origin?: TaskOrigin): void => {
    const ids = new Set(group.map((t) => t.taskId));
    for (const t of group) {
      const e = entry(t.taskId);
      if (origin) e.origin = origin;
      if (!t.dependencies.some((d) => ids.has(d)) && !e.triggers.includes(trigger)) e.triggers.push(trigger);
    }
  };
  const requested = new Set<string>();
  const sorted = [...approvals].sort((a, b) => a.requestedAt.getTime() - b.requestedAt.getTime());
  for (const approval of sorted) {
    for (const id of approval.taskIds) requested.add(id);
    const raising = raisingTask(approval);
    if (raising === null || !byId.has(raising)) continue;
    linkGroup(approval.taskIds.flatMap((id) => byId.get(id) ?? []), raising);
  }
  const revisions = new Set<string>();
  for (const approval of sorted) {
    const raising = raisingTask(approval);
    if (approval.status !== 'rejected' || !approval.decidedAt || raising === null || !byId.has(raising)) continue;
    const types = new Set((pipeline.onReject?.[approval.checkpoint] ?? []).map((t) => t.type));
    const next = sorted.find((a) => a.checkpoint === approval.checkpoint && a.requestedAt > approval.decidedAt!);
    const group = tasks.filter(
      (t) => types.has(t.taskType) && !requested.has(t.taskId) && t.createdAt >= approval.decidedAt! && (!next || t.createdAt <= next.requestedAt),
    );
    for (const t of group) revisions.add(t.taskId);
    linkGroup(group, raising, 'revision');
  }
  const conditional = (event: string) => {
    const raising = pipeline.emits.filter((e) => e.event === event);
    return raising.length > 0 && raising.every((e) => e.when !== undefined);
  };
  for (const rule of pipeline.rules) {
    if (!conditional(rule.on)) continue;
    const types = new Set((rule.create ?? []).map((t) => t.type));
    const raisers = new Set(pipeline.emits.filter((e) => e.event === rule.on).flatMap((e) => e.taskTypes));
    const repairs = tasks.filter((t) => types.has(t.taskType) && !requested.has(t.taskId) && !revisions.has(t.taskId));
    for (const t of repairs) {
      entry(t.taskId).origin = 'repair';
      // Only the tasks that wait for none of the repair's get the edge.
      if (t.dependencies.some((d) => repairs.some((r) => r.taskId === d))) continue;
      let from: LineageTask | undefined;
      for (const r of tasks) {
        if (!raisers.has(r.taskType) || shotOf(r) !== shotOf(t) || !r.completedAt || r.completedAt > t.createdAt) continue;
        if (!from || r.completedAt > from.completedAt!) from = r;
      }
      if (from) entry(t.taskId).triggers.push(from.taskId);
    }
  }
  return out;
}
