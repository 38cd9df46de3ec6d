import { describe, expect, it } from 'vitest';
import { assign, initialTransition, setup, transition } from 'xstate';
import { taskMachine } from '../../src/machines/task-machine.js';
import { createTaskSteps } from '../../src/machines/task-steps.js';
import { patchFromSnapshot, persistSnapshot, snapshotForRecord, storedSnapshot } from '../../src/actors/task-snapshot.js';
import { TASK_MACHINE_VERSION } from '../../src/machines/task-machine.js';
import type { TaskRecord } from '../../src/ports/task-store.js';
import { EVENTS, SITUATIONS, snapshotIn } from '../helpers/transition-table.js';

/** The shared-scope steps give exactly what xstate's pure transition() gives. */
describe('task machine steps (one shared scope)', () => {
  const steps = createTaskSteps();
  const persisted = (s: Parameters<typeof taskMachine.getPersistedSnapshot>[0]) => taskMachine.getPersistedSnapshot(s);

  it('the initial snapshot equals initialTransition(), for any input, and steps on the same', () => {
    for (const input of [
      { taskId: 'tsk_a', projectId: 'prj_a', taskType: 'WRITE_SCRIPT', maxAttempts: 3 },
      { taskId: 'tsk_b', projectId: 'prj_b', taskType: 'RENDER_SHOT', maxAttempts: 1 },
      { taskId: 'tsk_c', projectId: 'prj_c', taskType: 'GENERATE_KEYFRAME', maxAttempts: 100 },
    ]) {
      const ours = steps.initial(input);
      const [theirs] = initialTransition(taskMachine, input);
      expect(persisted(ours)).toStrictEqual(persisted(theirs));
      expect(ours.status).toBe(theirs.status);
      for (const event of Object.values(EVENTS)) {
        expect(ours.can(event), event.type).toBe(theirs.can(event));
        expect(persisted(steps.step(ours, event))).toStrictEqual(persisted(transition(taskMachine, theirs, event)[0]));
      }
    }
  });

  it('a machine whose way in does more than set its context starts through getInitialSnapshot', () => {
    // A machine with an entry action on its initial state: resolveState alone would skip it.
    const other = setup({ types: { context: {} as { n: number }, input: {} as { n: number } } }).createMachine({
      context: ({ input }) => ({ n: input.n }),
      initial: 'A',
      states: { A: { entry: assign({ n: ({ context }) => context.n + 1 }), on: {} } },
    });
    const s = createTaskSteps(other as never);
    const input = { n: 1 } as never;
    expect((s.initial(input) as unknown as { context: { n: number } }).context.n).toBe(2);
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

  /** A row as the store holds it after writing `snapshot`'s columns and stored snapshot (costs through DECIMAL(10,4)). */
  const rowOf = (snapshot: ReturnType<typeof snapshotIn>): TaskRecord => {
    const patch = patchFromSnapshot(snapshot);
    const c = snapshot.context;
    return {
      taskId: c.taskId, projectId: c.projectId, taskType: c.taskType, assignedTo: 'agent', status: patch.status!, priority: 5,
      input: {}, output: null, dependencies: [], estimatedCost: null,
      actualCost: patch.actualCost === null || patch.actualCost === undefined ? null : Number(patch.actualCost.toFixed(4)),
      createdAt: new Date(0), startedAt: patch.startedAt ?? null, completedAt: patch.completedAt ?? null,
      attempts: patch.attempts!, maxAttempts: c.maxAttempts, lastError: patch.lastError ?? null, deadline: patch.deadline ?? null,
      notBefore: patch.notBefore ?? null, fencingToken: patch.fencingToken ?? null, timeoutMs: 1000,
      snapshot: storedSnapshot(snapshot), machineVersion: TASK_MACHINE_VERSION, version: 2, updatedAt: new Date(0),
    };
  };

  it('a row without a stored snapshot rebuilds exactly the persisted snapshot from its columns, in every state', () => {
    let none = 0;
    for (const situation of SITUATIONS) {
      const snapshot = snapshotIn(situation);
      const row = rowOf(snapshot);
      if (row.snapshot === null) none++;
      else expect(row.snapshot).toStrictEqual(persistSnapshot(snapshot));
      const restored = snapshotForRecord(row);
      expect(restored.source).toBe(row.snapshot === null ? 'columns' : 'snapshot');
      expect(restored.persisted, situation).toStrictEqual(persistSnapshot(snapshot));
      // And the restored machine steps on exactly as the original.
      for (const event of Object.values(EVENTS)) {
        expect(persistSnapshot(steps.step(steps.restore(restored.persisted), event)), `${situation} + ${event.type}`).toStrictEqual(
          persistSnapshot(steps.step(snapshot, event)),
        );
      }
    }
    // Most states need no stored snapshot: the columns hold them.
    expect(none).toBeGreaterThanOrEqual(SITUATIONS.length - 2);
  });

  it('keeps the snapshot when a column cannot hold the context: a reason, a cost DECIMAL(10,4) would round', () => {
    const cancelled = steps.step(snapshotIn('READY'), { type: 'CANCEL', at: 5, reason: 'stopped by the operator' });
    expect(cancelled.context.reason).toBe('stopped by the operator');
    expect(storedSnapshot(cancelled)).toStrictEqual(persistSnapshot(cancelled));
    const running = snapshotIn('RUNNING');
    const exact = steps.step(running, { type: 'COMPLETE', at: 9, actualCost: 0.1235 });
    expect(storedSnapshot(exact)).toBeNull();
    const fine = steps.step(running, { type: 'COMPLETE', at: 9, actualCost: 0.123456 });
    expect(storedSnapshot(fine)).toStrictEqual(persistSnapshot(fine));
    expect(snapshotForRecord(rowOf(fine)).persisted).toStrictEqual(persistSnapshot(fine));
  });

  it('a stored snapshot of another machine version is not used: rebuilt from the columns, and said so', () => {
    const snapshot = snapshotIn('RUNNING');
    const row = { ...rowOf(snapshot), snapshot: persistSnapshot(snapshot), machineVersion: 'old' };
    const restored = snapshotForRecord(row);
    expect(restored.source).toBe('stale');
    expect(restored.persisted).toStrictEqual(persistSnapshot(snapshot));
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
