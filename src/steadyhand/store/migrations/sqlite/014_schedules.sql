-- steadyhand schema, version 14: schedules. One row per schedule, published by the workers
-- of the App that declares it; `next_at` is the first tick not yet handled. Operational,
-- like tasks: the workflows a schedule starts are the history (their idempotency key names
-- the schedule and the tick).

CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    last_tick REAL,
    last_workflow_id TEXT,
    last_skipped REAL,
    skipped INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS schedules_due ON schedules (next_at) WHERE NOT paused;
