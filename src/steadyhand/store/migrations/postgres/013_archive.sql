-- steadyhand schema, version 13: sealed archives. Facts stay append-only for everyone; the
-- one way to remove history is to name an ended workflow in a recorded archive run
-- (`steadyhand archive`), after its archive file was written and fsynced. Both tables are
-- themselves append-only, so every removal leaves its record.

CREATE TABLE IF NOT EXISTS archive_runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    directory TEXT NOT NULL,
    ended_before DOUBLE PRECISION NOT NULL,
    workflows INTEGER NOT NULL,
    facts INTEGER NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    by TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);

CREATE TABLE IF NOT EXISTS archive_removals (
    workflow_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES archive_runs (id)
);

-- Only an ended workflow with nothing queued may be named for removal.
CREATE OR REPLACE FUNCTION archive_removal_allowed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM facts
        WHERE workflow_id = NEW.workflow_id
          AND kind IN ('workflow_completed', 'workflow_compensated', 'workflow_failed')
    ) OR EXISTS (SELECT 1 FROM tasks WHERE workflow_id = NEW.workflow_id) THEN
        RAISE EXCEPTION 'workflow % has not ended: only ended workflows can be archived',
            NEW.workflow_id;
    END IF;
    RETURN NEW;
END;
$$;
DROP TRIGGER IF EXISTS archive_removals_ended_only ON archive_removals;
CREATE TRIGGER archive_removals_ended_only BEFORE INSERT ON archive_removals
    FOR EACH ROW EXECUTE FUNCTION archive_removal_allowed();

-- Deleting a fact or a workflow row is refused unless an archive run names the workflow.
CREATE OR REPLACE FUNCTION refuse_change_unless_archived() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_id TEXT;
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF TG_TABLE_NAME = 'workflows' THEN
            v_id := OLD.id;
        ELSE
            v_id := OLD.workflow_id;
        END IF;
        IF EXISTS (SELECT 1 FROM archive_removals WHERE workflow_id = v_id) THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'steadyhand % are append-only: % is refused', TG_TABLE_NAME, TG_OP
        USING HINT = 'facts record what happened; append a new fact, or archive ended workflows';
END;
$$;
DROP TRIGGER IF EXISTS facts_append_only ON facts;
CREATE TRIGGER facts_append_only BEFORE UPDATE OR DELETE ON facts
    FOR EACH ROW EXECUTE FUNCTION refuse_change_unless_archived();
DROP TRIGGER IF EXISTS workflows_append_only ON workflows;
CREATE TRIGGER workflows_append_only BEFORE UPDATE OR DELETE ON workflows
    FOR EACH ROW EXECUTE FUNCTION refuse_change_unless_archived();

DROP TRIGGER IF EXISTS archive_runs_append_only ON archive_runs;
CREATE TRIGGER archive_runs_append_only BEFORE UPDATE OR DELETE ON archive_runs
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
DROP TRIGGER IF EXISTS archive_removals_append_only ON archive_removals;
CREATE TRIGGER archive_removals_append_only BEFORE UPDATE OR DELETE ON archive_removals
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
