-- steadyhand schema, version 1, SQLite dialect.
-- workflows and facts are append-only (triggers refuse UPDATE and DELETE);
-- tasks and open_workflows are the operational, rebuildable part.

CREATE TABLE IF NOT EXISTS workflows (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    input TEXT NOT NULL,
    plan TEXT NOT NULL,
    parent_id TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS workflows_created ON workflows (created_at);
CREATE INDEX IF NOT EXISTS workflows_name ON workflows (name, created_at);

CREATE TABLE IF NOT EXISTS facts (
    workflow_id TEXT NOT NULL REFERENCES workflows (id),
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    step TEXT,
    attempt INTEGER,
    slot TEXT,
    data TEXT NOT NULL DEFAULT '{}',
    at REAL NOT NULL,
    PRIMARY KEY (workflow_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS facts_slot ON facts (workflow_id, slot) WHERE slot IS NOT NULL;
CREATE INDEX IF NOT EXISTS facts_terminal ON facts (kind, at)
    WHERE kind IN ('workflow_completed', 'workflow_compensated', 'workflow_failed');

CREATE TRIGGER IF NOT EXISTS facts_refuse_update BEFORE UPDATE ON facts
BEGIN SELECT RAISE(ABORT, 'steadyhand facts are append-only: UPDATE is refused'); END;
CREATE TRIGGER IF NOT EXISTS facts_refuse_delete BEFORE DELETE ON facts
BEGIN SELECT RAISE(ABORT, 'steadyhand facts are append-only: DELETE is refused'); END;
CREATE TRIGGER IF NOT EXISTS workflows_refuse_update BEFORE UPDATE ON workflows
BEGIN SELECT RAISE(ABORT, 'steadyhand workflows are append-only: UPDATE is refused'); END;
CREATE TRIGGER IF NOT EXISTS workflows_refuse_delete BEFORE DELETE ON workflows
BEGIN SELECT RAISE(ABORT, 'steadyhand workflows are append-only: DELETE is refused'); END;

CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    step TEXT,
    attempt INTEGER,
    due_at REAL NOT NULL,
    payload TEXT NOT NULL DEFAULT '{}',
    lease_owner TEXT,
    lease_expires_at REAL,
    created_at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS tasks_one_supervise ON tasks (workflow_id) WHERE kind = 'supervise';
CREATE UNIQUE INDEX IF NOT EXISTS tasks_one_call ON tasks (workflow_id, kind, step, attempt)
    WHERE kind <> 'supervise';
CREATE INDEX IF NOT EXISTS tasks_due ON tasks (due_at) WHERE lease_owner IS NULL;
CREATE INDEX IF NOT EXISTS tasks_leased ON tasks (lease_expires_at) WHERE lease_owner IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_workflow ON tasks (workflow_id);

CREATE TABLE IF NOT EXISTS open_workflows (
    workflow_id TEXT PRIMARY KEY,
    since REAL NOT NULL
);
