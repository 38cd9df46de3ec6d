/**
 * The subjects of the wire contract under a prefix (default `lap`). Ids and agent names
 * are single subject tokens (their syntax has no dots); the inbound parser still joins
 * extra tokens back into the project id, so such a message reaches validation and is
 * dead-lettered with the reason instead of vanishing.
 */
export interface NatsSubjects {
  readonly prefix: string;
  event(projectId: string, type: string): string;
  task(agent: string): string;
  results(projectId: string): string;
  heartbeats(projectId: string): string;
  approvalRequested(projectId: string): string;
  approvalExpired(projectId: string): string;
  approvalDecided(projectId: string): string;
  status(projectId: string, taskId: string): string;
  budget(projectId: string): string;
  project(projectId: string): string;
  control(projectId: string): string;
  /** `<prefix>.query.<kind>` (projects, tasks, dead_letters). */
  query(kind: string): string;
  readonly dlq: string;
  /** What the inbound stream captures. */
  readonly inbound: readonly string[];
  /** What the task work-queue stream captures. */
  readonly tasks: string;
  /** What the control responder listens on. */
  readonly controlWildcard: string;
  /** What the query responder listens on. */
  readonly queryWildcard: string;
}

export function natsSubjects(prefix: string): NatsSubjects {
  const p = prefix;
  return {
    prefix: p,
    event: (projectId, type) => `${p}.events.${projectId}.${type}`,
    task: (agent) => `${p}.tasks.${agent}`,
    results: (projectId) => `${p}.results.${projectId}`,
    heartbeats: (projectId) => `${p}.heartbeats.${projectId}`,
    approvalRequested: (projectId) => `${p}.approvals.requested.${projectId}`,
    approvalExpired: (projectId) => `${p}.approvals.expired.${projectId}`,
    approvalDecided: (projectId) => `${p}.approvals.decided.${projectId}`,
    status: (projectId, taskId) => `${p}.status.${projectId}.${taskId}`,
    budget: (projectId) => `${p}.budget.${projectId}`,
    project: (projectId) => `${p}.projects.${projectId}`,
    control: (projectId) => `${p}.control.${projectId}`,
    dlq: `${p}.dlq`,
    inbound: [`${p}.events.>`, `${p}.results.>`, `${p}.heartbeats.>`, `${p}.approvals.decided.>`],
    tasks: `${p}.tasks.*`,
    controlWildcard: `${p}.control.>`,
    query: (kind) => `${p}.query.${kind}`,
    queryWildcard: `${p}.query.*`,
  };
}

/**
 * The destination templates of the subjects a message is traced on (the span names of
 * the messaging conventions: `send lap.tasks.{agent}`, `process lap.results.{projectId}`).
 */
export interface SubjectTemplates {
  readonly task: string;
  readonly event: string;
  readonly results: string;
  readonly heartbeats: string;
  readonly decision: string;
}

export function subjectTemplates(prefix: string): SubjectTemplates {
  return {
    task: `${prefix}.tasks.{agent}`,
    event: `${prefix}.events.{projectId}.{type}`,
    results: `${prefix}.results.{projectId}`,
    heartbeats: `${prefix}.heartbeats.{projectId}`,
    decision: `${prefix}.approvals.decided.{projectId}`,
  };
}

export type InboundKind = 'event' | 'result' | 'heartbeat' | 'decision';

export interface InboundSubject {
  kind: InboundKind;
  projectId: string;
  /** The event type (last token) of an event subject. */
  eventType?: string;
}

/** Splits the part of `subject` after `prefix.` into tokens; null when outside the prefix. */
function tokensAfter(prefix: string, subject: string): string[] | null {
  if (!subject.startsWith(`${prefix}.`)) return null;
  return subject.slice(prefix.length + 1).split('.');
}

/** Reads an inbound subject; null when it is not one of the four inbound forms. */
export function parseInboundSubject(prefix: string, subject: string): InboundSubject | null {
  const t = tokensAfter(prefix, subject);
  if (!t || t.some((token) => token === '')) return null;
  const [head, ...rest] = t;
  switch (head) {
    case 'events':
      if (rest.length < 2) return null;
      return { kind: 'event', projectId: rest.slice(0, -1).join('.'), eventType: rest[rest.length - 1]! };
    case 'results':
      return rest.length ? { kind: 'result', projectId: rest.join('.') } : null;
    case 'heartbeats':
      return rest.length ? { kind: 'heartbeat', projectId: rest.join('.') } : null;
    case 'approvals':
      if (rest[0] !== 'decided' || rest.length < 2) return null;
      return { kind: 'decision', projectId: rest.slice(1).join('.') };
    default:
      return null;
  }
}

/** The project id of a control subject (`<prefix>.control.<projectId>`), or null. */
export function parseControlSubject(prefix: string, subject: string): string | null {
  const t = tokensAfter(prefix, subject);
  if (!t || t[0] !== 'control' || t.length < 2 || t.some((token) => token === '')) return null;
  return t.slice(1).join('.');
}

/** The kind of a query subject (`<prefix>.query.<kind>`), or null. */
export function parseQuerySubject(prefix: string, subject: string): string | null {
  const t = tokensAfter(prefix, subject);
  if (!t || t[0] !== 'query' || t.length !== 2 || t[1] === '') return null;
  return t[1]!;
}
