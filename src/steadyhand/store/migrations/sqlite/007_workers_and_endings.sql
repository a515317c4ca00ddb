-- steadyhand schema, version 7: worker presence. workers is operational (like the queue):
-- each worker upserts its row at start and on every heartbeat and marks it stopped at
-- shutdown; rows silent for a day are pruned. (Ending notifications are PostgreSQL only:
-- SQLite clients poll.)

CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    in_flight INTEGER NOT NULL DEFAULT 0,
    concurrency INTEGER NOT NULL DEFAULT 0,
    stopped_at REAL
);
CREATE INDEX IF NOT EXISTS workers_heartbeat ON workers (heartbeat_at);
