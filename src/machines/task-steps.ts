import { createActor, type Snapshot } from 'xstate';
import { taskMachine, type TaskEvent, type TaskMachine, type TaskMachineInput, type TaskSnapshot } from './task-machine.js';

/**
 * The task machine's pure steps, as xstate's `transition()` / `initialTransition()` take
 * them, but with one inert actor scope made once instead of one per call: `transition()`
 * builds a throwaway actor (and its initial snapshot) on every call, which was a third of
 * the orchestrator's CPU time under load. The task machine has no side-effect actions,
 * children or timers, so the scope only carries the machine's `self`; actions are not
 * executed (exactly as `transition()` leaves them to the caller). The scope holds no
 * state between calls: the same snapshot and event always give the same next snapshot.
 *
 * The scope is xstate's private API (the one cast into it below), so package.json pins
 * xstate exactly (5.33.3), and test/unit/task-steps.test.ts checks these steps against
 * xstate's public `transition()` / `initialTransition()` in every state, for every event:
 * an xstate upgrade that changes the scope fails that test.
 */
export interface TaskSteps {
  /** The first snapshot of a new task. */
  initial(input: TaskMachineInput): TaskSnapshot;
  /** The snapshot after `event` (the snapshot itself when the event is not handled). */
  step(snapshot: TaskSnapshot, event: TaskEvent): TaskSnapshot;
  /** A snapshot from its persisted form. */
  restore(persisted: Snapshot<unknown>): TaskSnapshot;
}

type Scope = Parameters<TaskMachine['transition']>[2];

export function createTaskSteps(machine: TaskMachine = taskMachine): TaskSteps {
  const self = createActor(machine, { input: { taskId: 'steps', projectId: 'steps', taskType: 'steps', maxAttempts: 1 } });
  const noop = (): void => undefined;
  const scope = {
    self,
    defer: noop,
    id: '',
    logger: noop,
    sessionId: '',
    stopChild: noop,
    system: self.system,
    emit: noop,
    actionExecutor: noop,
  } as unknown as Scope;
  return {
    initial: (input) => machine.getInitialSnapshot(scope, input),
    step: (snapshot, event) => machine.transition(snapshot, event, scope),
    restore: (persisted) => machine.restoreSnapshot(persisted, scope) as TaskSnapshot,
  };
}
