import { randomUUID } from 'node:crypto';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { SqlClient } from '../../src/adapters/postgres/sql-client.js';

/**
 * The end-to-end tests' view of one video project on the wire and in PostgreSQL: what
 * a client publishes (the PROJECT_CREATED event, approval decisions), the tasks the
 * default pipeline creates with 3 shots, the legal task transitions, and direct reads of
 * the service's tables.
 */

/** The default video pipeline's tasks for a 3-shot project approved at every checkpoint. */
export const PIPELINE_TASKS: Readonly<Record<string, number>> = {
  WRITE_SCRIPT: 1,
  PLAN_SHOTS: 1,
  GENERATE_KEYFRAME: 3,
  RUN_VISUAL_QA: 3,
  CHECK_CONSISTENCY: 1,
  GENERATE_PREVIEW_VIDEO: 1,
  GENERATE_VOICEOVER: 1,
  COMPOSE_MUSIC: 1,
  GENERATE_SOUND_EFFECTS: 1,
  MIX_AUDIO: 1,
  GENERATE_FINAL_VIDEO: 1,
};
export const CHECKPOINTS = ['SCENE_WRITTEN', 'SHOT_PLANNED', 'PREVIEW_VIDEO_READY', 'FINAL_VIDEO_READY'] as const;

/** from → the states a task may go to (the task machine's table; null = creation). */
const LEGAL: Record<string, readonly string[]> = {
  null: ['PENDING', 'WAITING_APPROVAL'],
  PENDING: ['READY', 'WAITING_APPROVAL', 'CANCELLED'],
  WAITING_APPROVAL: ['READY', 'PENDING', 'CANCELLED'],
  READY: ['RUNNING', 'CANCELLED'],
  RUNNING: ['RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED'],
  FAILED: ['PENDING', 'CANCELLED'],
  COMPLETED: [],
  CANCELLED: [],
};

/** The problems of one task's sequence of transitions (empty when legal and chained). */
export function transitionProblems(steps: readonly { from: string | null; to: string }[]): string[] {
  const problems: string[] = [];
  let previous: string | null = null;
  steps.forEach((s, i) => {
    if (i > 0 && s.from !== previous) problems.push(`step ${i}: from ${s.from} but the task was ${previous}`);
    if (!(LEGAL[String(s.from)] ?? []).includes(s.to)) problems.push(`step ${i}: ${s.from} -> ${s.to} is not a legal transition`);
    previous = s.to;
  });
  return problems;
}

export function newProjectId(): string {
  return `prj_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
}

/** Publishes PROJECT_CREATED through JetStream, de-duplicated by the event id. */
export async function publishProjectCreated(nc: NatsConnection, prefix: string, projectId: string, budget = 25): Promise<string> {
  const event = {
    id: `${projectId}:created`,
    type: 'PROJECT_CREATED',
    projectId,
    payload: { title: 'The Keeper', brief: 'a lighthouse keeper finds a message in a bottle', budget },
    occurredAt: new Date().toISOString(),
  };
  await jetstream(nc).publish(`${prefix}.events.${projectId}.PROJECT_CREATED`, JSON.stringify(event), { msgID: event.id });
  return event.id;
}

/** Publishes a reviewer's decision through JetStream (de-duplicated per approval and decision). */
export async function publishDecision(nc: NatsConnection, prefix: string, projectId: string, approvalId: string, decision: 'approved' | 'rejected' = 'approved'): Promise<void> {
  const body = { approvalId, decision, by: 'e2e-reviewer' };
  await jetstream(nc).publish(`${prefix}.approvals.decided.${projectId}`, JSON.stringify(body), { msgID: `${approvalId}:${decision}` });
}

export interface TaskRow {
  task_id: string;
  task_type: string;
  status: string;
  actual_cost: number | null;
  fencing_token: number | null;
  attempts: number;
}

export async function tasksOf(sql: SqlClient, projectId: string): Promise<TaskRow[]> {
  const r = await sql.query<TaskRow>(
    'SELECT task_id, task_type, status, actual_cost, fencing_token, attempts FROM tasks WHERE project_id = $1 ORDER BY created_at, task_id',
    [projectId],
  );
  return r.rows;
}

export interface TransitionRow {
  id: number;
  task_id: string;
  from_status: string | null;
  to_status: string;
  event: string;
  by_instance: string;
}

export async function transitionsOf(sql: SqlClient, projectId: string): Promise<TransitionRow[]> {
  const r = await sql.query<TransitionRow>(
    'SELECT id, task_id, from_status, to_status, event, by_instance FROM task_transitions WHERE project_id = $1 ORDER BY id',
    [projectId],
  );
  return r.rows;
}

export interface ApprovalRow {
  approval_id: string;
  checkpoint: string;
  status: string;
}

export async function approvalsOf(sql: SqlClient, projectId: string): Promise<ApprovalRow[]> {
  const r = await sql.query<ApprovalRow>('SELECT approval_id, checkpoint, status FROM approvals WHERE project_id = $1 ORDER BY requested_at', [projectId]);
  return r.rows;
}

export async function projectRow(sql: SqlClient, projectId: string): Promise<{ state: string; spent: number; reserved: number } | undefined> {
  const r = await sql.query<{ state: string; spent: number; reserved: number }>('SELECT state, spent, reserved FROM projects WHERE project_id = $1', [projectId]);
  return r.rows[0];
}

/** Count of tasks per type. */
export function countByType(tasks: readonly { task_type: string }[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const t of tasks) counts[t.task_type] = (counts[t.task_type] ?? 0) + 1;
  return counts;
}
