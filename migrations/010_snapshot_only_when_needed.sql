-- 010: a task row stores its machine snapshot only when its status columns cannot rebuild
-- it (src/actors/task-snapshot.ts storedSnapshot): NULL means the columns are the state.
-- The snapshot duplicated every column of the task machine's context, so each transition
-- wrote its JSON again: about a third of the WAL and of PostgreSQL's time per transition
-- (measured on the flat benchmark's UPDATE). Rows written before keep their snapshot, which
-- stays valid.
ALTER TABLE tasks ALTER COLUMN snapshot DROP NOT NULL;
