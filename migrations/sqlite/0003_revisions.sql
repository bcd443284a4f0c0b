-- Corrections, SQLite: see the PostgreSQL migration of the same name.
ALTER TABLE observations ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
ALTER TABLE observations ADD COLUMN source_rank INTEGER NOT NULL DEFAULT 0;
