import { assign, fromPromise, setup, type SnapshotFrom } from 'xstate';

/**
 * The scheduler's loop as a machine: idle → ticking every interval, or at once when
 * woken; a wake during a tick runs another tick right after it. The tick itself is an
 * injected promise actor (`tick`), so the machine stays pure; a failed tick is counted
 * and the loop goes on. Not persisted: a restarted process starts a new loop.
 */
export interface SchedulerContext {
  intervalMs: number;
  /** A wake arrived during the running tick. */
  again: boolean;
  ticks: number;
  failures: number;
  lastError: string | null;
}

export type SchedulerEvent = { type: 'START' } | { type: 'STOP' } | { type: 'WAKE' };

export const schedulerMachine = setup({
  types: {
    context: {} as SchedulerContext,
    events: {} as SchedulerEvent,
    input: {} as { intervalMs: number },
  },
  actors: {
    // Placeholders; the scheduler provides the real ones with machine.provide().
    /** One pass: sweeps and dispatches; resolves to how many tasks it dispatched. */
    tick: fromPromise<number>(async () => 0),
    /** Resolves when the pass in flight (if any) has finished. */
    drain: fromPromise<void>(async () => undefined),
  },
  delays: {
    interval: ({ context }) => context.intervalMs,
  },
  guards: {
    again: ({ context }) => context.again,
  },
  actions: {
    markAgain: assign({ again: true }),
    clearAgain: assign({ again: false }),
    countTick: assign({ ticks: ({ context }) => context.ticks + 1 }),
    countFailure: assign({
      failures: ({ context }) => context.failures + 1,
      lastError: ({ event }) => String((event as { error?: unknown }).error ?? 'unknown error'),
    }),
  },
}).createMachine({
  id: 'scheduler',
  context: ({ input }) => ({ intervalMs: input.intervalMs, again: false, ticks: 0, failures: 0, lastError: null }),
  initial: 'stopped',
  states: {
    stopped: {
      on: { START: 'ticking' },
    },
    idle: {
      after: { interval: 'ticking' },
      on: { WAKE: 'ticking', STOP: 'stopped' },
    },
    ticking: {
      entry: 'clearAgain',
      invoke: {
        src: 'tick',
        onDone: [
          { guard: 'again', target: 'ticking', reenter: true, actions: 'countTick' },
          { target: 'idle', actions: 'countTick' },
        ],
        onError: [
          { guard: 'again', target: 'ticking', reenter: true, actions: 'countFailure' },
          { target: 'idle', actions: 'countFailure' },
        ],
      },
      on: { WAKE: { actions: 'markAgain' }, STOP: 'stopping' },
    },
    stopping: {
      // Let the running pass finish; no new one starts.
      invoke: { src: 'drain', onDone: 'stopped', onError: 'stopped' },
    },
  },
});

export type SchedulerMachine = typeof schedulerMachine;
export type SchedulerSnapshot = SnapshotFrom<SchedulerMachine>;
