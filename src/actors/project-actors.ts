import { ProjectActor, type ProjectActorDeps } from './project-actor.js';
import { projectActorId } from '../machines/orchestrator-machine.js';

/**
 * The live project actors of this process: one per active or paused project, each a child
 * of the actor system's root (`project:<id>`) and the parent (supervisor) of its project's
 * activated task actors. A project actor that fails is dropped (the root recorded its
 * error): the next use loads it again from its row.
 */
export class ProjectActors {
  private readonly actors = new Map<string, ProjectActor>();

  constructor(private readonly deps: ProjectActorDeps) {
    const prefix = projectActorId('');
    deps.system.onChildError((child) => {
      if (child.startsWith(prefix)) this.drop(child.slice(prefix.length));
    });
  }

  /** The project's actor, loaded from the store the first time. */
  async load(projectId: string): Promise<ProjectActor> {
    const live = this.actors.get(projectId);
    if (live) return live;
    const actor = await ProjectActor.load(projectId, this.deps);
    // A load that raced this one holds the same XState actor (one per project in the
    // system): this wrapper is left, the actor kept.
    const raced = this.actors.get(projectId);
    if (raced) return raced;
    this.actors.set(projectId, actor);
    return actor;
  }

  get(projectId: string): ProjectActor | undefined {
    return this.actors.get(projectId);
  }

  drop(projectId: string): void {
    this.actors.get(projectId)?.stop();
    this.actors.delete(projectId);
  }

  stopAll(): void {
    for (const id of [...this.actors.keys()]) this.drop(id);
  }

  get size(): number {
    return this.actors.size;
  }
}
