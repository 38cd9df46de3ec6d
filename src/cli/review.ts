import type { NatsConnection } from '@nats-io/transport-node';
import type { OrchestratorConfig } from '../config/config.js';
import { QUERY_LIMITS, type QueryPage, type TaskView } from '../domain/messages.js';
import { asList, formatApproval, isObject, shotMedia, type ReviewInput, type ShotMedia } from '../views/checkpoint.js';
import { query } from './remote.js';

/** The media made per shot so far (one page of the project's completed tasks); null when the orchestrator cannot say. */
export async function fetchShotMedia(nc: NatsConnection, config: OrchestratorConfig, projectId: string): Promise<ShotMedia | null> {
  try {
    const page = await query<QueryPage<TaskView, string>>(nc, config, 'tasks', { projectId, statuses: ['COMPLETED'], limit: QUERY_LIMITS.tasks.max });
    return shotMedia(page.items);
  } catch {
    return null;
  }
}

/** Every pending request of the project, laid out (the shots' media fetched when a request lists shots). */
export async function reviewText(nc: NatsConnection, config: OrchestratorConfig, status: ReviewInput, only?: string): Promise<string> {
  const approvals = status.pendingApprovals.filter((a) => only === undefined || a.approvalId === only);
  const wantsMedia = approvals.some((a) => isObject(a.summary) && asList(a.summary.shots) !== null);
  const media = wantsMedia ? await fetchShotMedia(nc, config, status.project.projectId) : null;
  return approvals.map((a) => formatApproval(status.project.projectId, a, media)).join('\n\n');
}
