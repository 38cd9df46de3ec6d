/**
 * The ready queue: ids of READY tasks, highest priority first and FIFO within a priority.
 * It holds nothing that cannot be rebuilt from the task store.
 */
export interface QueueEntry {
  taskId: string;
  /** MIN_PRIORITY..MAX_PRIORITY (0..1000); higher runs first. */
  priority: number;
}

export interface TaskQueue {
  /** Adds a task; a task already queued keeps its place (idempotent). */
  put(entry: QueueEntry): Promise<void>;
  /** Adds many in one round trip, in order (earlier entries first within a priority). */
  putMany(entries: readonly QueueEntry[]): Promise<void>;
  /** Removes and returns the first task id, or null when empty. Atomic across clients. */
  get(): Promise<string | null>;
  /** Removes and returns up to `count` task ids in queue order. Atomic across clients. */
  getMany(count: number): Promise<string[]>;
  /** Removes a task; true when it was queued. */
  remove(taskId: string): Promise<boolean>;
  size(): Promise<number>;
  /** Replaces the whole content with exactly `entries` (in order), atomically for readers. */
  rebuild(entries: readonly QueueEntry[]): Promise<void>;
}
