import { keyOf, type Call } from './recording-handlers.js';

/**
 * Holds chosen inbound handler calls until a test opens their gate, and records the order
 * of handler entries and exits (`enter r1`, `exit r1`, …) and the most calls held at once.
 * Set `behaviour` as a RecordingHandlers behaviour; calls of other keys pass straight on.
 */
export class Gates {
  readonly log: string[] = [];
  /** Gated calls running now, and the most at once. */
  running = 0;
  maxRunning = 0;
  private readonly byKey = new Map<string, { label: string; promise: Promise<void>; open: () => void }>();
  private readonly byLabel = new Map<string, () => void>();

  /** Gates the calls whose key (event id, task id, approval id) is `key`, logging them as `label`. */
  hold(key: string, label: string): void {
    let open!: () => void;
    const promise = new Promise<void>((resolve) => {
      open = resolve;
    });
    this.byKey.set(key, { label, promise, open });
    this.byLabel.set(label, open);
  }

  open(...labels: string[]): void {
    for (const label of labels) {
      const open = this.byLabel.get(label);
      if (!open) throw new Error(`no gate ${label}`);
      open();
    }
  }

  openAll(): void {
    for (const open of this.byLabel.values()) open();
  }

  entered(label: string): boolean {
    return this.log.includes(`enter ${label}`);
  }

  exited(label: string): boolean {
    return this.log.includes(`exit ${label}`);
  }

  readonly behaviour = async (call: Call): Promise<void> => {
    const held = this.byKey.get(keyOf(call));
    if (!held) return;
    this.running += 1;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    this.log.push(`enter ${held.label}`);
    try {
      await held.promise;
    } finally {
      this.log.push(`exit ${held.label}`);
      this.running -= 1;
    }
  };
}

/** Lets pending callbacks (timers due now, I/O, microtasks) run: a few turns of the event loop. */
export async function turns(n = 20): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}
