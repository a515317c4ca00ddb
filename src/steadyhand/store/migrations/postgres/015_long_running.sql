-- steadyhand schema, version 15: long-running work. Operational columns and tables only
-- (like tasks: losing them loses no business state).
-- * tasks.heartbeat: the latest details an agent sent with `ctx.heartbeat`, written with
--   the worker's lease renewal; the watchdog copies them into a `lost` fact.
-- * tasks.priority / tasks.fairness_key: copied from workflow_priorities when a task is
--   queued (a trigger, so the engine's task inserts stay as they are); leasing takes
--   higher priorities first and gated calls round-robin across fairness keys.
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS heartbeat TEXT;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS priority SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS fairness_key TEXT;

CREATE TABLE IF NOT EXISTS workflow_priorities (
    workflow_id TEXT PRIMARY KEY REFERENCES workflows (id) ON DELETE CASCADE,
    priority SMALLINT NOT NULL DEFAULT 0,
    fairness_key TEXT
);

CREATE OR REPLACE FUNCTION task_priority() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT p.priority, p.fairness_key INTO NEW.priority, NEW.fairness_key
    FROM workflow_priorities p WHERE p.workflow_id = NEW.workflow_id;
    IF NOT FOUND THEN
        NEW.priority := 0;
        NEW.fairness_key := NULL;
    END IF;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS tasks_priority ON tasks;
CREATE TRIGGER tasks_priority BEFORE INSERT ON tasks
    FOR EACH ROW EXECUTE FUNCTION task_priority();

-- The fairness key each service served last, so the next lease starts with the next key.
CREATE TABLE IF NOT EXISTS fairness_turns (
    service TEXT PRIMARY KEY,
    last_key TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS tasks_due_by_priority ON tasks (priority, due_at)
    WHERE lease_owner IS NULL;
