import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { jetstream } from '@nats-io/jetstream';
import { ErrorCode, ServiceUnavailableError, ValidationError } from '../errors.js';
import { PipelineEvent } from '../domain/pipeline.js';
import { loadPipelineFile } from '../pipeline/load.js';
import { VIDEO_PIPELINE } from '../pipeline/video-pipeline.js';
import { natsSubjects } from '../adapters/nats/subjects.js';
import { formatIssues } from '../adapters/inbound-order.js';
import { control, formatStatus, withConnection, type StatusReply } from './remote-commands.js';
import { RemoteError, watchRefusal } from './remote.js';
import type { CliIo, ParsedArgs } from './types.js';

/**
 * `submit` (or `create`): starts a project as the wire contract says — a PROJECT_CREATED
 * event on `<prefix>.events.<projectId>.PROJECT_CREATED` (JetStream, `Nats-Msg-Id` = the
 * event id) — from flags or a JSON file, checked against the event's schema before
 * anything is sent, then waits until the orchestrator has the project and prints it.
 * Idempotent: the event id derives from the project id unless given, so submitting the
 * same project again (a retry after a timeout) creates nothing more; a project that
 * exists already is printed as it is.
 */

const WAIT_SECONDS = 30;

/** The file's fields: the project's, and any other the pipeline passes on (payload). */
function readFile(path: string): Record<string, unknown> {
  let content: string;
  try {
    content = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ValidationError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(content);
  } catch (err) {
    throw new ValidationError(`${path} is not JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new ValidationError(`${path}: expected a JSON object, such as {"title":"The Keeper","brief":"…","budget":25}`);
  return value as Record<string, unknown>;
}

function flag(args: ParsedArgs, name: string): string | undefined {
  const v = args.values[name];
  return typeof v === 'string' ? v : undefined;
}

/** The PROJECT_CREATED event the flags and the file describe (flags win), validated. */
export function projectEvent(args: ParsedArgs, now = new Date()): PipelineEvent {
  const file = flag(args, 'file');
  const fromFile = file ? readFile(file) : {};
  const { projectId: fileProjectId, eventId: fileEventId, ...payload } = fromFile;
  const title = flag(args, 'title');
  const brief = flag(args, 'brief');
  const budget = flag(args, 'budget');
  const checkpoints = flag(args, 'checkpoints');
  if (title !== undefined) payload.title = title;
  if (brief !== undefined) payload.brief = brief;
  if (budget !== undefined) {
    const n = budget === 'none' ? null : Number(budget);
    if (n !== null && (budget.trim() === '' || !Number.isFinite(n))) throw new ValidationError(`--budget expects an amount (or none), got ${budget}`);
    payload.budget = n;
  }
  if (checkpoints !== undefined) payload.checkpoints = checkpoints === 'none' ? [] : checkpoints.split(',').map((c) => c.trim()).filter(Boolean);
  const projectId = flag(args, 'project') ?? (typeof fileProjectId === 'string' ? fileProjectId : `prj_${randomBytes(6).toString('hex')}`);
  const id = flag(args, 'event-id') ?? (typeof fileEventId === 'string' ? fileEventId : `evt_created_${projectId}`);
  const raw = { id, type: 'PROJECT_CREATED', projectId, payload, occurredAt: now.toISOString() };
  const parsed = PipelineEvent.safeParse(raw);
  if (!parsed.success) throw new ValidationError(`the project does not fit the PROJECT_CREATED contract: ${formatIssues(parsed.error)}`);
  return parsed.data;
}

/**
 * The checkpoints that name no event of the pipeline (PIPELINE_FILE, or the default video
 * pipeline's): such a checkpoint would never stop the project — a typo, most likely. Only a
 * warning: the orchestrator's pipeline is its own.
 */
export function unknownCheckpoints(event: PipelineEvent, pipelineFile: string | undefined): { unknown: string[]; pipeline: string; known: string[] } {
  const checkpoints = (event.payload as { checkpoints?: string[] }).checkpoints ?? [];
  const pipeline = pipelineFile ? loadPipelineFile(pipelineFile) : VIDEO_PIPELINE;
  const known = [...new Set([...pipeline.rules.map((r) => r.on), ...(pipeline.emits ?? []).map((e) => e.event)])];
  return { unknown: checkpoints.filter((c) => !known.includes(c)), pipeline: pipeline.name, known };
}

async function statusOrNull(...params: Parameters<typeof control>): Promise<StatusReply | null> {
  try {
    return await control(...params);
  } catch (err) {
    if (err instanceof RemoteError && err.remoteCode === ErrorCode.ProjectNotFound) return null;
    throw err;
  }
}

export async function runSubmitCommand(args: ParsedArgs, io: CliIo): Promise<number> {
  const event = projectEvent(args);
  const waitRaw = flag(args, 'wait');
  const waitSeconds = waitRaw === undefined ? WAIT_SECONDS : Number(waitRaw);
  if (!Number.isFinite(waitSeconds) || waitSeconds < 0) throw new ValidationError(`--wait expects seconds, got ${waitRaw}`);
  const print = (status: StatusReply, note: string) => {
    io.out(args.values.json ? JSON.stringify({ eventId: event.id, ...status }) : `${note}\n${formatStatus(status)}`);
    return 0;
  };
  return withConnection(io, async (nc, config) => {
    const check = unknownCheckpoints(event, config.pipelineFile);
    if (check.unknown.length) {
      io.err(`warning: ${check.unknown.join(', ')} ${check.unknown.length === 1 ? 'is' : 'are'} no event of the pipeline ${check.pipeline} (${check.known.join(', ')}): ${check.unknown.length === 1 ? 'it' : 'they'} will never stop the project`);
    }
    const subjects = natsSubjects(config.nats.subjectPrefix);
    const status = { action: 'status' } as const;
    const existing = await statusOrNull(nc, config, event.projectId, status);
    if (existing) return print(existing, `project ${event.projectId} exists already: nothing sent`);
    const subject = subjects.event(event.projectId, event.type);
    // A refused event is dead-lettered with the reason: watched, to say why.
    const refusal = watchRefusal(nc, subjects.dlq, subject, (body) => body.id === event.id);
    try {
      await nc.flush();
      try {
        await jetstream(nc).publish(subject, JSON.stringify(event), { msgID: event.id });
      } catch (err) {
        throw new ServiceUnavailableError('nats', `cannot publish on ${subject} (${(err as Error).message}): is the ${config.nats.subjectPrefix.toUpperCase()}_INBOUND stream there (\`orchestrator start\` creates it)?`, { cause: err });
      }
      const deadline = Date.now() + waitSeconds * 1000;
      for (;;) {
        if (refusal.reason !== null) throw new ValidationError(`the orchestrator refused project ${event.projectId}: ${refusal.reason}`);
        const now = await statusOrNull(nc, config, event.projectId, status);
        if (now) return print(now, `submitted ${event.projectId} (event ${event.id})`);
        if (Date.now() >= deadline) break;
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      refusal.close();
    }
    io.err(`event ${event.id} sent for ${event.projectId}; the orchestrator has not created the project within ${waitSeconds} s (submitting again is safe: the same event id creates it once)`);
    return 1;
  });
}
