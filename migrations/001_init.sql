-- 001_init: the orchestrator's source of truth.
-- All TIMESTAMP columns are WITHOUT TIME ZONE and hold UTC (sessions run with TimeZone=UTC).
-- Applied by src/adapters/postgres/migrate.ts inside one transaction.

-- Tasks: the original design's columns, names and types, plus what durability needs.
CREATE TABLE tasks (
  task_id         VARCHAR(50)  PRIMARY KEY,
  project_id      VARCHAR(50)  NOT NULL,
  task_type       VARCHAR(50)  NOT NULL,
  assigned_to     VARCHAR(100) NOT NULL,
  status          VARCHAR(20)  NOT NULL,
  priority        INTEGER      NOT NULL,
  input           JSONB        NOT NULL,
  output          JSONB,
  dependencies    JSONB        DEFAULT '[]',
  estimated_cost  DECIMAL(10,4),
  actual_cost     DECIMAL(10,4),
  created_at      TIMESTAMP    NOT NULL,
  started_at      TIMESTAMP,
  completed_at    TIMESTAMP,
  -- retries
  attempts        INTEGER      NOT NULL DEFAULT 0,
  max_attempts    INTEGER      NOT NULL DEFAULT 3,
  last_error      TEXT,
  deadline        TIMESTAMP,            -- of the current attempt, while RUNNING
  not_before      TIMESTAMP,            -- backoff: earliest time to become READY again
  fencing_token   BIGINT,               -- of the lease the task last went RUNNING under
  timeout_ms      INTEGER      NOT NULL,
  -- durability
  snapshot        JSONB        NOT NULL, -- persisted XState snapshot of the task machine
  machine_version VARCHAR(20)  NOT NULL,
  version         BIGINT       NOT NULL DEFAULT 1, -- optimistic concurrency, +1 per transition
  ready_at        TIMESTAMP,            -- when the task last became READY (queue rebuild order)
  updated_at      TIMESTAMP    NOT NULL,
  CONSTRAINT tasks_status_check CHECK (status IN
    ('PENDING', 'READY', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED', 'WAITING_APPROVAL')),
  CONSTRAINT tasks_priority_check CHECK (priority BETWEEN 0 AND 1000),
  CONSTRAINT tasks_attempts_check CHECK (attempts >= 0 AND max_attempts BETWEEN 1 AND 100),
  CONSTRAINT tasks_timeout_check CHECK (timeout_ms > 0),
  CONSTRAINT tasks_cost_check CHECK (
    (estimated_cost IS NULL OR estimated_cost >= 0) AND (actual_cost IS NULL OR actual_cost >= 0)),
  CONSTRAINT tasks_dependencies_check CHECK (dependencies IS NULL OR jsonb_typeof(dependencies) = 'array')
);

-- Project dashboards and per-project counts.
CREATE INDEX tasks_project_status_idx ON tasks (project_id, status);
-- listByProject: a project's tasks in creation order.
CREATE INDEX tasks_project_created_idx ON tasks (project_id, created_at, task_id);
-- Recovery on startup (loadNonFinal): the predicate is repeated verbatim in the query.
CREATE INDEX tasks_non_final_idx ON tasks (task_id)
  WHERE NOT (status IN ('COMPLETED', 'CANCELLED') OR (status = 'FAILED' AND attempts >= max_attempts));
-- Timeout sweep (listExpired).
CREATE INDEX tasks_running_deadline_idx ON tasks (deadline) WHERE status = 'RUNNING';
-- Queue rebuild (listReady): priority desc, then time it became READY.
CREATE INDEX tasks_ready_queue_idx ON tasks (priority DESC, ready_at, task_id) WHERE status = 'READY';
-- listDependents: dependencies @> '["<task id>"]'.
CREATE INDEX tasks_dependencies_idx ON tasks USING GIN (dependencies jsonb_path_ops);
-- Retry promotion (listDueRetries): PENDING tasks whose back-off ends.
CREATE INDEX tasks_due_retry_idx ON tasks (not_before) WHERE status = 'PENDING' AND not_before IS NOT NULL;
-- maxFencingToken on startup.
CREATE INDEX tasks_fencing_token_idx ON tasks (fencing_token) WHERE fencing_token IS NOT NULL;

-- Projects: state, budget (spent and reserved are maintained in SQL), checkpoints.
CREATE TABLE projects (
  project_id    VARCHAR(50)   PRIMARY KEY,
  title         TEXT          NOT NULL,
  state         VARCHAR(20)   NOT NULL DEFAULT 'active',
  budget_limit  DECIMAL(12,4),          -- null: no limit
  spent         DECIMAL(12,4) NOT NULL DEFAULT 0,
  reserved      DECIMAL(12,4) NOT NULL DEFAULT 0,
  paused_reason TEXT,
  warning_level DECIMAL(7,4)  NOT NULL DEFAULT 0, -- highest budget warning level published (0 = none)
  checkpoints   JSONB,                  -- the project's own checkpoints; null: the pipeline's
  snapshot      JSONB,
  version       BIGINT        NOT NULL DEFAULT 1,
  created_at    TIMESTAMP     NOT NULL,
  updated_at    TIMESTAMP     NOT NULL,
  CONSTRAINT projects_state_check CHECK (state IN ('active', 'paused', 'completed', 'cancelled')),
  CONSTRAINT projects_spent_check CHECK (spent >= 0),
  CONSTRAINT projects_reserved_check CHECK (reserved >= 0),
  CONSTRAINT projects_budget_check CHECK (budget_limit IS NULL OR budget_limit >= 0)
);

-- Human approvals at checkpoints.
CREATE TABLE approvals (
  approval_id  VARCHAR(50)  PRIMARY KEY,
  project_id   VARCHAR(50)  NOT NULL,
  checkpoint   VARCHAR(50)  NOT NULL,
  status       VARCHAR(20)  NOT NULL DEFAULT 'pending',
  event_id     VARCHAR(100) NOT NULL, -- the checkpoint event
  summary      JSONB        NOT NULL, -- its payload
  task_ids     JSONB        NOT NULL DEFAULT '[]',
  comment      TEXT,
  decided_by   VARCHAR(100),
  requested_at TIMESTAMP    NOT NULL,
  expires_at   TIMESTAMP,
  decided_at   TIMESTAMP,
  CONSTRAINT approvals_status_check CHECK (status IN ('pending', 'approved', 'rejected', 'expired'))
);
CREATE INDEX approvals_project_status_idx ON approvals (project_id, status);
CREATE INDEX approvals_pending_expiry_idx ON approvals (expires_at) WHERE status = 'pending';

-- Idempotent event handling: an event id is processed once.
CREATE TABLE processed_events (
  event_id     VARCHAR(100) PRIMARY KEY,
  project_id   VARCHAR(50),
  event_type   VARCHAR(100) NOT NULL,
  processed_at TIMESTAMP    NOT NULL
);
CREATE INDEX processed_events_processed_at_idx ON processed_events (processed_at);

-- Append-only audit log of task transitions (from_status NULL for creation).
CREATE TABLE task_transitions (
  id          BIGSERIAL    PRIMARY KEY,
  task_id     VARCHAR(50)  NOT NULL,
  project_id  VARCHAR(50)  NOT NULL,
  from_status VARCHAR(20),
  to_status   VARCHAR(20)  NOT NULL,
  event       VARCHAR(100) NOT NULL,
  detail      JSONB,
  at          TIMESTAMP    NOT NULL,
  by_instance VARCHAR(100) NOT NULL
);
CREATE INDEX task_transitions_task_idx ON task_transitions (task_id, id);
CREATE INDEX task_transitions_project_idx ON task_transitions (project_id, id);

CREATE FUNCTION task_transitions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'task_transitions is append-only (% refused)', TG_OP USING ERRCODE = '42501';
END;
$$;
CREATE TRIGGER task_transitions_append_only
  BEFORE UPDATE OR DELETE ON task_transitions
  FOR EACH STATEMENT EXECUTE FUNCTION task_transitions_append_only();

-- Transactional outbox: events a transition raises, written with it; handling an event
-- (recording it in processed_events) deletes its row.
CREATE TABLE outbox (
  event_id   VARCHAR(100) PRIMARY KEY,
  event_type VARCHAR(100) NOT NULL,
  project_id VARCHAR(50)  NOT NULL,
  task_id    VARCHAR(50)  NOT NULL,
  payload    JSONB        NOT NULL,
  at         TIMESTAMP    NOT NULL
);
CREATE INDEX outbox_at_idx ON outbox (at, event_id);

-- Tasks that used up their attempts or were given up on.
CREATE TABLE dead_letters (
  id         BIGSERIAL   PRIMARY KEY,
  task_id    VARCHAR(50) NOT NULL,
  project_id VARCHAR(50) NOT NULL,
  reason     TEXT        NOT NULL,
  last_error TEXT,
  attempts   INTEGER     NOT NULL,
  at         TIMESTAMP   NOT NULL
);
CREATE INDEX dead_letters_project_idx ON dead_letters (project_id, id);
CREATE INDEX dead_letters_task_idx ON dead_letters (task_id);

-- Observed actual costs per (task type, agent): an exponentially weighted mean that
-- refines the catalogue's estimates.
CREATE TABLE cost_observations (
  task_type  VARCHAR(50)   NOT NULL,
  agent      VARCHAR(100)  NOT NULL,
  ewma       DECIMAL(14,6) NOT NULL,
  samples    BIGINT        NOT NULL DEFAULT 0,
  updated_at TIMESTAMP     NOT NULL,
  PRIMARY KEY (task_type, agent),
  CONSTRAINT cost_observations_check CHECK (ewma >= 0 AND samples >= 0)
);

-- Raises an error from inside a plain SQL statement (a CTE refuses its whole statement
-- this way, e.g. a budget reservation over the limit: SQLSTATE LA001).
CREATE FUNCTION orchestrator_fail(code TEXT, message TEXT) RETURNS BOOLEAN LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION USING ERRCODE = code, MESSAGE = message;
END;
$$;
