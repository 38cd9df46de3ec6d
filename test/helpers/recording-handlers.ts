import { randomUUID } from 'node:crypto';
import type { ApprovalDecided, ControlRequest, Heartbeat, TaskResult } from '../../src/domain/messages.js';
import type { PipelineEventInput } from '../../src/domain/pipeline.js';
import type { InboundHandlers } from '../../src/ports/event-bus.js';

export type Call =
  | { kind: 'event'; body: PipelineEventInput }
  | { kind: 'result'; projectId: string; body: TaskResult }
  | { kind: 'heartbeat'; projectId: string; body: Heartbeat }
  | { kind: 'decision'; projectId: string; body: ApprovalDecided };

/**
 * InboundHandlers that record every call (before running the behaviour a test sets) and
 * answer control requests with `control`. `key` of a call: the event id, task id or
 * approval id, to find a test's own messages.
 */
export class RecordingHandlers implements InboundHandlers {
  readonly calls: Call[] = [];
  readonly done: Call[] = [];
  behaviour: (call: Call) => void | Promise<void> = () => undefined;
  control: InboundHandlers['control'] = async (_projectId: string, _request: ControlRequest) => ({});
  /** Queries (`<prefix>.query.<kind>`): none unless a test sets one. */
  query?: InboundHandlers['query'];

  event = (body: PipelineEventInput): Promise<void> => this.run({ kind: 'event', body });
  result = (projectId: string, body: TaskResult): Promise<void> => this.run({ kind: 'result', projectId, body });
  heartbeat = (projectId: string, body: Heartbeat): Promise<void> => this.run({ kind: 'heartbeat', projectId, body });
  decision = (projectId: string, body: ApprovalDecided): Promise<void> => this.run({ kind: 'decision', projectId, body });

  /** Calls (started) whose key is `key`. */
  callsFor(key: string): Call[] {
    return this.calls.filter((c) => keyOf(c) === key);
  }
  /** Calls (resolved) whose key is `key`. */
  doneFor(key: string): Call[] {
    return this.done.filter((c) => keyOf(c) === key);
  }

  private async run(call: Call): Promise<void> {
    this.calls.push(call);
    await this.behaviour(call);
    this.done.push(call);
  }
}

export function keyOf(call: Call): string {
  switch (call.kind) {
    case 'event':
      return call.body.id;
    case 'result':
    case 'heartbeat':
      return call.body.taskId;
    case 'decision':
      return call.body.approvalId;
  }
}

/** A fresh id for a test message. */
export function uid(label: string): string {
  return `${label}-${randomUUID().slice(0, 13)}`;
}

export function eventBody(projectId: string, id: string, type = 'SCRIPT_READY', payload: Record<string, unknown> = {}): Record<string, unknown> {
  return { id, type, projectId, payload, occurredAt: new Date().toISOString() };
}
