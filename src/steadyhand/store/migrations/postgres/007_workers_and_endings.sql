-- steadyhand schema, version 7: worker presence and ending notifications.
-- workers is operational (like the queue): each worker upserts its row at start and on
-- every heartbeat and marks it stopped at shutdown; rows silent for a day are pruned.
-- Losing it loses no business state. The trigger NOTIFYs `steadyhand_ended_<schema>` with
-- the workflow id whenever a terminal fact is appended, so waiting clients wake at once.

CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    heartbeat_at DOUBLE PRECISION NOT NULL,
    in_flight INTEGER NOT NULL DEFAULT 0,
    concurrency INTEGER NOT NULL DEFAULT 0,
    stopped_at DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS workers_heartbeat ON workers (heartbeat_at);

CREATE OR REPLACE FUNCTION steadyhand_notify_ended() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(left('steadyhand_ended_' || TG_TABLE_SCHEMA, 63), NEW.workflow_id);
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS facts_notify_ended ON facts;
CREATE TRIGGER facts_notify_ended AFTER INSERT ON facts
    FOR EACH ROW
    WHEN (NEW.kind IN ('workflow_completed', 'workflow_compensated', 'workflow_failed'))
    EXECUTE FUNCTION steadyhand_notify_ended();
