import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { loadConfig, type OrchestratorConfig } from '../config/config.js';
import { ValidationError } from '../errors.js';
import { silentLogger } from '../logger.js';
import type { BudgetStatus, ControlRequest } from '../domain/messages.js';
import { connectNats } from '../adapters/nats/connection.js';
import { natsSubjects } from '../adapters/nats/subjects.js';
import { budgetBar, money } from '../demo/progress.js';
import { ask, watchRefusal } from './remote.js';
import { fetchShotMedia, reviewText } from './review.js';
import type { CliIo, ParsedArgs } from './types.js';

/** What `status` replies (an Orchestrator `ProjectStatus` as JSON). */
export interface StatusReply {
  project: { projectId: string; title: string; state: string; pausedReason: string | null };
  budget: BudgetStatus;
  tasks: Record<string, number>;
  pendingApprovals: { approvalId: string; checkpoint: string; requestedAt: string; expiresAt: string | null; counts?: { tasks: number; shots?: number } }[];
}

export async function withConnection<T>(io: CliIo, fn: (nc: NatsConnection, config: OrchestratorConfig) => Promise<T>): Promise<T> {
  const config = loadConfig(io.env);
  const nc = await connectNats({ ...config.nats, name: 'orchestrator-cli', connectTimeoutMs: 3000 }, silentLogger());
  try {
    return await fn(nc, config);
  } finally {
    await nc.close();
  }
}

export async function control(nc: NatsConnection, config: OrchestratorConfig, projectId: string, request: ControlRequest): Promise<StatusReply> {
  return ask<StatusReply>(nc, config, natsSubjects(config.nats.subjectPrefix).control(projectId), request);
}

function projectArg(args: ParsedArgs, usage: string): string {
  const [projectId] = args.positionals;
  if (!projectId) throw new ValidationError(`missing <projectId>; usage: orchestrator ${usage}`);
  return projectId;
}

export function formatStatus(s: StatusReply): string {
  const order = ['WAITING_APPROVAL', 'PENDING', 'READY', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED'];
  const lines = [
    `project  ${s.project.projectId} "${s.project.title}": ${s.project.state}${s.project.pausedReason ? ` (${s.project.pausedReason})` : ''}`,
    `budget   ${budgetBar(s.budget)}`,
    `forecast ${money(s.budget.forecast.total)} in all${s.budget.forecast.exceedsBudget ? ' — exceeds the budget' : ''}`,
    `tasks    ${order.map((k) => `${k.toLowerCase()} ${s.tasks[k] ?? 0}`).join('  ')}`,
  ];
  for (const a of s.pendingApprovals) {
    const counts = a.counts ? `: ${a.counts.tasks} tasks waiting${a.counts.shots !== undefined ? `, ${a.counts.shots} shots (reject --shots from 0 to ${a.counts.shots - 1}; none: all)` : ''}` : '';
    lines.push(`approval ${a.approvalId} ${a.checkpoint} waiting since ${a.requestedAt}${a.expiresAt ? `, expires ${a.expiresAt}` : ''}${counts}`);
  }
  return lines.join('\n');
}

function print(io: CliIo, args: ParsedArgs, result: StatusReply, note?: string, extra = ''): number {
  if (args.values.json) io.out(JSON.stringify(result));
  else io.out(`${note ? `${note}\n` : ''}${formatStatus(result)}${extra}`);
  return 0;
}

/** `status`, `pause`, `resume`, `retry`, `cancel`, `budget`: one control request each. */
export async function runControlCommand(name: string, args: ParsedArgs, io: CliIo, usage: string): Promise<number> {
  const projectId = projectArg(args, usage);
  let request: ControlRequest;
  switch (name) {
    case 'pause':
      request = { action: 'pause', ...(typeof args.values.reason === 'string' ? { reason: args.values.reason } : {}) };
      break;
    case 'cancel':
      request = { action: 'cancel', ...(typeof args.values.reason === 'string' ? { reason: args.values.reason } : {}) };
      break;
    case 'resume':
      request = { action: 'resume' };
      break;
    case 'retry':
      request = { action: 'retry' };
      break;
    case 'budget': {
      const raw = args.values.set;
      if (raw === undefined) request = { action: 'status' };
      else {
        const limit = raw === 'none' ? null : Number(raw);
        if (limit !== null && (!Number.isFinite(limit) || limit < 0)) throw new ValidationError(`--set expects an amount (or none), got ${String(raw)}`);
        request = { action: 'set_budget', limit };
      }
      break;
    }
    default:
      request = { action: 'status' };
  }
  return withConnection(io, async (nc, config) => {
    const status = await control(nc, config, projectId, request);
    // `status` shows what the pending checkpoints ask a person to judge, as `review` does.
    const extra = name === 'status' && !args.values.json && status.pendingApprovals.length ? `\n\n${await reviewText(nc, config, status)}` : '';
    return print(io, args, status, undefined, extra);
  });
}

/** `approve` / `reject`: decides the project's pending approval (or `--approval ID`). */
export async function runDecisionCommand(decision: 'approved' | 'rejected', args: ParsedArgs, io: CliIo, usage: string): Promise<number> {
  const projectId = projectArg(args, usage);
  return withConnection(io, async (nc, config) => {
    const before = await control(nc, config, projectId, { action: 'status' });
    const wanted = typeof args.values.approval === 'string' ? args.values.approval : undefined;
    const pending = wanted ? before.pendingApprovals.find((a) => a.approvalId === wanted) : before.pendingApprovals[0];
    if (!pending) throw new ValidationError(wanted ? `approval ${wanted} is not pending in ${projectId}` : `project ${projectId} has no pending approval`);
    const shots = typeof args.values.shots === 'string' ? args.values.shots.split(',').map((s) => Number(s.trim())) : undefined;
    if (shots?.some((n) => !Number.isInteger(n) || n < 0)) throw new ValidationError('--shots expects shot indexes, such as 0,2');
    if (shots) checkShots(decision, pending, shots);
    const body = {
      approvalId: pending.approvalId,
      decision,
      by: typeof args.values.by === 'string' ? args.values.by : (io.env.USER ?? 'cli'),
      ...(typeof args.values.comment === 'string' ? { comment: args.values.comment } : {}),
      ...(shots ? { shots } : {}),
    };
    const subjects = natsSubjects(config.nats.subjectPrefix);
    const subject = subjects.approvalDecided(projectId);
    // A decision the orchestrator refuses is dead-lettered with the reason: watched, to say why.
    const refusal = watchRefusal(nc, subjects.dlq, subject, (body) => body.approvalId === pending.approvalId);
    try {
      await nc.flush();
      await jetstream(nc).publish(subject, JSON.stringify(body), { msgID: `${pending.approvalId}:${decision}` });
      // Decisions are handled in order with the other inbound messages: wait to see it applied.
      for (let i = 0; i < 50; i++) {
        if (refusal.reason !== null) throw new ValidationError(`the orchestrator refused the decision on ${pending.approvalId} (${pending.checkpoint}): ${refusal.reason}`);
        const now = await control(nc, config, projectId, { action: 'status' });
        if (!now.pendingApprovals.some((a) => a.approvalId === pending.approvalId)) {
          return print(io, args, now, `${decision} ${pending.checkpoint} (${pending.approvalId})`);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      refusal.close();
    }
    io.err(`decision sent for ${pending.approvalId}; the orchestrator has not applied it yet`);
    return 1;
  });
}

/** `--shots` checked against the request before anything is sent: only on a rejection that names shots, each one of its shots. */
function checkShots(decision: 'approved' | 'rejected', pending: StatusReply['pendingApprovals'][number], shots: readonly number[]): void {
  if (decision === 'approved') throw new ValidationError('--shots names the shots a rejection redoes: use it with reject');
  const count = pending.counts?.shots;
  if (!pending.counts) return; // An orchestrator that does not say: it checks them itself.
  if (count === undefined) throw new ValidationError(`--shots: a rejection at ${pending.checkpoint} names no shots`);
  const outside = shots.filter((n) => n >= count);
  if (outside.length) throw new ValidationError(`--shots: ${outside.join(', ')} not among the ${count} shots of ${pending.checkpoint} (0 to ${count - 1}; without --shots, every shot is redone)`);
  if (new Set(shots).size !== shots.length) throw new ValidationError('--shots: a shot named twice');
}

/** `review`: what the project's pending checkpoints ask a person to judge (all, or `--approval ID`). */
export async function runReviewCommand(args: ParsedArgs, io: CliIo, usage: string): Promise<number> {
  const projectId = projectArg(args, usage);
  const only = typeof args.values.approval === 'string' ? args.values.approval : undefined;
  return withConnection(io, async (nc, config) => {
    const status = await control(nc, config, projectId, { action: 'status' });
    const pending = status.pendingApprovals.filter((a) => only === undefined || a.approvalId === only);
    if (only && pending.length === 0) throw new ValidationError(`approval ${only} is not pending in ${projectId}`);
    if (args.values.json) {
      const media = pending.length ? await fetchShotMedia(nc, config, projectId) : null;
      io.out(JSON.stringify({ project: status.project, pendingApprovals: pending, shotMedia: media ?? {} }));
    } else if (pending.length === 0) io.out(`project ${projectId} (${status.project.state}) has no pending approval`);
    else io.out(await reviewText(nc, config, status, only));
    return 0;
  });
}
