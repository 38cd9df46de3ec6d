/**
 * Coalesces concurrent calls into batches: items submitted while a batch is being written
 * (or in the same turn of the event loop) go into the next one. Batches run one after
 * another; each caller's promise settles with its own item's outcome. Two items with the
 * same key never share a batch (the later one waits for the next).
 */
export class Batcher<T> {
  private queue: { item: T; resolve: () => void; reject: (err: Error) => void }[] = [];
  private running: Promise<void> | null = null;

  constructor(
    private readonly run: (batch: T[]) => Promise<(Error | null)[]>,
    private readonly keyOf: (item: T) => string,
    private readonly maxBatch = 1000,
  ) {}

  submit(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.kick();
    });
  }

  /** Resolves once everything submitted so far has been written. */
  async drain(): Promise<void> {
    while (this.running) await this.running;
  }

  private kick(): void {
    if (this.running) return;
    this.running = new Promise<void>((done) => setImmediate(done))
      .then(() => this.loop())
      .finally(() => {
        this.running = null;
        if (this.queue.length) this.kick();
      });
  }

  private async loop(): Promise<void> {
    while (this.queue.length) {
      const taken: typeof this.queue = [];
      const rest: typeof this.queue = [];
      const keys = new Set<string>();
      for (const entry of this.queue) {
        const key = this.keyOf(entry.item);
        if (taken.length < this.maxBatch && !keys.has(key)) {
          keys.add(key);
          taken.push(entry);
        } else rest.push(entry);
      }
      this.queue = rest;
      try {
        const errors = await this.run(taken.map((e) => e.item));
        taken.forEach((e, i) => (errors[i] ? e.reject(errors[i]!) : e.resolve()));
      } catch (err) {
        for (const e of taken) e.reject(err as Error);
      }
    }
  }
}
