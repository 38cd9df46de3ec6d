import type { QueueEntry, TaskQueue } from '../../ports/task-queue.js';
import { checkCount, checkEntries, checkEntry, firstOccurrences } from '../validation.js';

interface Node {
  readonly taskId: string;
  readonly priority: number;
  readonly seq: number;
  /** Position in the heap array, kept up to date so remove is O(log n). */
  index: number;
}

/**
 * The in-process ready queue, the embedded default: an indexed binary heap ordered by
 * (priority desc, sequence asc) plus a map from task id to heap node. put, get and
 * remove are O(log n), size O(1), getMany(k) O(k log n), rebuild O(n) (heapify).
 * Same semantics as RedisTaskQueue: put keeps an already queued task's place, FIFO
 * within a priority, rebuild keeps the first occurrence of a duplicated id.
 *
 * Every method runs to completion synchronously before its promise settles, so callers
 * sharing one instance can never receive the same id twice.
 */
export class MemoryTaskQueue implements TaskQueue {
  #heap: Node[] = [];
  #byId = new Map<string, Node>();
  #seq = 0;

  async put(entry: QueueEntry): Promise<void> {
    checkEntry(entry);
    this.#insert(entry);
  }

  async putMany(entries: readonly QueueEntry[]): Promise<void> {
    checkEntries(entries);
    for (const entry of entries) this.#insert(entry);
  }

  async get(): Promise<string | null> {
    return this.#pop();
  }

  async getMany(count: number): Promise<string[]> {
    checkCount(count);
    const ids: string[] = [];
    while (ids.length < count) {
      const id = this.#pop();
      if (id === null) break;
      ids.push(id);
    }
    return ids;
  }

  async remove(taskId: string): Promise<boolean> {
    const node = this.#byId.get(taskId);
    if (node === undefined) return false;
    this.#removeAt(node.index);
    return true;
  }

  async size(): Promise<number> {
    return this.#heap.length;
  }

  async rebuild(entries: readonly QueueEntry[]): Promise<void> {
    checkEntries(entries);
    const heap: Node[] = [];
    const byId = new Map<string, Node>();
    for (const { taskId, priority } of firstOccurrences(entries)) {
      const node: Node = { taskId, priority, seq: ++this.#seq, index: heap.length };
      heap.push(node);
      byId.set(taskId, node);
    }
    this.#heap = heap;
    this.#byId = byId;
    for (let i = (heap.length >> 1) - 1; i >= 0; i--) this.#siftDown(i);
  }

  #insert({ taskId, priority }: QueueEntry): void {
    if (this.#byId.has(taskId)) return;
    const node: Node = { taskId, priority, seq: ++this.#seq, index: this.#heap.length };
    this.#heap.push(node);
    this.#byId.set(taskId, node);
    this.#siftUp(node.index);
  }

  #pop(): string | null {
    const top = this.#heap[0];
    if (top === undefined) return null;
    this.#removeAt(0);
    return top.taskId;
  }

  #removeAt(index: number): void {
    const heap = this.#heap;
    const node = heap[index] as Node;
    const last = heap.pop() as Node;
    this.#byId.delete(node.taskId);
    if (last === node) return;
    heap[index] = last;
    last.index = index;
    // The moved node may belong above or below its new place.
    this.#siftUp(index);
    this.#siftDown(last.index);
  }

  #siftUp(index: number): void {
    const heap = this.#heap;
    const node = heap[index] as Node;
    let i = index;
    while (i > 0) {
      const parentIndex = (i - 1) >> 1;
      const parent = heap[parentIndex] as Node;
      if (!before(node, parent)) break;
      heap[i] = parent;
      parent.index = i;
      i = parentIndex;
    }
    heap[i] = node;
    node.index = i;
  }

  #siftDown(index: number): void {
    const heap = this.#heap;
    const n = heap.length;
    const node = heap[index] as Node;
    let i = index;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      let child = left;
      if (right < n && before(heap[right] as Node, heap[left] as Node)) child = right;
      const childNode = heap[child] as Node;
      if (!before(childNode, node)) break;
      heap[i] = childNode;
      childNode.index = i;
      i = child;
    }
    heap[i] = node;
    node.index = i;
  }
}

/** True when `a` is served before `b`: higher priority, then earlier put. */
function before(a: Node, b: Node): boolean {
  return a.priority > b.priority || (a.priority === b.priority && a.seq < b.seq);
}
