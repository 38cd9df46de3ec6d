/**
 * Typed errors. Every condition the orchestrator reports has its own class with a
 * stable `code` (safe to match on across versions), a `retryable` flag telling the
 * caller whether the same call may succeed later, and an optional `cause`.
 */

export const ErrorCode = {
  Config: 'ERR_CONFIG',
  IllegalTransition: 'ERR_ILLEGAL_TRANSITION',
  VersionConflict: 'ERR_VERSION_CONFLICT',
  StaleFencingToken: 'ERR_STALE_FENCING_TOKEN',
  TaskNotFound: 'ERR_TASK_NOT_FOUND',
  DuplicateTask: 'ERR_DUPLICATE_TASK',
  ProjectNotFound: 'ERR_PROJECT_NOT_FOUND',
  Validation: 'ERR_VALIDATION',
  DependencyCycle: 'ERR_DEPENDENCY_CYCLE',
  UnknownDependency: 'ERR_UNKNOWN_DEPENDENCY',
  BudgetExceeded: 'ERR_BUDGET_EXCEEDED',
  Approval: 'ERR_APPROVAL',
  ServiceUnavailable: 'ERR_SERVICE_UNAVAILABLE',
  Migration: 'ERR_MIGRATION',
  Closed: 'ERR_CLOSED',
  TransactionConflict: 'ERR_TRANSACTION_CONFLICT',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface OrchestratorErrorOptions {
  cause?: unknown;
  retryable?: boolean;
}

export class OrchestratorError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options: OrchestratorErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? false;
  }

  /** A plain, log-friendly form (no stack, no cause chain). */
  toJSON(): { name: string; code: ErrorCode; message: string; retryable: boolean } {
    return { name: this.name, code: this.code, message: this.message, retryable: this.retryable };
  }
}

export interface ConfigProblem {
  /** The environment variable or option path that is wrong. */
  key: string;
  /** What was given, with secrets redacted; undefined when it was missing. */
  value: string | undefined;
  reason: string;
}

export class ConfigError extends OrchestratorError {
  readonly problems: readonly ConfigProblem[];
  constructor(problems: readonly ConfigProblem[]) {
    const lines = problems.map((p) =>
      p.value === undefined ? `${p.key}: ${p.reason}` : `${p.key}=${p.value}: ${p.reason}`,
    );
    super(ErrorCode.Config, `invalid configuration:\n  ${lines.join('\n  ')}`);
    this.problems = problems;
  }
}

export class IllegalTransitionError extends OrchestratorError {
  constructor(
    /** The task id, or the project id when `entity` is 'project'. */
    readonly taskId: string,
    readonly state: string,
    readonly event: string,
    detail?: string,
    readonly entity: 'task' | 'project' = 'task',
  ) {
    super(
      ErrorCode.IllegalTransition,
      `${entity} ${taskId}: event ${event} is not allowed in state ${state}${detail ? ` (${detail})` : ''}`,
    );
  }
}

export class VersionConflictError extends OrchestratorError {
  constructor(
    readonly taskId: string,
    readonly expectedVersion: number,
    readonly actualVersion: number,
  ) {
    super(
      ErrorCode.VersionConflict,
      `task ${taskId}: expected row version ${expectedVersion}, found ${actualVersion}`,
      { retryable: true },
    );
  }
}

export class StaleFencingTokenError extends OrchestratorError {
  constructor(
    readonly taskId: string,
    readonly carried: number,
    readonly current: number,
  ) {
    super(
      ErrorCode.StaleFencingToken,
      carried < current
        ? `task ${taskId}: fencing token ${carried} is older than the current token ${current}`
        : `task ${taskId}: fencing token ${carried} is not the current token ${current} (no lease handed it to this attempt)`,
    );
  }
}

export class TaskNotFoundError extends OrchestratorError {
  constructor(readonly taskId: string) {
    super(ErrorCode.TaskNotFound, `task ${taskId} does not exist`);
  }
}

export class DuplicateTaskError extends OrchestratorError {
  constructor(readonly taskIds: readonly string[]) {
    super(ErrorCode.DuplicateTask, `task id(s) already exist: ${taskIds.join(', ')}`);
  }
}

export class ProjectNotFoundError extends OrchestratorError {
  constructor(readonly projectId: string) {
    super(ErrorCode.ProjectNotFound, `project ${projectId} does not exist`);
  }
}

export class ValidationError extends OrchestratorError {
  constructor(
    message: string,
    readonly issues: readonly string[] = [],
    options: OrchestratorErrorOptions = {},
  ) {
    super(ErrorCode.Validation, issues.length ? `${message}: ${issues.join('; ')}` : message, options);
  }
}

/**
 * One event (or submission, or revision) would create more tasks than MAX_TASKS_PER_EVENT
 * allows: refused whole, before anything is written (a ValidationError: dead-lettered, not retried).
 */
export class FanOutLimitError extends ValidationError {
  constructor(
    /** What would have created them: `event SHOT_PLANNED (evt-1)`. */
    readonly what: string,
    readonly tasks: number,
    readonly limit: number,
  ) {
    super(`${what} would create ${tasks} tasks, more than MAX_TASKS_PER_EVENT (${limit}): refused, nothing created`);
  }
}

export class DependencyCycleError extends OrchestratorError {
  constructor(readonly cycle: readonly string[]) {
    super(ErrorCode.DependencyCycle, `dependency cycle: ${cycle.join(' -> ')}`);
  }
}

export class UnknownDependencyError extends OrchestratorError {
  constructor(
    readonly taskId: string,
    readonly dependencyId: string,
  ) {
    super(ErrorCode.UnknownDependency, `task ${taskId} depends on unknown task ${dependencyId}`);
  }
}

export class BudgetExceededError extends OrchestratorError {
  constructor(
    readonly projectId: string,
    readonly requested: number,
    readonly remaining: number,
  ) {
    super(
      ErrorCode.BudgetExceeded,
      `project ${projectId}: ${requested} does not fit in the remaining budget ${remaining}`,
    );
  }
}

export class ApprovalError extends OrchestratorError {
  constructor(message: string) {
    super(ErrorCode.Approval, message);
  }
}

export class ServiceUnavailableError extends OrchestratorError {
  constructor(
    readonly service: string,
    message: string,
    options: OrchestratorErrorOptions = {},
  ) {
    super(ErrorCode.ServiceUnavailable, message, { retryable: true, ...options });
  }
}

/**
 * A server that answered but refused this client: a wrong or missing password, a user
 * without permission, a certificate not trusted, TLS required or refused. Permanent (not
 * retryable): trying again with the same settings gets the same answer.
 */
export class ServiceRefusedError extends ServiceUnavailableError {
  constructor(service: string, message: string, options: OrchestratorErrorOptions = {}) {
    super(service, message, { ...options, retryable: false });
  }
}

/**
 * PostgreSQL aborted the transaction to resolve a conflict with another one (a deadlock,
 * 40P01; a serialization failure, 40001): nothing of it was written, and trying again is
 * what the server asks for (retryable).
 */
export class TransactionConflictError extends OrchestratorError {
  constructor(message: string, options: OrchestratorErrorOptions = {}) {
    super(ErrorCode.TransactionConflict, message, { retryable: true, ...options });
  }
}

export class MigrationError extends OrchestratorError {
  constructor(message: string, options: OrchestratorErrorOptions = {}) {
    super(ErrorCode.Migration, message, options);
  }
}

export class ClosedError extends OrchestratorError {
  constructor(what: string) {
    super(ErrorCode.Closed, `${what} is closed`);
  }
}

export function isOrchestratorError(err: unknown): err is OrchestratorError {
  return err instanceof OrchestratorError;
}
