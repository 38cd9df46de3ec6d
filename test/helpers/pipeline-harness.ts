import { InProcessEventBus } from '../../src/adapters/memory/event-bus.js';
import type { ApprovalDecided, ApprovalRequested, TaskDispatch } from '../../src/domain/messages.js';
import { TaskTypeCatalog } from '../../src/domain/task-types.js';
import { SimulatedAgents, type SimulationOptions } from '../../src/demo/simulated-agents.js';
import { silentLogger } from '../../src/logger.js';
import type { Outbound } from '../../src/ports/event-bus.js';
import type { ConfigOverrides } from '../../src/config/config.js';
import { OrchestratorFactory, type Blackboard, type OrchestratorOptions } from '../../src/orchestrator/factory.js';
import type { Orchestrator } from '../../src/orchestrator/orchestrator.js';
import { waitFor } from './wait.js';

export type Reviewer = (request: ApprovalRequested, count: number) => Omit<ApprovalDecided, 'approvalId'> | null;

export const approveAll: Reviewer = () => ({ decision: 'approved', by: 'reviewer@test' });

export interface HarnessOptions {
  config?: ConfigOverrides;
  simulation?: SimulationOptions;
  reviewer?: Reviewer;
  /** Replaces the simulated agent for some task types (return null to send nothing). */
  agentOverride?: (task: TaskDispatch) => { status: 'completed' | 'failed'; output?: Record<string, unknown>; actualCost?: number; error?: string } | null | undefined;
  /** Inspection of the orchestrator's actor system (OrchestratorOptions.inspect). */
  inspect?: OrchestratorOptions['inspect'];
}

/**
 * An orchestrator over a blackboard with the in-process bus, in-process simulated agents
 * answering every dispatch, and a reviewer answering approval requests.
 */
export async function startHarness(blackboard: Blackboard, options: HarnessOptions = {}) {
  const bus = new InProcessEventBus();
  const messages: Outbound[] = [];
  const dispatches: TaskDispatch[] = [];
  const reviewer = options.reviewer ?? approveAll;
  const catalog = new TaskTypeCatalog();
  const agents = new SimulatedAgents(catalog, { random: () => 0.5, ...options.simulation });
  let approvals = 0;
  bus.subscribe((m) => {
    messages.push(m);
    if (m.kind === 'approval_requested' && !m.body.reminder) {
      const decision = reviewer(m.body, ++approvals);
      if (decision) setTimeout(() => void bus.sendDecision(m.body.projectId, { approvalId: m.body.approvalId, ...decision }), 0);
    }
  });
  for (const agent of agents.agents()) {
    bus.registerAgent(agent, (task) => {
      dispatches.push(task);
      setTimeout(() => {
        const override = options.agentOverride?.(task);
        if (override === null) return;
        const result = override ?? { status: 'completed' as const, ...agents.run(task) };
        void bus.sendResult(task.projectId, { taskId: task.taskId, fencingToken: task.fencingToken, ...result });
      }, 0);
    });
  }
  const orchestrator: Orchestrator = await OrchestratorFactory.createAndStart(
    blackboard,
    bus,
    {
      instanceId: 'harness',
      scheduler: { intervalSeconds: 0.02, retryBackoffSeconds: 0.005, maxConcurrentTasks: 10 },
      ...options.config,
    },
    { logger: silentLogger(), ...(options.inspect ? { inspect: options.inspect } : {}) },
  );
  const projectState = (projectId: string) =>
    [...messages].reverse().find((m) => m.kind === 'project' && m.body.projectId === projectId)?.body as { state: string } | undefined;
  return {
    bus,
    orchestrator,
    messages,
    dispatches,
    async waitForProjectState(projectId: string, state: string, timeoutMs = 60_000): Promise<void> {
      await waitFor(() => projectState(projectId)?.state === state, { timeoutMs, what: `project ${projectId} ${state}` });
    },
    async stop(): Promise<void> {
      await orchestrator.stop();
    },
  };
}
