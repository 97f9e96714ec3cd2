-- Wake idle workers on every node when work appears, instead of at their next poll: a job
-- inserted, or one made runnable again (retried by hand, released by a node shutting
-- down). PostgreSQL folds identical notifications of one transaction into one, and
-- delivers them only when it commits. Retries with backoff (run_at in the future) are
-- still found by polling.
CREATE FUNCTION framehouse_jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('framehouse_jobs', '');
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_notify_insert AFTER INSERT ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION framehouse_jobs_notify();

CREATE TRIGGER jobs_notify_requeue AFTER UPDATE OF state ON jobs
    FOR EACH ROW WHEN (NEW.state = 'queued' AND OLD.state <> 'queued')
    EXECUTE FUNCTION framehouse_jobs_notify();
