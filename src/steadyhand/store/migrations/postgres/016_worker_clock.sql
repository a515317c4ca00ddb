-- steadyhand schema, version 16: each worker's measured offset from the store's clock
-- (seconds, + when the machine's wall clock is ahead), shown in the dashboard's workers panel.

ALTER TABLE workers ADD COLUMN clock_offset DOUBLE PRECISION;
