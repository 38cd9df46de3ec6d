import { describe, expect, it } from 'vitest';
import { createActor, fromPromise, initialTransition, SimulatedClock, transition, waitFor } from 'xstate';
import { PROJECT_EVENT_TYPES, projectMachine, projectStateOf, type ProjectEvent } from '../../src/machines/project-machine.js';
import { schedulerMachine } from '../../src/machines/scheduler-machine.js';

const SAMPLE: Record<ProjectEvent['type'], ProjectEvent> = {
  PAUSE: { type: 'PAUSE', reason: 'manual' },
  RESUME: { type: 'RESUME' },
  COMPLETE: { type: 'COMPLETE' },
  CANCEL: { type: 'CANCEL', reason: 'client left' },
};
const ALLOWED: Record<string, Partial<Record<ProjectEvent['type'], string>>> = {
  active: { PAUSE: 'paused', COMPLETE: 'completed', CANCEL: 'cancelled' },
  paused: { PAUSE: 'paused', RESUME: 'active', CANCEL: 'cancelled' },
  completed: {},
  cancelled: {},
};

describe('project machine', () => {
  for (const [state, allowed] of Object.entries(ALLOWED)) {
    for (const type of PROJECT_EVENT_TYPES) {
      it(`${state} + ${type} → ${allowed[type] ?? 'refused'}`, () => {
        const snap = projectMachine.resolveState({ value: state, context: { projectId: 'p', reason: null, lastChildError: null, budget: { limit: null, spent: 0, reserved: 0 }, approvals: {} } });
        expect(snap.can(SAMPLE[type])).toBe(allowed[type] !== undefined);
        if (allowed[type]) expect(projectStateOf(transition(projectMachine, snap, SAMPLE[type])[0])).toBe(allowed[type]);
      });
    }
  }

  it('keeps the pause reason and clears it on resume', () => {
    let [s] = initialTransition(projectMachine, { projectId: 'p' });
    [s] = transition(projectMachine, s, { type: 'PAUSE', reason: 'budget_exhausted' });
    expect(s.context.reason).toBe('budget_exhausted');
    [s] = transition(projectMachine, s, { type: 'RESUME' });
    expect(s.context.reason).toBeNull();
  });

  it('SYNC adopts a state written by another process', () => {
    const [s] = initialTransition(projectMachine, { projectId: 'p' });
    const [next] = transition(projectMachine, s, { type: 'SYNC', state: 'paused', reason: 'elsewhere' });
    expect(projectStateOf(next)).toBe('paused');
    expect(next.context.reason).toBe('elsewhere');
  });
});

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
