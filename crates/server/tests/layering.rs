//! Keeps the domains' one direction true: kernel ← identity ← media ← {video, transform,
//! playback, uploads} ← {events, webhooks} ← social ← ui. A file of a domain may name (`crate::…`) only its own
//! domain, lower ones, the kernel and the application's shared types (`AppState`, the root
//! `Settings`, the `Domain` trait); it may not reach a higher or a sibling domain through
//! the state (`state.video`) or the settings (`settings.webhooks`) either, and its SQL
//! touches only its own tables. The kernel names no domain and nothing of the application.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each domain and its layer; siblings share a layer and may not use each other.
const LAYERS: &[(&str, u8)] = &[
    ("kernel", 0),
    ("identity", 1),
    ("media", 2),
    ("video", 3),
    ("transform", 3),
    ("playback", 3),
    ("uploads", 3),
    ("events", 4),
    ("webhooks", 4),
    ("social", 5),
    ("ui", 6),
];

/// What of the application every domain may use.
const SHARED: &[&str] = &["AppState", "settings", "domain"];

/// `AppState` fields and settings sections, by the domain that owns them.
const OWNED: &[(&str, &str)] = &[
    ("state.identity", "identity"),
    ("state.media", "media"),
    ("state.transform", "transform"),
    ("state.video", "video"),
    ("state.webhooks", "webhooks"),
    ("state.uploads", "uploads"),
    ("settings.auth", "identity"),
    ("settings.limits", "media"),
    ("settings.delivery", "media"),
    ("settings.gc", "media"),
    ("settings.transform", "transform"),
    ("settings.video", "video"),
    ("settings.playback", "playback"),
    ("settings.webhooks", "webhooks"),
    ("settings.uploads", "uploads"),
    ("settings.broker", "events"),
];

/// Tables by the domain whose SQL may touch them.
const TABLES: &[(&str, &str)] = &[
    ("events", "kernel"),
    ("event_cursors", "kernel"),
    ("nodes", "kernel"),
    ("users", "identity"),
    ("sessions", "identity"),
    ("refresh_tokens", "identity"),
    ("api_keys", "identity"),
    ("identities", "identity"),
    ("oidc_logins", "identity"),
    ("login_codes", "identity"),
    ("password_resets", "identity"),
    ("audit_log", "identity"),
    ("blobs", "media"),
    ("variants", "media"),
    ("media", "media"),
    ("transform_results", "transform"),
    ("renditions", "video"),
    ("blob_files", "video"),
    ("video_watermarks", "video"),
    ("playback_positions", "playback"),
    ("view_sessions", "playback"),
    ("webhooks", "webhooks"),
    ("webhook_deliveries", "webhooks"),
    ("webhook_attempts", "webhooks"),
    ("blob_reservations", "media"),
    ("uploads", "uploads"),
    ("direct_uploads", "uploads"),
    ("imports", "uploads"),
    ("profiles", "social"),
    ("friend_requests", "social"),
    ("friendships", "social"),
    ("follows", "social"),
    ("blocks", "social"),
    ("albums", "social"),
    ("album_members", "social"),
    ("album_items", "social"),
    ("conversations", "social"),
    ("conversation_members", "social"),
    ("messages", "social"),
    ("message_items", "social"),
    ("share_links", "social"),
    ("notifications", "social"),
    ("notification_settings", "social"),
    ("comments", "social"),
    ("likes", "social"),
    ("comments_off", "social"),
];

/// Tables the code's SQL names after FROM, JOIN, INTO, UPDATE or TABLE.
fn tables_in(code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (no, line) in code.lines().enumerate() {
        let words: Vec<&str> = line
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .collect();
        for pair in words.windows(2) {
            if ["FROM", "JOIN", "INTO", "UPDATE", "TABLE"].contains(&pair[0])
                && TABLES.iter().any(|(t, _)| *t == pair[1])
            {
                found.push((no + 1, pair[1].to_string()));
            }
        }
    }
    found
}

fn layer(domain: &str) -> Option<u8> {
    LAYERS.iter().find(|(d, _)| *d == domain).map(|(_, l)| *l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments (`//` to the end of a line), so prose is not code.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every top-level name the code reaches through `crate::`, with its line.
fn crate_paths(code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (no, line) in code.lines().enumerate() {
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `use crate::{a::x, b}`: every first segment in the group.
                let inner = group.split('}').next().unwrap_or("");
                for part in inner.split(',') {
                    let name: String = part
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        found.push((no + 1, name));
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                found.push((no + 1, name));
            }
        }
    }
    found
}

/// The domain a source file belongs to; `None` for the application's own files.
fn domain_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    let name = first.trim_end_matches(".rs").to_string();
    layer(&name).map(|_| name)
}

#[test]
fn no_domain_names_a_higher_or_sibling_domain() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in &files {
        let Some(domain) = domain_of(&src, file) else {
            continue;
        };
        let own = layer(&domain).expect("known domain");
        let code = code_of(&std::fs::read_to_string(file).expect("read file"));
        let rel = file.strip_prefix(&src).unwrap().display().to_string();
        for (line, name) in crate_paths(&code) {
            let allowed = match layer(&name) {
                Some(_) if name == domain => true,
                Some(other) => other < own,
                // The application: its shared types only, and never from the kernel.
                None => domain != "kernel" && SHARED.contains(&name.as_str()),
            };
            if !allowed {
                wrong
                    .entry(rel.clone())
                    .or_default()
                    .push(format!("line {line}: crate::{name}"));
            }
        }
        for (line, table) in tables_in(&code) {
            let owner = TABLES.iter().find(|(t, _)| *t == table).map(|(_, o)| *o);
            if owner != Some(domain.as_str()) {
                wrong
                    .entry(rel.clone())
                    .or_default()
                    .push(format!("line {line}: SQL on {table} (ask its domain)"));
            }
        }
        if code.contains("super::super::") {
            wrong
                .entry(rel.clone())
                .or_default()
                .push("super::super:: (name the domain instead)".into());
        }
        for (access, owner) in OWNED {
            let theirs = layer(owner).expect("known owner");
            let reachable = *owner == domain || theirs < own;
            for (no, text) in code.lines().enumerate() {
                let hit = text.match_indices(access).any(|(i, _)| {
                    let after = text[i + access.len()..].chars().next();
                    !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
                });
                if hit && !reachable {
                    wrong
                        .entry(rel.clone())
                        .or_default()
                        .push(format!("line {}: {access}", no + 1));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "domains reaching the wrong way:\n{}",
        wrong
            .iter()
            .map(|(file, hits)| format!("  {file}: {}", hits.join(", ")))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_scanner_sees_grouped_and_inline_paths() {
    let code = "use crate::{media::x, kernel::y};\nlet a = crate::video::z();";
    let names: Vec<String> = crate_paths(code).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["media", "kernel", "video"]);
    assert_eq!(code_of("a // crate::video"), "a ");
    let sql = "SELECT 1 FROM media m JOIN blobs b ON b.id = m.blob_id WHERE x IN (SELECT";
    let tables: Vec<String> = tables_in(sql).into_iter().map(|(_, t)| t).collect();
    assert_eq!(tables, ["media", "blobs"]);
}

/// A domain folder missing from `LAYERS` would be skipped by the scan above, so every
/// folder under `src/` must be listed, but `ops` (the application's operations: health,
/// metrics, the API document).
#[test]
fn every_domain_folder_is_listed() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut unlisted = Vec::new();
    for entry in std::fs::read_dir(&src).expect("read src") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() && name != "ops" && layer(&name).is_none() {
            unlisted.push(name);
        }
    }
    assert!(
        unlisted.is_empty(),
        "domain folders missing from LAYERS: {unlisted:?}"
    );
}
