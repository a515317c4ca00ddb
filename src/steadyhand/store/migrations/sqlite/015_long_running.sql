-- steadyhand schema, version 15: long-running work. Operational columns and tables only
-- (like tasks: losing them loses no business state).
-- * tasks.heartbeat: the latest details an agent sent with `ctx.heartbeat`, written with
--   the worker's lease renewal; the watchdog copies them into a `lost` fact.
-- * tasks.priority / tasks.fairness_key: copied from workflow_priorities when a task is
--   queued (a trigger, so the engine's task inserts stay as they are; it only writes for
--   workflows that have a row there); leasing takes higher priorities first and gated
--   calls round-robin across fairness keys.
ALTER TABLE tasks ADD COLUMN heartbeat TEXT;
ALTER TABLE tasks ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN fairness_key TEXT;

CREATE TABLE IF NOT EXISTS workflow_priorities (
    workflow_id TEXT PRIMARY KEY REFERENCES workflows (id) ON DELETE CASCADE,
    priority INTEGER NOT NULL DEFAULT 0,
    fairness_key TEXT
);

CREATE TRIGGER IF NOT EXISTS tasks_priority AFTER INSERT ON tasks
WHEN EXISTS (SELECT 1 FROM workflow_priorities WHERE workflow_id = NEW.workflow_id)
BEGIN
    UPDATE tasks SET
        priority = (SELECT priority FROM workflow_priorities WHERE workflow_id = NEW.workflow_id),
        fairness_key = (SELECT fairness_key FROM workflow_priorities
                        WHERE workflow_id = NEW.workflow_id)
    WHERE id = NEW.id;
END;

-- The fairness key each service served last, so the next lease starts with the next key.
CREATE TABLE IF NOT EXISTS fairness_turns (
    service TEXT PRIMARY KEY,
    last_key TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS tasks_due_by_priority ON tasks (priority, due_at)
    WHERE lease_owner IS NULL;
