import { describe, expect, it } from 'vitest';
import { MemoryTaskQueue } from '../../src/adapters/memory/task-queue.js';
import { WatchedQueue } from '../../src/dispatch/watched-queue.js';

describe('WatchedQueue (the hint of dispatch at creation)', () => {
  it('may have tasks waiting from this process\'s put until a pop that began after it found the queue empty', async () => {
    const queue = new WatchedQueue(new MemoryTaskQueue());
    expect(queue.maybeWaiting).toBe(false);
    await queue.putMany([]);
    expect(queue.maybeWaiting).toBe(false); // nothing put
    const early = queue.mark();
    await queue.putMany([{ taskId: 'a', priority: 1 }, { taskId: 'b', priority: 2 }]);
    expect(queue.maybeWaiting).toBe(true);
    queue.drained(early); // a pop that began before the put proves nothing
    expect(queue.maybeWaiting).toBe(true);
    const mark = queue.mark();
    expect(await queue.getMany(10)).toEqual(['b', 'a']);
    queue.drained(mark);
    expect(queue.maybeWaiting).toBe(false);
    await queue.put({ taskId: 'c', priority: 1 });
    expect(queue.maybeWaiting).toBe(true);
    await queue.rebuild([]); // emptied
    expect(queue.maybeWaiting).toBe(false);
    expect(await queue.size()).toBe(0);
    await queue.rebuild([{ taskId: 'd', priority: 1 }]);
    expect(queue.maybeWaiting).toBe(true);
    expect(await queue.remove('d')).toBe(true);
    expect(await queue.get()).toBeNull();
  });
});
