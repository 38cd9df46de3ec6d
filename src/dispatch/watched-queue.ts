import type { QueueEntry, TaskQueue } from '../ports/task-queue.js';

/**
 * The ready queue as this process uses it, counting its own puts: a hint for dispatch at
 * creation (Dispatcher.claim) — after this process queued tasks, and until a scheduler pass
 * finds the queue empty, something probably waits there, so new tasks queue behind it
 * without asking Redis. The hint only ever skips the shortcut; the queue itself is always
 * asked before a task skips it (another process's puts are not counted).
 */
export class WatchedQueue implements TaskQueue {
  private puts = 0;
  private drainedAt = 0;

  constructor(private readonly inner: TaskQueue) {}

  /** Whether this process queued tasks since a pass last found the queue empty. */
  get maybeWaiting(): boolean {
    return this.puts > this.drainedAt;
  }

  /** Taken before a pop; passed to `drained` when that pop found the queue empty. */
  mark(): number {
    return this.puts;
  }

  drained(mark: number): void {
    this.drainedAt = Math.max(this.drainedAt, mark);
  }

  put(entry: QueueEntry): Promise<void> {
    this.puts++;
    return this.inner.put(entry);
  }

  putMany(entries: readonly QueueEntry[]): Promise<void> {
    if (entries.length) this.puts++;
    return this.inner.putMany(entries);
  }

  async rebuild(entries: readonly QueueEntry[]): Promise<void> {
    const mark = this.puts;
    if (entries.length) this.puts++;
    await this.inner.rebuild(entries);
    if (!entries.length) this.drained(mark);
  }

  get(): Promise<string | null> {
    return this.inner.get();
  }

  getMany(count: number): Promise<string[]> {
    return this.inner.getMany(count);
  }

  remove(taskId: string): Promise<boolean> {
    return this.inner.remove(taskId);
  }

  size(): Promise<number> {
    return this.inner.size();
  }
}
