-- steadyhand schema, version 13: sealed archives. Facts stay append-only for everyone; the
-- one way to remove history is to name an ended workflow in a recorded archive run
-- (`steadyhand archive`), after its archive file was written and fsynced. Both tables are
-- themselves append-only, so every removal leaves its record.

CREATE TABLE IF NOT EXISTS archive_runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    directory TEXT NOT NULL,
    ended_before REAL NOT NULL,
    workflows INTEGER NOT NULL,
    facts INTEGER NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    by TEXT NOT NULL,
    at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS archive_removals (
    workflow_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES archive_runs (id)
) WITHOUT ROWID;

CREATE TRIGGER IF NOT EXISTS archive_removals_ended_only BEFORE INSERT ON archive_removals
WHEN NOT EXISTS (
    SELECT 1 FROM facts WHERE workflow_id = NEW.workflow_id
      AND kind IN ('workflow_completed', 'workflow_compensated', 'workflow_failed')
) OR EXISTS (SELECT 1 FROM tasks WHERE workflow_id = NEW.workflow_id)
BEGIN SELECT RAISE(ABORT, 'only ended workflows can be archived'); END;

DROP TRIGGER IF EXISTS facts_refuse_delete;
CREATE TRIGGER facts_refuse_delete BEFORE DELETE ON facts
WHEN NOT EXISTS (SELECT 1 FROM archive_removals WHERE workflow_id = OLD.workflow_id)
BEGIN SELECT RAISE(ABORT, 'steadyhand facts are append-only: DELETE is refused'); END;
DROP TRIGGER IF EXISTS workflows_refuse_delete;
CREATE TRIGGER workflows_refuse_delete BEFORE DELETE ON workflows
WHEN NOT EXISTS (SELECT 1 FROM archive_removals WHERE workflow_id = OLD.id)
BEGIN SELECT RAISE(ABORT, 'steadyhand workflows are append-only: DELETE is refused'); END;

CREATE TRIGGER IF NOT EXISTS archive_runs_refuse_update BEFORE UPDATE ON archive_runs
BEGIN SELECT RAISE(ABORT, 'steadyhand archive_runs are append-only: UPDATE is refused'); END;
CREATE TRIGGER IF NOT EXISTS archive_runs_refuse_delete BEFORE DELETE ON archive_runs
BEGIN SELECT RAISE(ABORT, 'steadyhand archive_runs are append-only: DELETE is refused'); END;
CREATE TRIGGER IF NOT EXISTS archive_removals_refuse_update BEFORE UPDATE ON archive_removals
BEGIN SELECT RAISE(ABORT, 'steadyhand archive_removals are append-only: UPDATE is refused'); END;
CREATE TRIGGER IF NOT EXISTS archive_removals_refuse_delete BEFORE DELETE ON archive_removals
BEGIN SELECT RAISE(ABORT, 'steadyhand archive_removals are append-only: DELETE is refused'); END;

-- REPLACE would delete the row in its way without firing the DELETE triggers (see 006).
CREATE TRIGGER IF NOT EXISTS archive_runs_refuse_replace BEFORE INSERT ON archive_runs
WHEN EXISTS (SELECT 1 FROM archive_runs WHERE id = NEW.id)
BEGIN SELECT RAISE(ABORT, 'steadyhand archive_runs are append-only: that id is taken'); END;
CREATE TRIGGER IF NOT EXISTS archive_removals_refuse_replace BEFORE INSERT ON archive_removals
WHEN EXISTS (SELECT 1 FROM archive_removals WHERE workflow_id = NEW.workflow_id)
BEGIN SELECT RAISE(ABORT, 'steadyhand archive_removals are append-only: already archived'); END;
