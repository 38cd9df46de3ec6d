/**
 * The public API of @livingagent/orchestrator. Everything else is internal and may change.
 */

// The orchestrator and how to build one
export { OrchestratorFactory, type Blackboard, type OrchestratorOptions } from './orchestrator/factory.js';
export { Orchestrator, type HandleEventResult, type ProjectStatus } from './orchestrator/orchestrator.js';
export { TaskScheduler } from './orchestrator/scheduler.js';
export { BudgetChecker } from './budget/budget-checker.js';
export { createBlackboard, createEmbeddedBlackboard, sqlStores, type SqlStores } from './adapters/blackboards.js';

// Configuration and logging
export { loadConfig, redactedConfig, type OrchestratorConfig, type ConfigOverrides } from './config/config.js';
export { SETTINGS, type Setting } from './config/settings.js';
export { createLogger, silentLogger, type Logger } from './logger.js';

// Domain: tasks, task types, pipelines, wire messages
export { Task, TaskStatus, NewTaskInput, TASK_STATUSES, isFinalStatus, newTaskId } from './domain/task.js';
export { TaskTypeCatalog, DEFAULT_TASK_TYPES, type TaskTypeSpec, type TaskTypeSpecInput, type CostModel } from './domain/task-types.js';
export { Pipeline, PipelineEvent, type PipelineInput, type PipelineEventInput, type TaskTemplate } from './domain/pipeline.js';
export {
  TaskDispatch,
  TaskResult,
  TaskResultBatch,
  TaskDispatchBatch,
  Heartbeat,
  ApprovalDecided,
  ControlRequest,
  QueryRequest,
  QUERY_LIMITS,
  type ProjectSummary,
  type TaskView,
  type DeadLetterView,
  type QueryPage,
  type ApprovalRequested,
  type PendingApproval,
  type ApprovalExpired,
  type TaskStatusMessage,
  type BudgetStatus,
  type BudgetLevel,
  type ProjectStatusMessage,
  type DeadLetterMessage,
} from './domain/messages.js';
export { OutputArtifact, OutputArtifacts, MAX_OUTPUT_ARTIFACTS } from './domain/artifacts.js';
export { EventMapper, type PlannedTask } from './pipeline/event-mapper.js';
export { VIDEO_PIPELINE } from './pipeline/video-pipeline.js';
export { loadPipelineFile } from './pipeline/load.js';

// Machines and actors
export { taskMachine, TASK_MACHINE_VERSION, type TaskEvent, type TaskContext, type TaskSnapshot } from './machines/task-machine.js';
export { projectMachine, type ProjectEvent } from './machines/project-machine.js';
export { schedulerMachine } from './machines/scheduler-machine.js';
export { orchestratorMachine } from './machines/orchestrator-machine.js';
export { toMermaid, toDefinitionJson } from './machines/mermaid.js';
export { TaskActor, type TaskTransition } from './actors/task-actor.js';
export { TaskRegistry } from './actors/task-registry.js';
export { ProjectActor } from './actors/project-actor.js';
export { ActorSystem } from './actors/system.js';

// Ports
export type { TaskStore, TaskRecord, NewTaskRecord, CreationStep, OutboxEvent } from './ports/task-store.js';
export type { ProjectStore, ProjectRecord, ApprovalRecord } from './ports/project-store.js';
export type {
  Commit,
  TransitionWrite,
  TransitionOutcome,
  ProjectBudget,
  BudgetEffect,
  EventIngest,
  IngestResult,
} from './ports/commit.js';
export type { DeadLetterStore, DeadLetter } from './ports/dead-letter-store.js';
export type { CostStatsStore, CostObservation } from './ports/cost-stats-store.js';
export type { NoticeLedger, InstanceWatermark, AuditNotice } from './ports/notice-ledger.js';
export type { TaskQueue, QueueEntry } from './ports/task-queue.js';
export type { LockManager, Lease } from './ports/lock-manager.js';
export type { DispatchItem, EventBus, Outbound, InboundHandlers } from './ports/event-bus.js';
export { systemClock, type Clock } from './ports/clock.js';
export { noMetrics, reasonCode, type Metrics, type InboundOutcome } from './ports/metrics.js';
export type { HealthCheck } from './ports/health.js';
export type { OperatorStats, StoredCounts } from './ports/operator-stats.js';

// Adapters
export { PgSqlClient, PGliteSqlClient, type SqlClient } from './adapters/postgres/sql-client.js';
export { migrate } from './adapters/postgres/migrate.js';
export { PostgresTaskStore } from './adapters/postgres/task-store.js';
export { PostgresProjectStore } from './adapters/postgres/project-store.js';
export { PostgresCommit } from './adapters/postgres/commit.js';
export { PostgresDeadLetterStore } from './adapters/postgres/dead-letter-store.js';
export { PostgresCostStatsStore } from './adapters/postgres/cost-stats-store.js';
export { PostgresNoticeLedger } from './adapters/postgres/notice-ledger.js';
export { PostgresOperatorStats } from './adapters/postgres/operator-stats.js';
export { createRedisClient } from './adapters/redis/connection.js';
export { RedisTaskQueue, RedisTaskQueue as PriorityTaskQueue } from './adapters/redis/task-queue.js';
export { RedisLockManager } from './adapters/redis/lock-manager.js';
export { MemoryTaskQueue } from './adapters/memory/task-queue.js';
export { MemoryLockManager } from './adapters/memory/lock-manager.js';
export { InProcessEventBus } from './adapters/memory/event-bus.js';
export { NatsEventBus, type NatsEventBusOptions } from './adapters/nats/event-bus.js';
export { connectNats, type NatsConnectionOptions } from './adapters/nats/connection.js';
export { natsSubjects, type NatsSubjects } from './adapters/nats/subjects.js';

// The service, the agent SDK, inspection
export { startService, type OrchestratorService } from './service.js';
export { createAgentWorker, type AgentWorker, type AgentWorkerOptions, type AgentTaskHandler, type AgentTaskContext } from './agent/worker.js';
export { connectStatelyInspector, type StatelyInspection } from './inspect/stately.js';
export { PrometheusMetrics, METRICS_PREFIX, type ScrapeSources, type RuntimeFigures } from './metrics/prometheus.js';

// Errors
export * from './errors.js';
// The review console's backend (its pages' view models and actions; `orchestrator start` serves it over HTTP).
export { ReviewConsole, type ReviewConsoleOptions, type RejectedMessages } from './console/review-console.js';
export { resolveHref, type ArtifactResolver } from './console/artifacts.js';
export type * from './ports/console.js';
