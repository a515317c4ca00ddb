-- steadyhand schema, version 2: an index for reports over a recent window (stats, dashboard,
-- /metrics): call outcomes, supervisor runs and compensations by kind and time, so counting
-- the last hour costs what happened in that hour, never the size of the history.

CREATE INDEX IF NOT EXISTS facts_activity ON facts (kind, at, step, attempt)
    WHERE kind IN (
        'attempt_succeeded', 'attempt_failed', 'attempt_timed_out', 'attempt_lost',
        'attempt_uncertain', 'compensation_succeeded', 'compensation_failed',
        'compensation_timed_out', 'compensation_lost', 'compensation_uncertain',
        'probe_succeeded', 'probe_failed', 'probe_timed_out', 'probe_lost', 'probe_uncertain',
        'supervisor_ran', 'compensation_began'
    );
