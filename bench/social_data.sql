-- Synthetic social graph and library for bench/social.sh, set-based (no per-row round
-- trips), on the schema the server's migrations made. psql variables:
--   users      synthetic users (:users of them, usernames su00000…)
--   half       friend offsets: every synthetic user gets 2 × :half friends
--   follows    one-way follows per synthetic user (never of a friend)
--   items      media items (each with its own blob; ready ones with 6 variants)
--   readers    a quoted, comma-separated list of real users' ids ('id1','id2') who
--              each get :reader_friends friends and :reader_follows followees
--   reader_friends, reader_follows
-- Ids are UUIDv7 text as kernel::ids::new_id writes them (48-bit Unix ms, version 7,
-- variant 10xx), made from the row's time, so they sort by creation like real ones.
\set ON_ERROR_STOP on
\timing off
SET client_min_messages = warning;
-- Every id below is made to exist, so the foreign-key triggers are skipped for the load.
SET session_replication_role = replica;
SET maintenance_work_mem = '1GB';
SET work_mem = '256MB';

CREATE FUNCTION pg_temp.uuid7(ms bigint, h text) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT substr(lpad(to_hex(ms), 12, '0'), 1, 8) || '-' || substr(lpad(to_hex(ms), 12, '0'), 9, 4)
       || '-7' || substr(h, 1, 3) || '-' || substr('89ab', 1 + ascii(substr(h, 4, 1)) % 4, 1)
       || substr(h, 5, 3) || '-' || substr(h, 8, 12) $$;

CREATE TEMP TABLE clock AS SELECT (extract(epoch FROM now()) * 1000)::bigint AS now_ms;

-- Synthetic users, one a minute, ending two years ago.
CREATE TEMP TABLE su AS
SELECT i, pg_temp.uuid7(ms, md5('user' || i)) AS id, ms
FROM (SELECT i, c.now_ms - 730 * 86400000::bigint - (:users - i) * 60000::bigint AS ms
      FROM generate_series(0, :users - 1) i, clock c) x;
CREATE UNIQUE INDEX ON su (i);
ANALYZE su;
INSERT INTO users (id, username, password_hash, created_at)
SELECT id, 'su' || lpad(i::text, 5, '0'), '!', ms FROM su;

-- Friendships: a circulant graph. User a is friends with a ± d (mod :users) for each of
-- :half distinct pseudo-random offsets d in [1, :users/2), so every synthetic user has
-- exactly 2 × :half friends and each friendship is two rows (a→b, b→a).
CREATE TEMP TABLE offs AS
SELECT o FROM (SELECT DISTINCT 1 + (hashtext('d' || k) & 2147483647) % (:users / 2 - 1) AS o
               FROM generate_series(1, :half * 4) k) x
ORDER BY hashtext('o' || o) LIMIT :half;
-- Follow offsets: the ones no friendship uses.
CREATE TEMP TABLE foffs AS
SELECT k AS o FROM generate_series(1, :users / 2 - 1) k
WHERE k NOT IN (SELECT o FROM offs) ORDER BY hashtext('e' || k) LIMIT :follows;

ALTER TABLE friendships DROP CONSTRAINT friendships_pkey;
INSERT INTO friendships (user_id, friend_id, created_at)
SELECT a.id, b.id, greatest(a.ms, b.ms) + 86400000
FROM su a CROSS JOIN offs d CROSS JOIN (VALUES (1), (-1)) s(sign)
JOIN su b ON b.i = ((a.i + s.sign * d.o) % :users + :users) % :users;
ALTER TABLE follows DROP CONSTRAINT follows_pkey;
DROP INDEX follows_followee;
INSERT INTO follows (follower_id, followee_id, created_at)
SELECT a.id, b.id, greatest(a.ms, b.ms) + 86400000
FROM su a CROSS JOIN foffs e JOIN su b ON b.i = (a.i + e.o) % :users;

-- The real readers: friends with every (users / reader_friends)-th synthetic user, and
-- following others that are not their friends.
INSERT INTO friendships (user_id, friend_id, created_at)
SELECT r, s.id, s.ms + 1 FROM unnest(ARRAY[:readers]) r, su s
WHERE s.i % (:users / :reader_friends) = 0 AND s.i / (:users / :reader_friends) < :reader_friends
UNION ALL
SELECT s.id, r, s.ms + 1 FROM unnest(ARRAY[:readers]) r, su s
WHERE s.i % (:users / :reader_friends) = 0 AND s.i / (:users / :reader_friends) < :reader_friends;
INSERT INTO follows (follower_id, followee_id, created_at)
SELECT r, s.id, s.ms + 1 FROM unnest(ARRAY[:readers]) r, su s
WHERE s.i % (:users / :reader_friends) = 1 AND s.i / (:users / :reader_friends) < :reader_follows;

ALTER TABLE friendships ADD CONSTRAINT friendships_pkey PRIMARY KEY (user_id, friend_id);
ALTER TABLE follows ADD CONSTRAINT follows_pkey PRIMARY KEY (follower_id, followee_id);
CREATE INDEX follows_followee ON follows (followee_id, follower_id);

-- Items: evenly spread over the last 365 days, owned by uniformly pseudo-random
-- synthetic users; 45 % public, 25 % friends, 20 % private, 10 % unlisted; 97 % ready,
-- 2 % failed, 1 % still processing.
CREATE TEMP TABLE si AS
SELECT i, ms, pg_temp.uuid7(ms, md5('m' || i)) AS id, pg_temp.uuid7(ms, md5('b' || i)) AS blob_id,
       md5('s' || i) || md5('t' || i) AS sha256,
       (h & 2147483647) % :users AS owner_i,
       CASE WHEN (h >> 8 & 2147483647) % 100 < 45 THEN 'public' WHEN (h >> 8 & 2147483647) % 100 < 70 THEN 'friends'
            WHEN (h >> 8 & 2147483647) % 100 < 90 THEN 'private' ELSE 'unlisted' END AS visibility,
       CASE WHEN (h >> 16 & 2147483647) % 100 < 2 THEN 'failed' WHEN (h >> 16 & 2147483647) % 100 < 3 THEN 'processing'
            ELSE 'ready' END AS status,
       (h >> 4 & 65535) AS noise
FROM (SELECT i, c.now_ms - 365 * 86400000::bigint + i * (365 * 86400000::bigint / :items) AS ms,
             hashtext('i' || i) AS h
      FROM generate_series(0, :items - 1) i, clock c) x;

INSERT INTO blobs (id, sha256, size, format, width, height, frames, status, error, created_at,
                   processed_at, kind, thumbhash)
SELECT blob_id, sha256, 200000 + noise * 40, 'jpeg', 4032, 3024, 1, status,
       CASE WHEN status = 'failed' THEN 'corrupt image' END, ms,
       CASE WHEN status <> 'processing' THEN ms + 1500 END, 'image',
       CASE WHEN status = 'ready' THEN 'HBkSHYSIeHiPiHh8eJd4eTN0EEQG' END
FROM si ORDER BY i;

INSERT INTO media (id, owner_id, blob_id, title, description, tags, visibility, deduplicated,
                   job_id, created_at, updated_at, views)
SELECT si.id, su.id, si.blob_id, CASE WHEN noise % 3 = 0 THEN 'photo ' || si.i END, NULL,
       CASE WHEN noise % 5 = 0 THEN '["holiday"]' ELSE '[]' END, si.visibility, 0, NULL,
       si.ms, si.ms, noise % 50
FROM si JOIN su ON su.i = si.owner_i ORDER BY si.i;

-- The six variants the image kind makes (thumb, small, large × WebP, JPEG).
INSERT INTO variants (blob_id, preset, format, width, height, size, etag)
SELECT si.blob_id, p.preset, f.format, p.w, p.h, p.bytes + si.noise % 1000,
       substr(si.sha256, 1, 16) || substr(md5(p.preset || f.format), 1, 4)
FROM si CROSS JOIN (VALUES ('large', 1920, 1440, 240000), ('small', 640, 480, 42000),
                           ('thumb', 256, 256, 9000)) p(preset, w, h, bytes)
        CROSS JOIN (VALUES ('jpg'), ('webp')) f(format)
WHERE si.status = 'ready' ORDER BY si.i, p.preset, f.format;

UPDATE users u SET item_count = c.n, used_bytes = c.bytes
FROM (SELECT m.owner_id, count(*) AS n, sum(b.size) AS bytes
      FROM media m JOIN blobs b ON b.id = m.blob_id GROUP BY m.owner_id) c
WHERE u.id = c.owner_id;

RESET session_replication_role;

-- The reference: the same rows in tables that have their primary keys and nothing else
-- (no media_owner_id, media_blob_id, blobs_sha256_key, follows_followee). friendships
-- has only its primary key already, so the reference reads it through a view.
CREATE SCHEMA ref;
CREATE TABLE ref.media AS SELECT * FROM media;
ALTER TABLE ref.media ADD PRIMARY KEY (id);
CREATE TABLE ref.blobs AS SELECT * FROM blobs;
ALTER TABLE ref.blobs ADD PRIMARY KEY (id);
CREATE TABLE ref.follows AS SELECT * FROM follows;
ALTER TABLE ref.follows ADD PRIMARY KEY (follower_id, followee_id);
CREATE VIEW ref.friendships AS SELECT * FROM friendships;
