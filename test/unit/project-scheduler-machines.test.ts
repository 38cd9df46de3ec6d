import { describe, expect, it } from 'vitest';
import { createActor, fromPromise, SimulatedClock, waitFor } from 'xstate';
import { schedulerMachine } from '../../src/machines/scheduler-machine.js';

// The project machine's tests: test/unit/project-machine.test.ts.
describe('scheduler machine', () => {
  function run(tickImpl: () => Promise<number>) {
    const clock = new SimulatedClock();
    let inflight: Promise<unknown> = Promise.resolve();
    const tick = () => {
      const p = tickImpl();
      inflight = p.catch(() => undefined);
      return p;
    };
    const drain = (): Promise<void> => inflight.then(() => undefined);
    const actor = createActor(schedulerMachine.provide({ actors: { tick: fromPromise(tick), drain: fromPromise(drain) } }), {
      input: { intervalMs: 1000 },
      clock,
    });
    actor.start();
    return { actor, clock };
  }

  it('ticks on start, then every interval of the injected clock', async () => {
    let ticks = 0;
    const { actor, clock } = run(async () => ++ticks);
    expect(actor.getSnapshot().value).toBe('stopped');
    actor.send({ type: 'START' });
    await waitFor(actor, (s) => s.matches('idle'));
    expect(ticks).toBe(1);
    clock.increment(999);
    expect(actor.getSnapshot().value).toBe('idle');
    clock.increment(1);
    await waitFor(actor, (s) => s.matches('idle') && s.context.ticks === 2);
    expect(ticks).toBe(2);
  });

  it('a wake during a tick runs one more right after; a failed tick does not stop the loop', async () => {
    let release: () => void = () => undefined;
    let calls = 0;
    const { actor } = run(() => {
      calls++;
      if (calls === 1) return new Promise<number>((r) => (release = () => r(1)));
      if (calls === 2) return Promise.reject(new Error('redis down'));
      return Promise.resolve(0);
    });
    actor.send({ type: 'START' });
    actor.send({ type: 'WAKE' });
    actor.send({ type: 'WAKE' });
    release();
    await waitFor(actor, (s) => s.matches('idle'));
    expect(calls).toBe(2);
    expect(actor.getSnapshot().context).toMatchObject({ ticks: 1, failures: 1, lastError: 'Error: redis down' });
    actor.send({ type: 'WAKE' });
    await waitFor(actor, (s) => s.matches('idle') && s.context.ticks === 2);
  });

  it('stop waits for the pass in flight', async () => {
    let release: () => void = () => undefined;
    const { actor } = run(() => new Promise<number>((r) => (release = () => r(0))));
    actor.send({ type: 'START' });
    actor.send({ type: 'STOP' });
    await new Promise((r) => setTimeout(r, 20));
    expect(actor.getSnapshot().value).toBe('stopping');
    release();
    await waitFor(actor, (s) => s.matches('stopped'));
  });
});
