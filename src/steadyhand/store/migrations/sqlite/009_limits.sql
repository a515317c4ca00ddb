-- Issue 13's limits live in the SQL functions of the PostgreSQL store (its migration 009);
-- SQLite has no such functions, so this version changes nothing here.
SELECT 1;
