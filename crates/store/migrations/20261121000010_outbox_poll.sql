-- NOTIFY takes a global lock at commit, serialising every committing transaction that
-- wrote the outbox: it halved webhook ingest (BENCHMARKS.md). The relay polls the partial
-- index of unpublished rows instead.
DROP TRIGGER IF EXISTS outbox_notify ON outbox;
DROP FUNCTION IF EXISTS outbox_notify();
