-- 007: a project that can no longer progress is reported: `failed`, with the reason naming
-- the task that failed for good (its dependents cancelled). It starts nothing new until a
-- user retries it (the `retry` control action), or cancels it.
ALTER TABLE projects DROP CONSTRAINT projects_state_check;
ALTER TABLE projects ADD CONSTRAINT projects_state_check CHECK (state IN ('active', 'paused', 'failed', 'completed', 'cancelled'));
