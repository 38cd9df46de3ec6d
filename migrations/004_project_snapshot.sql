-- 004: the project machine is persisted in its project's row, as tasks are: the snapshot
-- (lifecycle, budget level, every approval request's lifecycle) and the machine version
-- that wrote it, next to the columns it determines (state, paused_reason, warning_level),
-- all written by one compare-and-set on `version` (PostgresProjectStore.commitProjectStep).
-- Rows without a snapshot (written before this migration, or by a plain state write) are
-- resolved from their columns and their approval rows when read.
ALTER TABLE projects ADD COLUMN IF NOT EXISTS snapshot JSONB;
ALTER TABLE projects ADD COLUMN IF NOT EXISTS machine_version TEXT;
