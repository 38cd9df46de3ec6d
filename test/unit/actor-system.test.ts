import { describe, expect, it } from 'vitest';
import { SimulatedClock, waitFor, type AnyActorRef, type InspectionEvent } from 'xstate';
import { ActorSystem, type SchedulerLoop } from '../../src/actors/system.js';
import { ValidationError } from '../../src/errors.js';
import { createLogger, silentLogger } from '../../src/logger.js';
import { DEFAULT_PROJECT_POLICY, projectMachine, resolveProjectSnapshot } from '../../src/machines/project-machine.js';
import { initialTransition, transition } from 'xstate';
import { taskMachine } from '../../src/machines/task-machine.js';
import { restorable } from '../../src/machines/restorable.js';

const loop = (): SchedulerLoop & { ticks: number } => {
  const l = {
    ticks: 0,
    tick: async () => ++l.ticks,
    drain: async () => undefined,
  };
  return l;
};

function projectSnapshot(projectId: string, state: 'active' | 'paused', reason: string | null = null) {
  const snapshot = resolveProjectSnapshot({
    projectId,
    state,
    reason,
    level: 'ok',
    budget: { limit: 10, spent: 1, reserved: 2 },
    policy: DEFAULT_PROJECT_POLICY,
    approvals: {},
  });
  return projectMachine.getPersistedSnapshot(snapshot);
}

function taskSnapshot(taskId: string, projectId: string) {
  const input = { taskId, projectId, taskType: 'WRITE_SCRIPT', maxAttempts: 3 };
  const [created] = initialTransition(taskMachine, input);
  const [ready] = transition(taskMachine, created, { type: 'DEPENDENCIES_MET', at: 1 });
  return { input, snapshot: taskMachine.getPersistedSnapshot(ready) };
}

/** A persisted snapshot the machine cannot restore (a state it does not have). */
const CORRUPT = { status: 'active', value: 'ARCHIVED', context: {}, children: {}, historyValue: {} } as never;

describe('the actor system', () => {
  it('has one root whose children are the scheduler and the project actors, with task actors under their project', () => {
    const system = new ActorSystem({ clock: new SimulatedClock(), logger: silentLogger() });
    const scheduler = system.spawnScheduler(loop(), 1000);
    const project = system.spawnProject('prj_a', projectSnapshot('prj_a', 'paused', 'manual'));

    const children = system.root.getSnapshot().children as Record<string, AnyActorRef>;
    expect(Object.keys(children).sort()).toEqual(['project:prj_a', 'scheduler']);
    expect(system.system.get('scheduler')).toBe(scheduler);
    expect(system.system.get('project:prj_a')).toBe(project);
    expect(scheduler._parent).toBe(system.root);
    expect(project._parent).toBe(system.root);
    // The project actor starts from its persisted snapshot.
    expect(project.getSnapshot().value).toMatchObject({ lifecycle: 'paused' });
    expect(project.getSnapshot().context).toMatchObject({ reason: 'manual', budget: { limit: 10, spent: 1, reserved: 2 } });
    expect(project.getSnapshot().can({ type: 'RESUME' })).toBe(true);

    // Task actors are passivated: none runs until one is activated, under its project.
    expect(system.system.get('task:tsk_1')).toBeUndefined();
    const { input, snapshot } = taskSnapshot('tsk_1', 'prj_a');
    const task = system.activateTask({ taskId: 'tsk_1', projectId: 'prj_a', snapshot, input });
    expect(system.system.get('task:tsk_1')).toBe(task);
    expect(task._parent).toBe(project);
    expect(task.getSnapshot().value).toBe('READY');
    // Activating again gives the live one.
    expect(system.activateTask({ taskId: 'tsk_1', projectId: 'prj_a', snapshot, input })).toBe(task);

    // Released: its project stops it.
    system.releaseTask('tsk_1');
    expect(task.getSnapshot().status).toBe('stopped');
    expect(system.system.get('task:tsk_1')).toBeUndefined();

    // One actor per project: a second spawn gives the live one; a stop removes it from the root.
    expect(system.spawnProject('prj_a', projectSnapshot('prj_a', 'active'))).toBe(project);
    system.stopProject('prj_a');
    expect(project.getSnapshot().status).toBe('stopped');
    expect(Object.keys(system.root.getSnapshot().children)).toEqual(['scheduler']);
    expect(system.system.get('project:prj_a')).toBeUndefined();
  });

  it('stops a project actor with its activated task actors; a task of a project without a live actor is under the root', () => {
    const system = new ActorSystem({ clock: new SimulatedClock(), logger: silentLogger() });
    system.spawnProject('prj_b', projectSnapshot('prj_b', 'active'));
    const a = taskSnapshot('tsk_a', 'prj_b');
    const underProject = system.activateTask({ taskId: 'tsk_a', projectId: 'prj_b', ...a });
    system.stopProject('prj_b');
    expect(underProject.getSnapshot().status).toBe('stopped');
    expect(system.activeTask('tsk_a')).toBeUndefined();

    const b = taskSnapshot('tsk_b', 'prj_gone');
    const underRoot = system.activateTask({ taskId: 'tsk_b', projectId: 'prj_gone', ...b });
    expect(underRoot._parent).toBe(system.root);
    system.releaseTask('tsk_b');
    expect(underRoot.getSnapshot().status).toBe('stopped');
    expect(system.system.get('task:tsk_b')).toBeUndefined();
  });

  it('runs the scheduler loop it was given, on the system clock', async () => {
    const clock = new SimulatedClock();
    const system = new ActorSystem({ clock, logger: silentLogger() });
    const work = loop();
    const scheduler = system.spawnScheduler(work, 1000);
    expect(() => system.spawnScheduler(loop(), 1000)).toThrow(ValidationError);
    scheduler.send({ type: 'START' });
    await waitFor(scheduler, (s) => s.matches('idle'));
    expect(work.ticks).toBe(1);
    clock.increment(1000);
    await waitFor(scheduler, (s) => s.matches('idle') && s.context.ticks === 2);
    expect(work.ticks).toBe(2);
    scheduler.send({ type: 'STOP' });
    await waitFor(scheduler, (s) => s.matches('stopped'));
  });

  it("a child's error is logged as an error object (type, message, stack), never a bare string", () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'debug', destination: { write: (line: string) => void lines.push(line) } });
    const system = new ActorSystem({ clock: new SimulatedClock(), logger });
    expect(() => system.spawnProject('prj_bad', CORRUPT)).toThrow(ValidationError);
    const logged = lines.map((l) => JSON.parse(l) as { msg: string; child?: string; err?: { type: string; message: string; stack: string } }).find((l) => l.msg.startsWith('actor failed'));
    expect(logged).toMatchObject({ child: 'project:prj_bad', err: { type: expect.stringMatching(/Error$/), message: expect.stringMatching(/ARCHIVED/), stack: expect.any(String) } });
    system.root.stop();
  });

  it("a child's error leaves the root, its other children and the process running", async () => {
    const errors: [string, string][] = [];
    const system = new ActorSystem({ clock: new SimulatedClock(), logger: silentLogger() });
    system.onChildError((child, error) => errors.push([child, error]));
    const scheduler = system.spawnScheduler(loop(), 1000);
    const healthy = system.spawnProject('prj_ok', projectSnapshot('prj_ok', 'active'));

    // A project actor that fails as it starts (a snapshot its machine cannot restore).
    expect(() => system.spawnProject('prj_bad', CORRUPT)).toThrow(ValidationError);
    expect(system.root.getSnapshot().status).toBe('active');
    expect(system.root.getSnapshot().context).toMatchObject({ childErrors: 1, lastChildError: { child: 'project:prj_bad' } });
    expect(system.root.getSnapshot().context.lastChildError!.error).toMatch(/ARCHIVED/);
    expect(errors).toEqual([['project:prj_bad', expect.stringMatching(/ARCHIVED/)]]);
    expect(Object.keys(system.root.getSnapshot().children).sort()).toEqual(['project:prj_ok', 'scheduler']);

    // A task actor that fails: its project records it, and neither the project nor the root goes down.
    expect(() => system.activateTask({ taskId: 'tsk_bad', projectId: 'prj_ok', snapshot: CORRUPT, input: taskSnapshot('tsk_bad', 'prj_ok').input })).toThrow(ValidationError);
    expect(healthy.getSnapshot().status).toBe('active');
    expect(healthy.getSnapshot().context.lastChildError).toMatch(/ARCHIVED/);
    expect(system.activeTask('tsk_bad')).toBeUndefined();

    // Told to release an actor that is not its child, the root ignores it (and stays up).
    const ok = taskSnapshot('tsk_ok', 'prj_ok');
    const grandchild = system.activateTask({ taskId: 'tsk_ok', projectId: 'prj_ok', ...ok });
    system.root.send({ type: 'RELEASE_TASK', ref: grandchild });
    expect(system.root.getSnapshot().status).toBe('active');
    expect(system.system.get('task:tsk_ok')).toBe(grandchild);
    expect(grandchild.getSnapshot().status).toBe('active');

    // Everything else goes on: the healthy project takes events, the scheduler runs, a project spawns.
    healthy.send({ type: 'PAUSE', reason: 'still here' });
    expect(healthy.getSnapshot().value).toMatchObject({ lifecycle: 'paused' });
    scheduler.send({ type: 'START' });
    await waitFor(scheduler, (s) => s.matches('idle') && s.context.ticks === 1);
    expect(system.spawnProject('prj_bad', projectSnapshot('prj_bad', 'active')).getSnapshot().value).toMatchObject({ lifecycle: 'active' });
    expect(system.root.getSnapshot().status).toBe('active');
  });

  it('builds the committed-steps inspection only when inspection is on', () => {
    expect(new ActorSystem({ clock: new SimulatedClock(), logger: silentLogger() }).inspection).toBeUndefined();
    const events: InspectionEvent[] = [];
    const system = new ActorSystem({ clock: new SimulatedClock(), logger: silentLogger(), inspect: (e) => events.push(e) });
    expect(system.inspection).toBeDefined();
    system.spawnProject('prj_i', projectSnapshot('prj_i', 'active'));
    // The system's own actors are inspected by XState, under the one root.
    const actors = events.filter((e) => e.type === '@xstate.actor');
    expect(actors.map((e) => (e.actorRef as AnyActorRef).id)).toEqual(['orchestrator', 'project:prj_i']);
    expect(new Set(events.map((e) => e.rootId))).toEqual(new Set([system.root.sessionId]));
  });
});

describe('restorable logic', () => {
  it('starts a spawned machine from a persisted snapshot, or from its initial state', () => {
    const system = new ActorSystem({ clock: new SimulatedClock(), logger: silentLogger() });
    const fresh = system.spawnProject('prj_fresh');
    expect(fresh.getSnapshot().value).toMatchObject({ lifecycle: 'active' });
    expect(fresh.getSnapshot().context.projectId).toBe('prj_fresh');
    // Its definition travels with it (what an inspector draws).
    expect(restorable(projectMachine).config).toBe(projectMachine.config);
  });
});
