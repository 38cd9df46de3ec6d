import { describe, expect, it } from 'vitest';
import { SimulatedClock, initialTransition, transition, type InspectionEvent } from 'xstate';
import { ActorSystem } from '../../src/actors/system.js';
import { ValidationError } from '../../src/errors.js';
import { CommittedInspection, PassivatedTaskRef } from '../../src/inspect/committed-steps.js';
import { silentLogger } from '../../src/logger.js';
import { taskMachine, type TaskEvent } from '../../src/machines/task-machine.js';

const input = { taskId: 'tsk_1', projectId: 'prj_1', taskType: 'WRITE_SCRIPT', maxAttempts: 1 };
const task = { taskId: 'tsk_1', projectId: 'prj_1', input };

/** The task machine's steps from its initial state, as the registry would commit them. */
function run(events: TaskEvent[]) {
  const [initial] = initialTransition(taskMachine, input);
  let snapshot = initial;
  const steps = events.map((event) => {
    [snapshot] = transition(taskMachine, snapshot, event);
    return { event, snapshot };
  });
  return { initial, steps };
}

describe('the inspection from committed steps', () => {
  it('emits what XState emits for a live actor: the actor once, then an event and a snapshot per step, under the parent', () => {
    const system = new ActorSystem({ clock: new SimulatedClock(), logger: silentLogger() });
    const events: InspectionEvent[] = [];
    const inspection = new CommittedInspection({ next: (e) => events.push(e) }, { rootId: system.root.sessionId, parentOf: () => system.root, onError: () => undefined });
    const { initial, steps } = run([
      { type: 'DEPENDENCIES_MET', at: 1 },
      { type: 'DISPATCH', at: 2, fencingToken: 7, deadline: 100 },
      { type: 'COMPLETE', at: 3, actualCost: 0.5 },
    ]);
    inspection.created(task, initial, steps.slice(0, 1));
    expect(inspection.followed).toBe(1);
    inspection.step(task, steps[0]!.snapshot, steps[1]!);
    inspection.step(task, steps[1]!.snapshot, steps[2]!);

    expect(events.map((e) => `${e.type} ${'event' in e ? e.event.type : ''}`.trim())).toEqual([
      '@xstate.actor',
      '@xstate.event xstate.init',
      '@xstate.snapshot xstate.init',
      '@xstate.event DEPENDENCIES_MET',
      '@xstate.snapshot DEPENDENCIES_MET',
      '@xstate.event DISPATCH',
      '@xstate.snapshot DISPATCH',
      '@xstate.event COMPLETE',
      '@xstate.snapshot COMPLETE',
    ]);
    const ref = events[0]!.actorRef as PassivatedTaskRef;
    expect(events.every((e) => e.actorRef === ref && e.rootId === system.root.sessionId)).toBe(true);
    expect(ref).toMatchObject({ id: 'tsk_1', _parent: system.root, logic: taskMachine });
    expect(ref.getSnapshot().value).toBe('PENDING');
    expect(events.filter((e) => e.type === '@xstate.snapshot').map((e) => (e.snapshot as unknown as { value: string }).value)).toEqual([
      'PENDING',
      'READY',
      'RUNNING',
      'COMPLETED',
    ]);
    // Final: no longer followed.
    expect(inspection.followed).toBe(0);
    // A passivated task actor takes no event: its events are committed through the registry.
    expect(() => ref.send({ type: 'CANCEL' })).toThrow(ValidationError);
  });

  it('announces a task first seen at a step in its state before the step', () => {
    const system = new ActorSystem({ clock: new SimulatedClock(), logger: silentLogger() });
    const events: InspectionEvent[] = [];
    const inspection = new CommittedInspection({ next: (e) => events.push(e) }, { rootId: system.root.sessionId, parentOf: () => system.root, onError: () => undefined });
    const { steps } = run([
      { type: 'DEPENDENCIES_MET', at: 1 },
      { type: 'DISPATCH', at: 2, fencingToken: 7, deadline: 100 },
    ]);
    inspection.step(task, steps[0]!.snapshot, steps[1]!);
    expect(events.map((e) => e.type)).toEqual(['@xstate.actor', '@xstate.event', '@xstate.snapshot']);
    expect((events[0]!.actorRef as PassivatedTaskRef).getSnapshot().value).toBe('READY');
  });

  it('a failing observer never fails the commit that fed it', () => {
    const system = new ActorSystem({ clock: new SimulatedClock(), logger: silentLogger() });
    const failures: unknown[] = [];
    const inspection = new CommittedInspection(
      { next: () => { throw new Error('inspector gone'); } },
      { rootId: system.root.sessionId, parentOf: () => system.root, onError: (err) => failures.push(err) },
    );
    const { initial, steps } = run([{ type: 'DEPENDENCIES_MET', at: 1 }]);
    expect(() => inspection.created(task, initial, steps)).not.toThrow();
    expect(failures).toHaveLength(5);
  });
});
