-- The PostgreSQL roles of the orchestrator, run once by an administrator (psql -f), before
-- the first `orchestrator migrate`. Two roles:
--
--   lap_owner    owns the schema and its tables: runs the migrations
--                (DATABASE_URL=postgres://lap_owner:…@host/db DATABASE_SCHEMA=lap orchestrator migrate);
--   lap_runtime  what `orchestrator start` logs in as: reads and writes the rows (SELECT,
--                INSERT, UPDATE, DELETE on the tables, the sequences), no DDL — it cannot
--                create, alter or drop a table, nor create a schema.
--
-- `orchestrator start` applies nothing when every migration is applied already, so it runs
-- as lap_runtime; with a migration pending it stops and says to run `orchestrator migrate`
-- as the owner. Change the names (lap, lap_owner, lap_runtime), the passwords and, for an
-- existing database, the database name in GRANT CONNECT.
CREATE ROLE lap_owner LOGIN PASSWORD 'change-me-owner';
CREATE ROLE lap_runtime LOGIN PASSWORD 'change-me-runtime';
GRANT CONNECT ON DATABASE postgres TO lap_owner, lap_runtime;

CREATE SCHEMA lap AUTHORIZATION lap_owner;
GRANT USAGE ON SCHEMA lap TO lap_runtime;

-- The tables and sequences the owner's migrations create, now and later.
ALTER DEFAULT PRIVILEGES FOR ROLE lap_owner IN SCHEMA lap GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO lap_runtime;
ALTER DEFAULT PRIVILEGES FOR ROLE lap_owner IN SCHEMA lap GRANT USAGE, SELECT ON SEQUENCES TO lap_runtime;
-- Those that exist already (a schema migrated before these roles).
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA lap TO lap_runtime;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA lap TO lap_runtime;
