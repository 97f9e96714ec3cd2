-- PostgreSQL's 0007 adds NOTIFY triggers that wake workers on other nodes. SQLite runs on
-- one node, where enqueueing wakes the local workers directly: nothing to add, but the
-- version numbers of both backends stay in step.
SELECT 1;
