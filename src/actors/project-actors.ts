import type { AnyActorRef } from 'xstate';
import { ProjectActor, type ProjectActorDeps } from './project-actor.js';

/**
 * The live project actors of this process: one per active or paused project, each the
 * parent (supervisor) of its project's live task actors.
 */
export class ProjectActors {
  private readonly actors = new Map<string, ProjectActor>();

  constructor(private readonly deps: ProjectActorDeps) {}

  /** The project's actor, loaded from the store the first time. */
  async load(projectId: string): Promise<ProjectActor> {
    const live = this.actors.get(projectId);
    if (live) return live;
    const actor = await ProjectActor.load(projectId, this.deps);
    const raced = this.actors.get(projectId);
    if (raced) {
      actor.stop();
      return raced;
    }
    this.actors.set(projectId, actor);
    return actor;
  }

  get(projectId: string): ProjectActor | undefined {
    return this.actors.get(projectId);
  }

  /** The supervisor a new task actor of this project is created under, if loaded. */
  parentOf(projectId: string): AnyActorRef | undefined {
    return this.actors.get(projectId)?.ref;
  }

  release(projectId: string, child: AnyActorRef): void {
    this.actors.get(projectId)?.release(child);
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
