import { createHash } from 'node:crypto';
import { MAX_DISPATCHES_PER_MESSAGE } from '../../domain/messages.js';
import type { DispatchItem } from '../../ports/event-bus.js';

/** A message of several dispatches carries about this many bytes of them at most (one bigger goes alone). */
export const DISPATCH_BATCH_BYTES = 64 * 1024;

/**
 * The messages the dispatches to one agent go in, in order: at most `max` dispatches
 * (and MAX_DISPATCHES_PER_MESSAGE) and about `maxBytes` of JSON each. A message of one
 * dispatch has only its index (it is sent as a lone dispatch is); one of several has its
 * body, `{"dispatches":[…]}`, and its message id, `dispatches:<sha1 of its attempts>`:
 * the same attempts give the same id, so the stream drops a retry it already stored.
 */
export function dispatchMessages(
  items: readonly DispatchItem[],
  max: number,
  maxBytes = DISPATCH_BATCH_BYTES,
): { indexes: number[]; body: string; id: string }[] {
  const limit = Math.max(1, Math.min(max, MAX_DISPATCHES_PER_MESSAGE));
  const groups: { indexes: number[]; json: string[]; bytes: number }[] = [];
  let open: (typeof groups)[number] | null = null;
  items.forEach(({ task }, i) => {
    const json = limit > 1 ? JSON.stringify(task) : '';
    if (!open || open.indexes.length >= limit || (open.bytes + json.length > maxBytes && open.indexes.length > 0)) {
      open = { indexes: [], json: [], bytes: 0 };
      groups.push(open);
    }
    open.indexes.push(i);
    open.json.push(json);
    open.bytes += json.length + 1;
  });
  return groups.map(({ indexes, json }) => {
    if (indexes.length === 1) return { indexes, body: '', id: '' };
    const hash = createHash('sha1');
    for (const i of indexes) hash.update(`${items[i]!.task.taskId}:${items[i]!.task.fencingToken};`);
    return { indexes, body: `{"dispatches":[${json.join(',')}]}`, id: `dispatches:${hash.digest('hex')}` };
  });
}
