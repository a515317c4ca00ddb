-- steadyhand schema, version 6 (PostgreSQL): the SQL functions apply the input limits of
-- the Python API (core/limits.py; a test keeps the numbers equal), and run as SECURITY
-- DEFINER with a pinned search_path, so a role allowed nothing but EXECUTE on
-- record_event can record events (docs/SECURITY.md, "an events-only role").

CREATE OR REPLACE FUNCTION steadyhand_check_name(p_value TEXT, p_what TEXT)
RETURNS VOID LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_value IS NULL OR p_value = '' OR length(p_value) > 200 THEN
        RAISE EXCEPTION 'steadyhand: % must be a non-empty string of at most 200 characters',
            p_what USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_value ~ '[[:space:][:cntrl:]/:]' THEN
        RAISE EXCEPTION 'steadyhand: % must not contain spaces, control characters, / or :',
            p_what USING ERRCODE = 'invalid_parameter_value';
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION steadyhand_check_key(p_value TEXT, p_what TEXT, p_limit INTEGER)
RETURNS VOID LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_value IS NOT NULL AND length(p_value) > p_limit THEN
        RAISE EXCEPTION 'steadyhand: % is % characters; the limit is %',
            p_what, length(p_value), p_limit USING ERRCODE = 'invalid_parameter_value';
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION steadyhand_check_json(p_value JSONB, p_what TEXT)
RETURNS VOID LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_value IS NOT NULL AND octet_length(p_value::TEXT) > 1000000 THEN
        RAISE EXCEPTION 'steadyhand: % is over 1000000 bytes of JSON; store it elsewhere and '
            'pass a reference', p_what USING ERRCODE = 'program_limit_exceeded';
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION start_workflow(
    p_name TEXT, p_input JSONB DEFAULT 'null', p_key TEXT DEFAULT NULL
) RETURNS TEXT LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    v_id TEXT;
    v_name TEXT;
    v_plan TEXT;
    v_now DOUBLE PRECISION := extract(epoch FROM clock_timestamp());
BEGIN
    PERFORM steadyhand_check_name(p_name, 'workflow name');
    PERFORM steadyhand_check_key(p_key, 'idempotency key', 500);
    IF p_key = '' THEN
        RAISE EXCEPTION 'steadyhand: idempotency key must not be empty'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
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
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
#variable_conflict use_column
DECLARE
    v_id TEXT := p_workflow_id;
    v_started BOOLEAN := FALSE;
    v_seq INTEGER;
    v_now DOUBLE PRECISION := extract(epoch FROM clock_timestamp());
    v_data JSONB;
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
    PERFORM 1 FROM workflows w WHERE w.id = v_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'steadyhand: no workflow %', v_id USING ERRCODE = 'no_data_found';
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
    IF recorded AND EXISTS (SELECT 1 FROM open_workflows o WHERE o.workflow_id = v_id) THEN
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

-- SECURITY DEFINER functions must not find objects in schemas a caller controls: pin the
-- search path to this schema, then pg_temp (searched first unless named last).
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION start_workflow(TEXT, JSONB, TEXT) '
                   'SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION record_event(TEXT, JSONB, TEXT, TEXT, TEXT, TEXT, JSONB) '
                   'SET search_path = %I, pg_temp', current_schema());
END;
$$;

-- Running as the owner, the functions are granted by name, never to everyone.
REVOKE EXECUTE ON FUNCTION start_workflow(TEXT, JSONB, TEXT) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION record_event(TEXT, JSONB, TEXT, TEXT, TEXT, TEXT, JSONB) FROM PUBLIC;
