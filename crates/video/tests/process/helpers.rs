//! Media generators and inspection helpers shared by the processing tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tempfile::TempDir;
use video::{probe, sniff, Container, Input, Probe, ProbeLimits, Rendition, Runner};

/// A generated file, sniffed and probed like an upload.
pub struct Media {
    pub path: PathBuf,
    pub container: Container,
    pub probe: Probe,
}

impl Media {
    pub async fn load(path: PathBuf) -> Media {
        let head = std::fs::read(&path).unwrap();
        let container = sniff(&head[..head.len().min(4096)]).expect("sniffable");
        let probe = probe(&path, container, &ProbeLimits::default())
            .await
            .unwrap();
        Media {
            path,
            container,
            probe,
        }
    }

    pub fn input(&self) -> Input<'_> {
        Input {
            path: &self.path,
            container: self.container,
            probe: &self.probe,
        }
    }
}

/// A runner with the fastest x264 preset, so the suite stays quick.
pub fn runner() -> Runner {
    let mut r = Runner::new(2);
    r.x264_preset = "ultrafast".into();
    r
}

/// Runs ffmpeg with `args` and returns the output path inside `dir`.
pub fn ffmpeg(dir: &TempDir, name: &str, args: &[&str]) -> PathBuf {
    let out = dir.path().join(name);
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-nostdin", "-y"])
        .args(args)
        .arg(&out)
        .status()
        .expect("ffmpeg is installed");
    assert!(status.success(), "ffmpeg failed for {name}");
    out
}

/// `secs` of `testsrc2` at `size` with a sine tone unless `codecs` says `-an`.
pub fn clip(dir: &TempDir, name: &str, size: &str, secs: u32, codecs: &[&str]) -> PathBuf {
    let src = format!("testsrc2=size={size}:rate=30");
    let secs = secs.to_string();
    let mut args = vec!["-f", "lavfi", "-i", &src, "-f", "lavfi"];
    args.extend(["-i", "sine=frequency=440:sample_rate=48000", "-t", &secs]);
    args.extend(["-pix_fmt", "yuv420p"]);
    args.extend_from_slice(codecs);
    ffmpeg(dir, name, &args)
}

pub const H264_AAC: &[&str] = &["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"];

/// ffprobe's JSON streams and format for `path` (a test-side, trusted call).
pub fn ffprobe(path: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-of",
            "json",
            "-show_streams",
            "-show_format",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffprobe failed on {}", path.display());
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn streams<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    let all = report["streams"].as_array().unwrap();
    all.iter().filter(|s| s["codec_type"] == kind).collect()
}

pub fn video_size(report: &Value) -> (u64, u64) {
    let v = streams(report, "video")[0];
    (v["width"].as_u64().unwrap(), v["height"].as_u64().unwrap())
}

/// The rendition's init segment and media segments joined into one file.
pub fn joined(r: &Rendition, dir: &TempDir) -> PathBuf {
    let mut bytes = Vec::new();
    for f in r.files.iter().filter(|f| f.as_str() != "index.m3u8") {
        bytes.extend(std::fs::read(r.dir.join(f)).unwrap());
    }
    let out = dir.path().join(format!("{}-joined.mp4", r.name));
    std::fs::write(&out, bytes).unwrap();
    out
}

/// Mean 0–255 gray level of a `w`x`h` region at (`x`,`y`) of the frame at
/// `at` seconds of `path`.
pub fn region_luma(path: &Path, at: f64, (x, y, w, h): (u32, u32, u32, u32)) -> f64 {
    let crop = format!("crop={w}:{h}:{x}:{y},format=gray");
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-nostdin"]);
    if at > 0.0 {
        // Seeking in a still image finds no frame, so only seek in clips.
        cmd.args(["-ss", &at.to_string()]);
    }
    let out = cmd
        .arg("-i")
        .arg(path)
        .args(["-vf", &crop, "-frames:v", "1", "-f", "rawvideo", "-"])
        .output()
        .unwrap();
    assert!(out.status.success() && !out.stdout.is_empty());
    out.stdout.iter().map(|&b| f64::from(b)).sum::<f64>() / out.stdout.len() as f64
}

/// Every tag (format and streams) in an ffprobe report, lowercased keys.
pub fn tag_keys(report: &Value) -> Vec<String> {
    let mut keys = Vec::new();
    let add = |keys: &mut Vec<String>, tags: &Value| {
        if let Some(t) = tags.as_object() {
            keys.extend(t.keys().map(|k| k.to_lowercase()));
        }
    };
    add(&mut keys, &report["format"]["tags"]);
    for s in report["streams"].as_array().unwrap() {
        add(&mut keys, &s["tags"]);
        for sd in s["side_data_list"].as_array().into_iter().flatten() {
            if sd
                .get("rotation")
                .and_then(Value::as_f64)
                .is_some_and(|r| r != 0.0)
            {
                keys.push("rotation".into());
            }
        }
    }
    keys
}

/// Top-level ISO BMFF box types in order.
pub fn top_level_boxes(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let (mut pos, mut out) = (0usize, Vec::new());
    while pos + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        out.push(String::from_utf8_lossy(&bytes[pos + 4..pos + 8]).into_owned());
        let size = if size == 1 {
            u64::from_be_bytes(bytes[pos + 8..pos + 16].try_into().unwrap()) as usize
        } else {
            size
        };
        if size < 8 {
            break;
        }
        pos += size;
    }
    out
}
