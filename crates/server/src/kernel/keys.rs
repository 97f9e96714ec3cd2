//! The object-key layout, in one place. Objects are keyed by blob id (never by hash, so a
//! blob re-created after garbage collection cannot share keys with the one being
//! removed); everything made from a blob lives under its `derivatives/{blob}/` folder, so
//! removing that prefix removes all of it.

/// The uploaded bytes of a blob.
pub fn original(blob_id: &str) -> String {
    format!("originals/{blob_id}")
}

/// The folder of everything derived from a blob.
pub fn derivatives(blob_id: &str) -> String {
    format!("derivatives/{blob_id}")
}

/// A fixed image preset (`thumb.webp`) or proxy of a blob.
pub fn variant(blob_id: &str, preset: &str, ext: &str) -> String {
    format!("derivatives/{blob_id}/{preset}.{ext}")
}

/// A stored on-the-fly transform result, named by the digest of what made it.
pub fn transform_result(blob_id: &str, digest: &str, ext: &str) -> String {
    format!("derivatives/{blob_id}/t/{digest}.{ext}")
}

/// The folder of one run's HLS rendition (unique per run, so a crashed run's objects are
/// never confused with the published ones).
pub fn rendition(blob_id: &str, name: &str, run: &str) -> String {
    format!("derivatives/{blob_id}/hls/{name}-{run}")
}

/// A published file of a video or audio blob (storyboard, MP4, extracted audio).
pub fn blob_file(blob_id: &str, run: &str, name: &str) -> String {
    format!("derivatives/{blob_id}/files/{run}-{name}")
}

/// The blob a key belongs to, for sweeps over `originals/` and `derivatives/`.
pub fn blob_of(key: &str) -> Option<&str> {
    let rest = key
        .strip_prefix("originals/")
        .or_else(|| key.strip_prefix("derivatives/"))?;
    rest.split('/').next().filter(|b| !b.is_empty())
}

/// The media type an object's key implies, for stores that record one with the object
/// (originals carry no extension: their callers pass the sniffed type).
pub fn content_type(key: &str) -> &'static str {
    let name = key.rsplit('/').next().unwrap_or(key);
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("webp") => "image/webp",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("avif") => "image/avif",
        Some("gif") => "image/gif",
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("m4s") => "video/iso.segment",
        Some("mp4") => "video/mp4",
        Some("ts") => "video/mp2t",
        Some("m4a") => "audio/mp4",
        Some("mp3") => "audio/mpeg",
        Some("opus") => "audio/ogg",
        Some("vtt") => "text/vtt",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_names_its_blob() {
        for key in [
            original("b1"),
            variant("b1", "thumb", "webp"),
            transform_result("b1", "abc", "jpg"),
            rendition("b1", "360p", "r1") + "/index.m3u8",
            blob_file("b1", "r1", "video.mp4"),
        ] {
            assert_eq!(blob_of(&key), Some("b1"), "{key}");
        }
        assert_eq!(blob_of("tmp/x"), None);
    }
}
