import { describe, expect, it } from 'vitest';
import { initialTransition, transition } from 'xstate';
import { taskMachine } from '../../src/machines/task-machine.js';
import { createTaskSteps } from '../../src/machines/task-steps.js';
import { persistSnapshot } from '../../src/actors/task-snapshot.js';
import { EVENTS, SITUATIONS, snapshotIn } from '../helpers/transition-table.js';

/** The shared-scope steps give exactly what xstate's pure transition() gives. */
describe('task machine steps (one shared scope)', () => {
  const steps = createTaskSteps();
  const persisted = (s: Parameters<typeof taskMachine.getPersistedSnapshot>[0]) => taskMachine.getPersistedSnapshot(s);

  it('the initial snapshot equals initialTransition()', () => {
    const input = { taskId: 'tsk_a', projectId: 'prj_a', taskType: 'WRITE_SCRIPT', maxAttempts: 3 };
    expect(persisted(steps.initial(input))).toEqual(persisted(initialTransition(taskMachine, input)[0]));
  });

  for (const situation of SITUATIONS) {
    it(`every event from ${situation} gives transition()'s snapshot, accepted or not, and leaves its input untouched`, () => {
      for (const event of Object.values(EVENTS)) {
        const before = snapshotIn(situation);
        const frozen = JSON.stringify(persisted(before));
        const ours = steps.step(before, event);
        const [theirs] = transition(taskMachine, before, event);
        expect(persisted(ours)).toEqual(persisted(theirs));
        expect(ours.can(event)).toBe(theirs.can(event));
        // The actor refuses an event by this identity (no separate can() computation).
        expect(ours !== before).toBe(before.can(event));
        expect(JSON.stringify(persisted(before))).toBe(frozen);
      }
    });
  }

  it('an event the machine does not accept leaves the very same snapshot; an accepted one never does', () => {
    for (const situation of SITUATIONS) {
      for (const event of Object.values(EVENTS)) {
        const before = snapshotIn(situation);
        expect(steps.step(before, event) === before, `${situation} + ${event.type}`).toBe(!before.can(event));
      }
    }
  });

  it("persistSnapshot gives exactly xstate's getPersistedSnapshot, in every state", () => {
    for (const situation of SITUATIONS) {
      const snapshot = snapshotIn(situation);
      expect(persistSnapshot(snapshot)).toStrictEqual(taskMachine.getPersistedSnapshot(snapshot));
      expect(JSON.stringify(persistSnapshot(snapshot))).toBe(JSON.stringify(taskMachine.getPersistedSnapshot(snapshot)));
    }
  });

  it('restores a persisted snapshot to the same state, which steps on', () => {
    const running = snapshotIn('RUNNING');
    const restored = steps.restore(persisted(running));
    expect(restored.value).toBe('RUNNING');
    expect(restored.context).toEqual(running.context);
    expect(steps.step(restored, EVENTS.COMPLETE!).value).toBe('COMPLETED');
  });

  it('steps of different tasks do not share state', () => {
    const a = steps.initial({ taskId: 'tsk_a', projectId: 'prj_a', taskType: 'WRITE_SCRIPT', maxAttempts: 3 });
    const b = steps.initial({ taskId: 'tsk_b', projectId: 'prj_b', taskType: 'PLAN_SHOTS', maxAttempts: 1 });
    const a2 = steps.step(a, { type: 'DEPENDENCIES_MET', at: 1 });
    expect(a2.context.taskId).toBe('tsk_a');
    expect(b.context.taskId).toBe('tsk_b');
    expect(b.value).toBe('PENDING');
  });
});
