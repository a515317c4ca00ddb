-- steadyhand schema, version 6 (SQLite): close INSERT OR REPLACE / REPLACE INTO.
-- REPLACE deletes the row in its way without firing DELETE triggers (unless the connection
-- turned recursive_triggers on), so it could rewrite a fact. These BEFORE INSERT triggers
-- refuse any insert whose key is already taken; steadyhand's own "insert unless present"
-- statements check first (store/sqlite.py), so they never reach these triggers.

CREATE TRIGGER IF NOT EXISTS facts_refuse_replace BEFORE INSERT ON facts
WHEN EXISTS (SELECT 1 FROM facts WHERE workflow_id = NEW.workflow_id AND seq = NEW.seq)
  OR (NEW.slot IS NOT NULL
      AND EXISTS (SELECT 1 FROM facts WHERE workflow_id = NEW.workflow_id AND slot = NEW.slot))
BEGIN SELECT RAISE(ABORT, 'steadyhand facts are append-only: that seq or slot is taken'); END;

CREATE TRIGGER IF NOT EXISTS workflows_refuse_replace BEFORE INSERT ON workflows
WHEN EXISTS (SELECT 1 FROM workflows WHERE id = NEW.id)
  OR (NEW.idempotency_key IS NOT NULL
      AND EXISTS (SELECT 1 FROM workflows WHERE idempotency_key = NEW.idempotency_key))
BEGIN SELECT RAISE(ABORT, 'steadyhand workflows are append-only: that id or key is taken'); END;

CREATE TRIGGER IF NOT EXISTS service_facts_refuse_replace BEFORE INSERT ON service_facts
WHEN EXISTS (SELECT 1 FROM service_facts WHERE service = NEW.service AND seq = NEW.seq)
BEGIN SELECT RAISE(ABORT, 'steadyhand service_facts are append-only: that seq is taken'); END;
