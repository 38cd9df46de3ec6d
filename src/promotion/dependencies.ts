import type { TaskLinks, TaskRecord, TaskStore } from '../ports/task-store.js';

export interface DependencyState {
  /** Every dependency COMPLETED. */
  met: boolean;
  /** Why a dependency blocks for good (cancelled, or failed with no attempt left), if one does. */
  broken: string | null;
}

/** Whether a dependency blocks for good. */
function brokenDependency(d: TaskLinks): boolean {
  return d.status === 'CANCELLED' || (d.status === 'FAILED' && d.attempts >= d.maxAttempts);
}

/** The dependency states of many tasks (their dependency lists given), in one narrow read. */
export async function dependencyStates(
  tasks: Pick<TaskStore, 'getLinks'>,
  records: readonly Pick<TaskRecord, 'taskId' | 'dependencies'>[],
): Promise<Map<string, DependencyState>> {
  const depIds = [...new Set(records.flatMap((r) => r.dependencies))];
  const deps = new Map((depIds.length ? await tasks.getLinks(depIds) : []).map((d) => [d.taskId, d]));
  const states = new Map<string, DependencyState>();
  for (const r of records) {
    let met = true;
    let broken: string | null = null;
    for (const id of r.dependencies) {
      const d = deps.get(id);
      if (!d) met = false;
      else if (brokenDependency(d)) broken ??= `dependency ${d.taskId} is ${d.status}`;
      else if (d.status !== 'COMPLETED') met = false;
    }
    states.set(r.taskId, { met: met && !broken, broken });
  }
  return states;
}
