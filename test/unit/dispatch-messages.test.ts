import { describe, expect, it } from 'vitest';
import { dispatchMessages } from '../../src/adapters/nats/dispatch-messages.js';
import { TaskDispatchBatch, type TaskDispatch } from '../../src/domain/messages.js';
import type { DispatchItem } from '../../src/ports/event-bus.js';

const item = (n: number, input: Record<string, unknown> = { n }): DispatchItem => ({
  task: { taskId: `t${n}`, projectId: 'p1', taskType: 'GENERATE_KEYFRAME', input, attempt: 1, deadline: '2026-12-04T10:00:00.000Z', fencingToken: 100 + n } satisfies TaskDispatch,
});
const items = (count: number) => Array.from({ length: count }, (_, i) => item(i + 1));

describe('dispatchMessages: the messages of one agent\'s dispatches', () => {
  it('puts at most `max` in a message, in order; the body is a TaskDispatchBatch of exactly those dispatches', () => {
    const all = items(7);
    const messages = dispatchMessages(all, 3);
    expect(messages.map((m) => m.indexes)).toStrictEqual([[0, 1, 2], [3, 4, 5], [6]]);
    const body = TaskDispatchBatch.parse(JSON.parse(messages[0]!.body));
    expect(body.dispatches).toStrictEqual(all.slice(0, 3).map((i) => i.task));
    // A message of one goes as a lone dispatch does (no body of its own here).
    expect(messages[2]).toStrictEqual({ indexes: [6], body: '', id: '' });
  });

  it('keeps a message within about maxBytes: a dispatch bigger than that goes alone', () => {
    const all = [item(1), item(2), item(3, { prompt: 'x'.repeat(2_000) }), item(4), item(5)];
    expect(dispatchMessages(all, 10, 1_000).map((m) => m.indexes)).toStrictEqual([[0, 1], [2], [3, 4]]);
  });

  it('gives the same attempts the same message id (a retry the stream stored is dropped), other attempts another', () => {
    const [a] = dispatchMessages(items(3), 10);
    const [again] = dispatchMessages(items(3), 10);
    const other = dispatchMessages([item(1), item(2), { task: { ...item(3).task, fencingToken: 999 } }], 10)[0]!;
    expect(a!.id).toMatch(/^dispatches:[0-9a-f]{40}$/);
    expect(again!.id).toBe(a!.id);
    expect(other.id).not.toBe(a!.id);
  });

  it('with max 1, sends each alone', () => {
    expect(dispatchMessages(items(3), 1).map((m) => m.indexes)).toStrictEqual([[0], [1], [2]]);
  });
});
