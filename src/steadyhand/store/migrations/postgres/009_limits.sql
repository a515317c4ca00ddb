-- The limits the Python API applies, in the SQL functions too (issue 13): a JSON value
-- (workflow input, event payload) at most 1,000,000 bytes and at most 200 levels deep
-- (core/plans.py MAX_PAYLOAD_BYTES, MAX_JSON_DEPTH); at most `max_events` events per
-- workflow (its plan's, default 500) unless a saga step still waits for the event; and an
-- event nothing waits for is recorded without waking the supervisor (it spends no run).

CREATE OR REPLACE FUNCTION steadyhand_check_json(p_value JSONB, p_what TEXT)
RETURNS VOID LANGUAGE plpgsql IMMUTABLE SET search_path FROM CURRENT AS $$
BEGIN
    IF p_value IS NULL THEN
        RETURN;
    END IF;
    IF octet_length(p_value::TEXT) > 1000000 THEN
        RAISE EXCEPTION 'steadyhand: % is % bytes of JSON; the limit is 1000000', p_what,
            octet_length(p_value::TEXT)
            USING HINT = 'store large payloads elsewhere and pass a reference',
                  ERRCODE = 'program_limit_exceeded';
    END IF;
    IF jsonb_path_exists(p_value, 'strict $.**{201}') THEN
        RAISE EXCEPTION 'steadyhand: % is nested more than 200 levels deep', p_what
            USING HINT = 'flatten it', ERRCODE = 'program_limit_exceeded';
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION start_workflow(
    p_name TEXT, p_input JSONB DEFAULT 'null', p_key TEXT DEFAULT NULL
) RETURNS TEXT LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    v_id TEXT;
    v_name TEXT;
    v_plan TEXT;
    v_now DOUBLE PRECISION := extract(epoch FROM clock_timestamp());
BEGIN
    PERFORM steadyhand_check_json(p_input, 'workflow input');
    IF p_key IS NOT NULL THEN
        SELECT id, name INTO v_id, v_name FROM workflows WHERE idempotency_key = p_key;
        IF FOUND THEN
            IF v_name <> p_name THEN
                RAISE EXCEPTION 'steadyhand: key % already started workflow % (%), not a %',
                    p_key, v_id, v_name, p_name USING ERRCODE = 'unique_violation';
            END IF;
            RETURN v_id;
        END IF;
    END IF;
    SELECT plan INTO v_plan FROM workflow_definitions WHERE name = p_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'steadyhand: no workflow named % is published here', p_name
            USING HINT = 'start a worker (or a Client) whose app registers it',
                  ERRCODE = 'no_data_found';
    END IF;
    v_id := lpad(to_hex((v_now * 1000)::BIGINT), 12, '0')
        || substr(md5(random()::TEXT || clock_timestamp()::TEXT), 1, 16);
    INSERT INTO workflows (id, name, idempotency_key, input, plan, parent_id, created_at)
    VALUES (v_id, p_name, p_key, COALESCE(p_input, 'null'::JSONB)::TEXT, v_plan, NULL, v_now)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN  -- another caller won the race for this key: return its workflow
        SELECT id INTO v_id FROM workflows WHERE idempotency_key = p_key;
        RETURN v_id;
    END IF;
    INSERT INTO open_workflows (workflow_id, since) VALUES (v_id, v_now);
    INSERT INTO facts (workflow_id, seq, kind, slot, data, at)
    VALUES (v_id, 1, 'workflow_started', 'started', '{"via":"sql"}', v_now);
    INSERT INTO tasks (workflow_id, kind, due_at, created_at)
    VALUES (v_id, 'supervise', v_now, v_now)
    ON CONFLICT (workflow_id) WHERE kind = 'supervise' DO NOTHING;
    PERFORM pg_notify(left('steadyhand_' || current_schema(), 63), '');
    RETURN v_id;
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
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
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
    IF (p_workflow_id IS NULL) = (p_key IS NULL) THEN
        RAISE EXCEPTION 'steadyhand: name the workflow by exactly one of p_workflow_id or p_key'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM steadyhand_check_json(p_payload, 'event payload');
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
    -- other supervisor may read every event (core/budget.py `awaits`).
    v_awaited := COALESCE(v_plan->>'supervisor', 'saga') <> 'saga' OR (
        EXISTS (SELECT 1 FROM jsonb_array_elements(COALESCE(v_plan->'steps', '[]')) s
                WHERE s->>'wait_for' = p_event)
        AND NOT EXISTS (SELECT 1 FROM facts f WHERE f.workflow_id = v_id
                        AND f.kind = 'event_received' AND f.step = p_event));
    IF p_dedupe_key IS NULL OR NOT EXISTS (
            SELECT 1 FROM facts f WHERE f.workflow_id = v_id AND f.slot = 'event:' || p_dedupe_key)
    THEN
        v_cap := COALESCE((v_plan->>'max_events')::INTEGER, 500);
        IF NOT (COALESCE(v_plan->>'supervisor', 'saga') = 'saga' AND v_awaited) THEN
            SELECT count(*) INTO v_held FROM facts f
            WHERE f.workflow_id = v_id AND f.kind = 'event_received';
            IF v_held >= v_cap THEN
                RAISE EXCEPTION 'steadyhand: workflow % already holds % events, its limit (max_events=%); event % was not recorded',
                    v_id, v_held, v_cap, p_event
                    USING HINT = 'send fewer events to one workflow, or raise max_events on its definition',
                          ERRCODE = 'program_limit_exceeded';
            END IF;
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
