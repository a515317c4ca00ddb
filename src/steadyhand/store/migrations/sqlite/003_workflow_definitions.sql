-- Published workflow definitions: the latest plan of every workflow a deploy registers.
-- Operational (rewritten by each deploy); lets code outside Python start workflows by name.
CREATE TABLE IF NOT EXISTS workflow_definitions (
    name TEXT PRIMARY KEY,
    plan TEXT NOT NULL,
    published_at REAL NOT NULL
);
