import { describe, expect, it } from 'vitest';
import { transition } from 'xstate';
import { TASK_STATUSES } from '../../src/domain/task.js';
import { TASK_EVENT_TYPES, isTerminal, statusOf, taskMachine } from '../../src/machines/task-machine.js';
import { ALLOWED, EVENTS, SITUATIONS, snapshotIn, statusOfSituation } from '../helpers/transition-table.js';

describe('task machine (pure)', () => {
  it('has exactly the seven states', () => {
    expect(Object.keys(taskMachine.root.states).sort()).toEqual([...TASK_STATUSES].sort());
  });

  it('the fixture covers every event type and every state', () => {
    expect(new Set(Object.values(EVENTS).map((e) => e.type))).toEqual(new Set(TASK_EVENT_TYPES));
    expect(new Set(SITUATIONS.map(statusOfSituation))).toEqual(new Set(TASK_STATUSES));
  });

  for (const situation of SITUATIONS) {
    for (const [key, event] of Object.entries(EVENTS)) {
      const expected = ALLOWED[situation][key];
      if (expected) {
        it(`${situation} + ${key} → ${expected.to}`, () => {
          const before = snapshotIn(situation);
          expect(before.can(event)).toBe(true);
          const [after] = transition(taskMachine, before, event);
          expect(statusOf(after)).toBe(expected.to);
          expect(after.context).toEqual({ ...before.context, ...expected.context });
        });
      } else {
        it(`${situation} + ${key} is refused`, () => {
          const before = snapshotIn(situation);
          expect(before.can(event)).toBe(false);
        });
      }
    }
  }

  it('final states: COMPLETED, CANCELLED and FAILED without attempts left', () => {
    const terminal = SITUATIONS.filter((s) => isTerminal(snapshotIn(s)));
    expect(terminal.sort()).toEqual(['CANCELLED', 'COMPLETED', 'FAILED_EXHAUSTED']);
  });

  it('is pure: the same snapshot and event give the same next snapshot', () => {
    const before = snapshotIn('READY');
    const [a] = transition(taskMachine, before, EVENTS.DISPATCH!);
    const [b] = transition(taskMachine, before, EVENTS.DISPATCH!);
    expect(taskMachine.getPersistedSnapshot(a)).toEqual(taskMachine.getPersistedSnapshot(b));
    expect(statusOf(before)).toBe('READY');
  });

  it('a retried task can fail again until its attempts are used up', () => {
    let snap = snapshotIn('FAILED');
    for (let attempt = 2; attempt <= 3; attempt++) {
      [snap] = transition(taskMachine, snap, EVENTS.RETRY!);
      [snap] = transition(taskMachine, snap, EVENTS.DEPENDENCIES_MET!);
      [snap] = transition(taskMachine, snap, EVENTS.DISPATCH!);
      expect(snap.context.attempts).toBe(attempt);
      [snap] = transition(taskMachine, snap, EVENTS.FAIL!);
    }
    expect(isTerminal(snap)).toBe(true);
    expect(snap.can(EVENTS.RETRY!)).toBe(false);
  });
});
