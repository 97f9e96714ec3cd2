//! Sets the test gates (`skip_postgres`, …: see `build/test_gates.rs`) and builds the web
//! UI's asset table: every file of `ui/static/` and the browser libraries named in
//! `VENDORED` (from `ui/package.json`'s npm install), each fingerprinted by its content
//! and compressed with brotli and gzip once here, so the binary serves them with
//! `immutable` caching and no work per request.
//!
//! Our own step rather than `rust-embed`: that crate embeds one folder as it is, while the
//! table needs files from `node_modules` outside the work tree, content-hashed names and
//! pre-compressed bodies; the whole job is the ~100 lines below.

include!("../../build/test_gates.rs");

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// `(name served, path under node_modules)`: the prebuilt files of the npm packages
/// pinned by `ui/package-lock.json`.
const VENDORED: &[(&str, &str)] = &[
    ("tus.min.js", "tus-js-client/dist/tus.min.js"),
    ("hls.light.min.js", "hls.js/dist/hls.light.min.js"),
    ("thumbhash.js", "thumbhash/thumbhash.js"),
];

fn main() {
    emit_test_gates();
    build_assets();
}

fn node_modules() -> PathBuf {
    println!("cargo::rerun-if-env-changed=FRAMEHOUSE_UI_NODE_MODULES");
    println!("cargo::rerun-if-env-changed=FRAMEHOUSE_NODE_CACHE");
    if let Ok(dir) = std::env::var("FRAMEHOUSE_UI_NODE_MODULES") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var("FRAMEHOUSE_NODE_CACHE").unwrap_or_else(|_| {
        format!(
            "{}/.cache/framehouse-node",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    Path::new(&cache).join("ui/node_modules")
}

fn build_assets() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("assets");
    std::fs::create_dir_all(&out).unwrap();
    let static_dir = manifest.join("ui/static");
    println!("cargo::rerun-if-changed={}", static_dir.display());
    println!("cargo::rerun-if-changed=ui/package-lock.json");
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(&static_dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", static_dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    let modules = node_modules();
    for (name, rel) in VENDORED {
        let path = modules.join(rel);
        if !path.is_file() {
            panic!(
                "{} is missing: the web UI ships it from npm. Run `scripts/install-deps.sh run` \
                 (it runs `npm ci` for crates/server/ui into {}), or point \
                 FRAMEHOUSE_UI_NODE_MODULES at a node_modules installed from \
                 crates/server/ui/package-lock.json",
                path.display(),
                modules.display()
            );
        }
        println!("cargo::rerun-if-changed={}", path.display());
        files.push((name.to_string(), path));
    }
    files.sort();
    // Brotli's best setting costs seconds per large file in an unoptimised build
    // script; debug builds take a faster one.
    let quality = if std::env::var("PROFILE").as_deref() == Ok("release") {
        11
    } else {
        5
    };
    let mut table = String::from("pub static ASSETS: &[Asset] = &[\n");
    for (name, path) in files {
        let raw = std::fs::read(&path).unwrap();
        let hash = fingerprint(&raw);
        let (stem, ext) = name.rsplit_once('.').expect("assets have an extension");
        let served = format!("{stem}.{hash}.{ext}");
        std::fs::write(out.join(&served), &raw).unwrap();
        std::fs::write(out.join(format!("{served}.gz")), gzip(&raw)).unwrap();
        std::fs::write(out.join(format!("{served}.br")), brotli(&raw, quality)).unwrap();
        let at = |suffix: &str| out.join(format!("{served}{suffix}")).display().to_string();
        writeln!(
            table,
            "    Asset {{ name: {name:?}, served: {served:?}, mime: {mime:?}, \
             raw: include_bytes!({raw:?}), gzip: include_bytes!({gz:?}), \
             br: include_bytes!({br:?}) }},",
            mime = mime(ext),
            raw = at(""),
            gz = at(".gz"),
            br = at(".br"),
        )
        .unwrap();
    }
    table.push_str("];\n");
    std::fs::write(out.join("table.rs"), table).unwrap();
}

/// The first 10 hex digits of the SHA-256: enough that two versions never share a name.
fn fingerprint(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    digest[..5].iter().map(|b| format!("{b:02x}")).collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn brotli(bytes: &[u8], quality: i32) -> Vec<u8> {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality,
        lgwin: 22,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &bytes[..], &mut out, &params).unwrap();
    out
}

fn mime(ext: &str) -> &'static str {
    match ext {
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        other => panic!("no content type for .{other} assets"),
    }
}
