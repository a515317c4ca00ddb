-- Issue 13, on top of 006_security's functions: JSON values handed to the SQL functions
-- (workflow input, event payload) may nest at most 200 levels (core/limits.py
-- MAX_JSON_DEPTH; size stays at 006's 1,000,000 bytes); a workflow holds at most
-- `max_events` events (its plan's, default 500) unless a saga step still waits for the
-- event; and an event nothing waits for is recorded without waking the supervisor (it
-- spends none of the run budget). record_event keeps 006's checks, SECURITY DEFINER, pinned
-- search path and grants (CREATE OR REPLACE keeps grants; the path is pinned again below).

CREATE OR REPLACE FUNCTION steadyhand_check_json(p_value JSONB, p_what TEXT)
RETURNS VOID LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_value IS NOT NULL AND octet_length(p_value::TEXT) > 1000000 THEN
        RAISE EXCEPTION 'steadyhand: % is over 1000000 bytes of JSON; store it elsewhere and '
            'pass a reference', p_what USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF p_value IS NOT NULL AND jsonb_path_exists(p_value, 'strict $.**{201}') THEN
        RAISE EXCEPTION 'steadyhand: % is nested more than 200 levels deep; flatten it', p_what
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION record_event(
    p_event TEXT,
    p_payload JSONB DEFAULT 'null',
    p_workflow_id TEXT DEFAULT NULL,
    p_key TEXT DEFAULT NULL,
    p_dedupe_key TEXT DEFAULT NULL,
    p_start TEXT DEFAULT NULL,
    p_start_input JSONB DEFAULT 'null'
) RETURNS TABLE (workflow_id TEXT, recorded BOOLEAN, started BOOLEAN)
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
#variable_conflict use_column
DECLARE
    v_id TEXT := p_workflow_id;
    v_started BOOLEAN := FALSE;
    v_seq INTEGER;
    v_now DOUBLE PRECISION := extract(epoch FROM clock_timestamp());
    v_data JSONB;
    v_plan JSONB;
    v_awaited BOOLEAN;
    v_held INTEGER;
    v_cap INTEGER;
BEGIN
    PERFORM steadyhand_check_name(p_event, 'event name');
    PERFORM steadyhand_check_key(p_workflow_id, 'workflow id', 200);
    PERFORM steadyhand_check_key(p_key, 'key', 500);
    PERFORM steadyhand_check_key(p_dedupe_key, 'dedupe key', 500);
    PERFORM steadyhand_check_json(p_payload, 'event payload');
    IF (p_workflow_id IS NULL) = (p_key IS NULL) THEN
        RAISE EXCEPTION 'steadyhand: name the workflow by exactly one of p_workflow_id or p_key'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_id IS NULL THEN
        SELECT w.id INTO v_id FROM workflows w WHERE w.idempotency_key = p_key;
        IF NOT FOUND THEN
            IF p_start IS NULL THEN
                RAISE EXCEPTION 'steadyhand: no workflow with key %; pass p_start to start one', p_key
                    USING ERRCODE = 'no_data_found';
            END IF;
            v_id := start_workflow(p_start, p_start_input, p_key);
            -- started here only if this transaction inserted the row (not a racing caller)
            v_started := EXISTS (
                SELECT 1 FROM workflows w WHERE w.id = v_id AND w.xmin = pg_current_xact_id()::xid);
        END IF;
    END IF;
    SELECT w.plan::JSONB INTO v_plan FROM workflows w WHERE w.id = v_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'steadyhand: no workflow %', v_id USING ERRCODE = 'no_data_found';
    END IF;
    -- A saga reads only the first arrival of an event one of its steps waits for; any
    -- other supervisor may read every event (core/budget.py `awaited_by`).
    v_awaited := COALESCE(v_plan->>'supervisor', 'saga') <> 'saga' OR EXISTS (
        SELECT 1 FROM jsonb_array_elements(COALESCE(v_plan->'steps', '[]')) s
        WHERE s->>'wait_for' = p_event AND jsonb_typeof(s->'sources') = 'array') OR (
        EXISTS (SELECT 1 FROM jsonb_array_elements(COALESCE(v_plan->'steps', '[]')) s
                WHERE s->>'wait_for' = p_event)
        AND NOT EXISTS (SELECT 1 FROM facts f WHERE f.workflow_id = v_id
                        AND f.kind = 'event_received' AND f.step = p_event));
    IF (p_dedupe_key IS NULL OR NOT EXISTS (
            SELECT 1 FROM facts f WHERE f.workflow_id = v_id AND f.slot = 'event:' || p_dedupe_key))
        AND NOT (COALESCE(v_plan->>'supervisor', 'saga') = 'saga' AND v_awaited)
    THEN
        v_cap := COALESCE((v_plan->>'max_events')::INTEGER, 500);
        SELECT count(*) INTO v_held FROM facts f
        WHERE f.workflow_id = v_id AND f.kind = 'event_received';
        IF v_held >= v_cap THEN
            RAISE EXCEPTION 'steadyhand: workflow % already holds % events, its limit (max_events=%); event % was not recorded',
                v_id, v_held, v_cap, p_event
                USING HINT = 'send fewer events to one workflow, or raise max_events on its definition',
                      ERRCODE = 'program_limit_exceeded';
        END IF;
    END IF;
    SELECT COALESCE(MAX(f.seq), 0) + 1 INTO v_seq FROM facts f WHERE f.workflow_id = v_id;
    v_data := jsonb_build_object('payload', COALESCE(p_payload, 'null'::JSONB), 'source', 'sql');
    IF p_dedupe_key IS NOT NULL THEN
        v_data := v_data || jsonb_build_object('dedupe_key', p_dedupe_key);
    END IF;
    INSERT INTO facts (workflow_id, seq, kind, step, slot, data, at)
    VALUES (v_id, v_seq, 'event_received', p_event,
            CASE WHEN p_dedupe_key IS NULL THEN NULL ELSE 'event:' || p_dedupe_key END,
            v_data::TEXT, v_now)
    ON CONFLICT (workflow_id, slot) WHERE slot IS NOT NULL DO NOTHING;
    recorded := FOUND;
    IF recorded AND (v_awaited OR v_started)
            AND EXISTS (SELECT 1 FROM open_workflows o WHERE o.workflow_id = v_id) THEN
        INSERT INTO tasks AS t (workflow_id, kind, due_at, created_at)
        VALUES (v_id, 'supervise', v_now, v_now)
        ON CONFLICT (workflow_id) WHERE kind = 'supervise'
        DO UPDATE SET due_at = LEAST(t.due_at, excluded.due_at);
        PERFORM pg_notify(left('steadyhand_' || current_schema(), 63), '');
    END IF;
    workflow_id := v_id;
    started := v_started;
    RETURN NEXT;
END;
$$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION record_event(TEXT, JSONB, TEXT, TEXT, TEXT, TEXT, JSONB) '
                   'SET search_path = %I, pg_temp', current_schema());
END;
$$;
