-- 009: `orchestrator projects` (the projects query) pages newest first, with a keyset
-- cursor on (created_at, project_id): this index serves the order and the cursor, so a page
-- reads its rows, not the whole table sorted.
CREATE INDEX projects_created_at_idx ON projects (created_at DESC, project_id DESC);
