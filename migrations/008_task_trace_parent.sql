-- 008: the W3C traceparent of the ingest that created a task, when tracing is on (null
-- otherwise, and for tasks created before). A task is dispatched later than its event is
-- ingested, possibly by another process after a restart: every dispatch of the task reads
-- it from the row and is traced as a child of the ingest span, so an event and its tasks
-- make one trace (src/tracing/tracing.ts). Written once, with the row; never updated.
ALTER TABLE tasks ADD COLUMN trace_parent TEXT;
