import type { NatsConnection } from '@nats-io/transport-node';
import type { OrchestratorConfig } from '../config/config.js';
import { QUERY_LIMITS, type QueryPage, type TaskView } from '../domain/messages.js';
import { asList, formatApproval, isObject, shotMedia, type ReviewInput, type ShotMedia } from '../views/checkpoint.js';
import { query } from './remote.js';

/** Pages of completed tasks read for the shots' media, at most (the latest edits come last: read them all, within reason). */
const MEDIA_PAGES = 20;

/** The media made per shot so far (the project's completed tasks, page by page); null when the orchestrator cannot say. */
export async function fetchShotMedia(nc: NatsConnection, config: OrchestratorConfig, projectId: string): Promise<ShotMedia | null> {
  const tasks: TaskView[] = [];
  try {
    let after: string | null = null;
    for (let i = 0; i < MEDIA_PAGES; i++) {
      const page: QueryPage<TaskView, string> = await query<QueryPage<TaskView, string>>(nc, config, 'tasks', {
        projectId,
        statuses: ['COMPLETED'],
        limit: QUERY_LIMITS.tasks.max,
        ...(after ? { after } : {}),
      });
      tasks.push(...page.items.filter((t) => t.shotIndex !== undefined && Object.keys(t.artifacts).length > 0));
      after = page.next;
      if (after === null) break;
    }
  } catch {
    return null;
  }
  return shotMedia(tasks);
}

/** Every pending request of the project, laid out (the shots' media fetched when a request lists shots). */
export async function reviewText(nc: NatsConnection, config: OrchestratorConfig, status: ReviewInput, only?: string): Promise<string> {
  const approvals = status.pendingApprovals.filter((a) => only === undefined || a.approvalId === only);
  const wantsMedia = approvals.some((a) => isObject(a.summary) && asList(a.summary.shots) !== null);
  const media = wantsMedia ? await fetchShotMedia(nc, config, status.project.projectId) : null;
  return approvals.map((a) => formatApproval(status.project.projectId, a, media)).join('\n\n');
}
