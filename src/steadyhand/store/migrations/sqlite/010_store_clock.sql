-- steadyhand schema, version 10: the store's clock on SQLite. Every process on the host reads
-- the kernel's boot clock (never stepped); the wall time of the boot is recorded here once
-- per boot, by the first process that needs it, so all processes turn the boot clock into
-- the same epoch time whatever their own wall clocks say (see store/clock.py).

CREATE TABLE IF NOT EXISTS store_clock (
    boot_id TEXT PRIMARY KEY,
    epoch_at_boot REAL NOT NULL
);
