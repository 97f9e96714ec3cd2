//! `framehouse upload PATH…`: files and whole folders (what is not media by its first
//! bytes is skipped), by tus in chunks, `--jobs` at once, with a bar per file and one in
//! all. A state file keyed by server, path, size and mtime remembers each upload's URL,
//! so the next run with the same arguments resumes where this one stopped; files whose
//! SHA-256 the server already has for this user are skipped.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::api::{Api, Failure};
use crate::tus::{self, Stored};

#[derive(clap::Args)]
pub struct UploadArgs {
    /// Files and folders (folders recursively).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// private, unlisted or public.
    #[arg(long)]
    pub visibility: Option<String>,
    /// The items' title (default: each file's name).
    #[arg(long)]
    pub title: Option<String>,
    /// Comma-separated tags.
    #[arg(long)]
    pub tags: Option<String>,
    /// Files uploaded at once.
    #[arg(long, short = 'j', default_value_t = 4)]
    pub jobs: usize,
    /// MiB per request.
    #[arg(long, default_value_t = 8)]
    pub chunk_mib: usize,
    /// Wait until each item is processed (ready or failed).
    #[arg(long)]
    pub wait: bool,
    /// Print one JSON document with every file's outcome.
    #[arg(long)]
    pub json: bool,
}

/// One file to upload.
struct File {
    path: PathBuf,
    size: u64,
    key: String,
    sha256: String,
}

/// Where each file's upload stands between runs.
#[derive(Default, Serialize, Deserialize)]
struct State {
    #[serde(default)]
    uploads: BTreeMap<String, Entry>,
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct Entry {
    url: Option<String>,
    media_id: Option<String>,
}

struct StateFile {
    path: PathBuf,
    state: Mutex<State>,
}

impl StateFile {
    fn open() -> StateFile {
        let dir = dirs::state_dir()
            .or_else(dirs::data_local_dir)
            .unwrap_or_else(std::env::temp_dir);
        let path = dir.join("framehouse").join("uploads.json");
        let state = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        StateFile {
            path,
            state: Mutex::new(state),
        }
    }

    fn get(&self, key: &str) -> Entry {
        let state = self.state.lock().expect("not poisoned");
        state.uploads.get(key).cloned().unwrap_or_default()
    }

    fn set(&self, key: &str, entry: Entry) {
        let mut state = self.state.lock().expect("not poisoned");
        state.uploads.insert(key.to_string(), entry);
        // Written whole, then renamed: a Ctrl-C never leaves half a file.
        let tmp = self.path.with_extension("tmp");
        let written = std::fs::create_dir_all(self.path.parent().expect("a folder"))
            .and_then(|()| std::fs::write(&tmp, serde_json::to_vec(&*state).expect("serialises")))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            eprintln!("warning: cannot save {}: {e}", self.path.display());
        }
    }
}

/// Whether the first bytes are an image, video or audio format the server may take.
fn is_media(head: &[u8]) -> bool {
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    at(0, b"\xff\xd8\xff")
        || at(0, b"\x89PNG")
        || at(0, b"GIF8")
        || (at(0, b"RIFF") && (at(8, b"WEBP") || at(8, b"AVI ") || at(8, b"WAVE")))
        || at(0, b"II*\0")
        || at(0, b"MM\0*")
        || at(0, b"BM")
        || at(4, b"ftyp")
        || at(0, b"\x1a\x45\xdf\xa3")
        || at(0, b"ID3")
        || at(0, b"fLaC")
        || at(0, b"OggS")
        || (head.len() > 1 && head[0] == 0xff && head[1] & 0xe0 == 0xe0)
}

fn mime_of(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp4" | "m4v" => "video/mp4",
        "mov" => "video/quicktime",
        "webm" => "video/webm",
        "mkv" => "video/x-matroska",
        "mp3" => "audio/mpeg",
        _ => "application/octet-stream",
    }
}

/// The media files under `paths`, in a stable order, with their digest.
fn collect(server: &str, paths: &[PathBuf]) -> Result<(Vec<File>, Vec<Value>), Failure> {
    fn walk(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for entry in entries {
                walk(&entry, out)?;
            }
        } else {
            out.push(path.to_path_buf());
        }
        Ok(())
    }
    let mut found = Vec::new();
    for path in paths {
        if !path.exists() {
            return Err(Failure::new(
                "not_found",
                format!("{}: no such file or folder", path.display()),
            ));
        }
        walk(path, &mut found)
            .map_err(|e| Failure::new("io", format!("{}: {e}", path.display())))?;
    }
    let (mut files, mut skipped) = (Vec::new(), Vec::new());
    for path in found {
        let io = |e: std::io::Error| Failure::new("io", format!("{}: {e}", path.display()));
        let mut handle = std::fs::File::open(&path).map_err(io)?;
        let meta = handle.metadata().map_err(io)?;
        let mut head = [0u8; 16];
        let n = handle.read(&mut head).map_err(io)?;
        if !is_media(&head[..n]) {
            skipped.push(json!({"path": path, "reason": "not_media"}));
            continue;
        }
        let mut hasher = Sha256::new();
        hasher.update(&head[..n]);
        std::io::copy(&mut handle, &mut hasher).map_err(io)?;
        let canonical = path.canonicalize().map_err(io)?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let sha256 = hex::encode(hasher.finalize());
        files.push(File {
            // With the digest: another file of the same size and mtime (`cp -p`) must not
            // resume into this one's upload.
            key: format!(
                "{server}|{}|{}|{mtime}|{sha256}",
                canonical.display(),
                meta.len()
            ),
            path,
            size: meta.len(),
            sha256,
        });
    }
    Ok((files, skipped))
}

/// The items the server already has for these digests.
async fn known(api: &Api, files: &[File]) -> Result<BTreeMap<String, String>, Failure> {
    let mut found = BTreeMap::new();
    for batch in files.chunks(1000) {
        let digests: Vec<&str> = batch.iter().map(|f| f.sha256.as_str()).collect();
        let answer = api
            .json(
                Method::POST,
                "/api/v1/media/lookup",
                Some(&json!({ "sha256": digests })),
            )
            .await?;
        if let Some(items) = answer["items"].as_object() {
            for (sha, id) in items {
                found.insert(sha.clone(), id.as_str().unwrap_or_default().to_string());
            }
        }
    }
    Ok(found)
}

/// Runs the command; whether every file made it.
pub async fn run(api: &Api, args: &UploadArgs) -> Result<bool, Failure> {
    let (files, mut skipped) = collect(&api.base, &args.paths)?;
    let state = StateFile::open();
    let known = known(api, &files).await?;
    let mut todo = Vec::new();
    for file in files {
        // The server decides: an item deleted since is uploaded again.
        if let Some(id) = known.get(&file.sha256).cloned() {
            skipped.push(json!({"path": file.path, "reason": "already_uploaded", "media_id": id}));
        } else {
            todo.push(file);
        }
    }
    let interactive = std::io::stdout().is_terminal() && !args.json;
    let bars = MultiProgress::with_draw_target(if interactive {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let total = bars.add(ProgressBar::new(todo.iter().map(|f| f.size).sum()));
    total.set_style(
        ProgressStyle::with_template(
            "{prefix:>8} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    total.set_prefix("total");
    let started = Instant::now();
    // Without a terminal (a log, CI), progress comes as a line every two seconds.
    let lines = !interactive && !args.json;
    let ticker = lines.then(|| {
        let total = total.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(2));
            every.tick().await;
            loop {
                every.tick().await;
                eprintln!("{}", progress_line(&total));
            }
        })
    });
    let results: Vec<Result<Value, Value>> = futures::stream::iter(todo.iter())
        .map(|file| one(api, args, &state, &bars, &total, file, interactive))
        .buffer_unordered(args.jobs.max(1))
        .collect()
        .await;
    if let Some(ticker) = ticker {
        ticker.abort();
        eprintln!("{}", progress_line(&total));
    }
    total.finish();
    let (mut uploaded, mut failed) = (Vec::new(), Vec::new());
    for result in results {
        match result {
            Ok(v) => uploaded.push(v),
            Err(v) => failed.push(v),
        }
    }
    let sent: u64 = uploaded.iter().filter_map(|u| u["bytes"].as_u64()).sum();
    if args.json {
        let report = json!({
            "uploaded": uploaded, "skipped": skipped, "failed": failed,
            "bytes": sent, "seconds": started.elapsed().as_secs_f64(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("serialises")
        );
    } else {
        println!(
            "{} uploaded, {} skipped, {} failed ({} bytes in {:.1} s)",
            uploaded.len(),
            skipped.len(),
            failed.len(),
            sent,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(failed.is_empty())
}

fn progress_line(total: &ProgressBar) -> String {
    let (at, of) = (total.position(), total.length().unwrap_or(0));
    let pct = (at * 100).checked_div(of).unwrap_or(100);
    format!("progress {pct}% ({at} of {of} bytes)")
}

/// Uploads one file (resuming a known upload); its report line as JSON.
async fn one(
    api: &Api,
    args: &UploadArgs,
    state: &StateFile,
    bars: &MultiProgress,
    total: &ProgressBar,
    file: &File,
    interactive: bool,
) -> Result<Value, Value> {
    let bar = bars.insert_from_back(1, ProgressBar::new(file.size));
    bar.set_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:30}] {bytes}/{total_bytes} {wide_msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let name = file
        .path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    bar.set_message(name.clone());
    let done = upload_file(api, args, state, file, &bar, total).await;
    bar.finish_and_clear();
    bars.remove(&bar);
    let processed = match (&done, args.wait) {
        (Ok(media), true) => wait(api, media).await.map(Some),
        (Ok(_), false) => Ok(None),
        (Err(e), _) => Err(e.clone()),
    };
    match (done, processed) {
        (Ok(media), Ok(status)) => {
            if !interactive && !args.json {
                println!("{} -> {media}", file.path.display());
            }
            let failed = status.as_deref() == Some("failed");
            let line =
                json!({"path": file.path, "media_id": media, "bytes": file.size, "status": status});
            if failed {
                return Err(json!({"path": file.path, "media_id": media,
                    "error": {"code": "processing_failed", "message": "the server could not process it"}}));
            }
            Ok(line)
        }
        (_, Err(e)) | (Err(e), _) => {
            eprintln!("{}: {e}", file.path.display());
            Err(json!({"path": file.path, "error": e}))
        }
    }
}

async fn upload_file(
    api: &Api,
    args: &UploadArgs,
    state: &StateFile,
    file: &File,
    bar: &ProgressBar,
    total: &ProgressBar,
) -> Result<String, Failure> {
    let mut entry = state.get(&file.key);
    let mut offset = 0;
    if let Some(url) = entry.url.clone() {
        match tus::stored(api, &url).await? {
            Stored::At(_, Some(media)) => {
                entry.media_id = Some(media.clone());
                state.set(&file.key, entry);
                total.inc(file.size);
                return Ok(media);
            }
            Stored::At(at, None) => offset = at,
            Stored::Gone => entry.url = None,
        }
    }
    let url = match entry.url.clone() {
        Some(url) => url,
        None => {
            let name = file
                .path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let mut pairs = vec![
                ("filename", name.as_str()),
                ("filetype", mime_of(&file.path)),
            ];
            for (key, value) in [
                ("title", &args.title),
                ("visibility", &args.visibility),
                ("tags", &args.tags),
            ] {
                if let Some(v) = value {
                    pairs.push((key, v.as_str()));
                }
            }
            let url = tus::create(api, file.size, &tus::metadata(&pairs)).await?;
            entry.url = Some(url.clone());
            state.set(&file.key, entry.clone());
            url
        }
    };
    bar.set_position(offset);
    total.inc(offset);
    let shown = Arc::new(Mutex::new(offset));
    let progress = |at: u64| {
        let mut last = shown.lock().expect("not poisoned");
        if at >= *last {
            total.inc(at - *last);
        } else {
            total.set_position(total.position().saturating_sub(*last - at));
        }
        *last = at;
        bar.set_position(at);
    };
    let chunk = args.chunk_mib.max(1) << 20;
    let media = tus::send(api, &url, &file.path, offset, file.size, chunk, &progress).await?;
    entry.media_id = Some(media.clone());
    state.set(&file.key, entry);
    Ok(media)
}

/// Waits until the item is processed; its final status.
async fn wait(api: &Api, media: &str) -> Result<String, Failure> {
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let item = match api
            .json(Method::GET, &format!("/api/v1/media/{media}"), None)
            .await
        {
            Ok(item) => item,
            // The server may be restarting: keep asking until the deadline.
            Err(e) if e.code == "network" && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let status = item["status"].as_str().unwrap_or_default().to_string();
        if status != "processing" {
            return Ok(status);
        }
        if Instant::now() > deadline {
            return Err(Failure::new("timeout", "still processing after an hour"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
