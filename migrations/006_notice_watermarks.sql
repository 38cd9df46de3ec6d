-- 006: status and budget notices are at least once. No write per transition: the audit log
-- (task_transitions, written in the same statement as every transition) is the durable
-- record of what is to be announced, and each orchestrator instance keeps, in its row here,
-- a watermark into it: every audit row it wrote with id >= notices_from may not have been
-- announced yet. The row is written once a heartbeat (about once a second), not per
-- transition. An instance whose heartbeat is older than the stale period (NOTICE_STALE_AFTER)
-- is gone: a live instance claims its row, announces its audit rows from notices_from
-- again, then the current budget status of every project they touched, and deletes the
-- row (src/reactions/notices.ts).
CREATE TABLE instances (
  instance_id  VARCHAR(100) PRIMARY KEY,
  heartbeat_at TIMESTAMP    NOT NULL, -- the database's clock (UTC), never a process's
  notices_from BIGINT       NOT NULL  -- task_transitions.id from which this instance's rows may be unannounced
);

-- The replay reads `WHERE id >= $from AND by_instance = $instance ORDER BY id`. The primary
-- key is (task_id, id) since 003, so without this index the replay reads the whole audit
-- log. Audit rows are appended in id order, so a BRIN index on id finds the pages of a
-- range of ids; it costs almost nothing per insert (one summary per 128 pages, updated
-- only when a new range starts), where a btree on id would add an entry per audit row.
CREATE INDEX task_transitions_id_brin ON task_transitions USING BRIN (id);
