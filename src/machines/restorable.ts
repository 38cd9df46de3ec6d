import type { ActorLogic, ActorSystem, AnyStateMachine, EmittedFrom, EventFromLogic, InputFrom, Snapshot, SnapshotFrom } from 'xstate';

/**
 * The input of a restorable child: the persisted snapshot to start from, or the machine's
 * own input for a fresh start.
 */
export interface RestoreInput<TInput> {
  snapshot?: Snapshot<unknown>;
  input?: TInput;
}

export type RestorableLogic<M extends AnyStateMachine> = ActorLogic<
  SnapshotFrom<M>,
  EventFromLogic<M>,
  RestoreInput<InputFrom<M>>,
  // xstate's AnyActorSystem (not exported from the package)
  ActorSystem<any>,
  EmittedFrom<M>
>;

/**
 * A machine as actor logic that a parent can spawn from a persisted snapshot. XState's
 * `spawnChild` takes an input but no snapshot (only `createActor` does), and the actors
 * the orchestrator's root spawns — the project actors — start from the state their row
 * holds. This logic starts from `input.snapshot` when given (through the machine's own
 * `restoreSnapshot`), otherwise from the machine's initial state with `input.input`;
 * every other step is the machine's. Only the public `ActorLogic` interface is used, and
 * the snapshots are the machine's own (`snapshot.can`, `transition()` work on them); the
 * definition (`config`) travels with it, so an inspector can still draw the machine.
 */
export function restorable<M extends AnyStateMachine>(machine: M): RestorableLogic<M> {
  // The casts only restate M's own snapshot type (the machine's methods are typed on AnyStateMachine's).
  type S = SnapshotFrom<M>;
  return {
    config: machine.config,
    transition: (snapshot, event, scope) => machine.transition(snapshot, event, scope as never) as S,
    getInitialSnapshot: (scope, input) =>
      (input?.snapshot ? machine.restoreSnapshot(input.snapshot, scope as never) : machine.getInitialSnapshot(scope as never, input?.input)) as S,
    restoreSnapshot: (snapshot, scope) => machine.restoreSnapshot(snapshot, scope as never) as S,
    start: (snapshot) => machine.start(snapshot),
    getPersistedSnapshot: (snapshot, options) => machine.getPersistedSnapshot(snapshot, options),
  };
}
