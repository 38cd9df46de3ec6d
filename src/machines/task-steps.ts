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
    initial: fastInitial(machine, scope) ?? ((input) => machine.getInitialSnapshot(scope, input)),
    step: (snapshot, event) => machine.transition(snapshot, event, scope),
    restore: (persisted) => machine.restoreSnapshot(persisted, scope) as TaskSnapshot,
  };
}

/**
 * The first snapshot built as `resolveState` builds a snapshot of a state and a context:
 * the machine's initial state with the context its own `context` function makes of the
 * input — a fifth of `getInitialSnapshot`'s cost (2 µs instead of 11, measured), which
 * also runs the initial transition's microstep. The same snapshot only while that step does
 * nothing more: no entry actions, invocations, eventless or delayed transitions on the way
 * in. Null (use getInitialSnapshot) when the machine has any of them, or when the two ways
 * disagree on a sample input; task-steps.test.ts compares them too.
 */
function fastInitial(machine: TaskMachine, scope: Scope): ((input: TaskMachineInput) => TaskSnapshot) | null {
  const { context, initial } = machine.config;
  if (typeof context !== 'function' || typeof initial !== 'string') return null;
  const root = machine.root;
  const first = root.states[initial];
  if (!first || first.type !== 'atomic') return null;
  for (const node of [root, first]) {
    if (node.entry.length || node.invoke.length || node.always?.length || node.after.length) return null;
  }
  const makeContext = context as (args: { input: TaskMachineInput; self: unknown; spawn: unknown }) => TaskSnapshot['context'];
  const build = (input: TaskMachineInput): TaskSnapshot =>
    machine.resolveState({ value: initial, context: makeContext({ input, self: scope.self, spawn: noSpawn }) } as never) as TaskSnapshot;
  const sample: TaskMachineInput = { taskId: 'tsk_sample', projectId: 'prj_sample', taskType: 'SAMPLE', maxAttempts: 7 };
  const same = JSON.stringify(machine.getPersistedSnapshot(build(sample))) === JSON.stringify(machine.getPersistedSnapshot(machine.getInitialSnapshot(scope, sample)));
  return same ? build : null;
}

function noSpawn(): never {
  throw new Error('the task machine spawns no actors');
}
