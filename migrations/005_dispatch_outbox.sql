-- 005: the dispatch outbox. A row per RUNNING attempt whose dispatch is not yet confirmed
-- published: written by the statement that writes the task RUNNING (a DISPATCH, or a task
-- created RUNNING), removed when the bus confirms the dispatch (one statement per
-- confirmed batch). A live dispatcher keeps its attempt's lease while it retries; any live
-- instance takes over an attempt whose record is older than the claim TTL and whose lease
-- is free (its owner is gone), and publishes it again (src/dispatch/dispatcher.ts).
--
-- A small table rather than a column of `tasks`: clearing a column rewrites the whole task
-- row (input, snapshot), a second row version per dispatch. Measured with
-- bench/dispatch-record.ts (RUNNING, confirmation, COMPLETED, per task): the column cost
-- about 1.4 KiB of WAL and 30 µs of PostgreSQL backend CPU per task, the table about
-- 0.2 KiB and 5-10 µs. Only unconfirmed dispatches stay in it, so it stays small; no index
-- but its key (the sweep reads it whole).
CREATE TABLE dispatch_outbox (
  task_id       VARCHAR(50) PRIMARY KEY,
  fencing_token BIGINT      NOT NULL, -- of the attempt (the task row's, while it runs)
  at            TIMESTAMP   NOT NULL  -- when it was written RUNNING
);

-- Attempts RUNNING at the upgrade: their dispatch may not have left.
INSERT INTO dispatch_outbox (task_id, fencing_token, at)
SELECT task_id, fencing_token, updated_at FROM tasks WHERE status = 'RUNNING' AND fencing_token IS NOT NULL;
