-- The ThumbHash of a blob's picture (base64, about 33 characters): the web UI paints it as
-- a blurred placeholder while the renditions load (media/process.rs).
ALTER TABLE blobs ADD COLUMN thumbhash TEXT;
