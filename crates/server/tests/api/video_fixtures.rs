//! Video and audio made in the test with ffmpeg's `testsrc2` and `sine` sources, and
//! ffprobe to check what the server made.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Runs ffmpeg with `args` (output options) writing `name` into a temp dir; returns the bytes.
fn ffmpeg(inputs: &[&str], outputs: &[&str], name: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(name);
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-v", "error", "-y"])
        .args(inputs)
        .args(outputs)
        .arg(&out)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg failed making {name}");
    std::fs::read(out).unwrap()
}

fn video_source(w: u32, h: u32, secs: u32) -> Vec<String> {
    vec![
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("testsrc2=size={w}x{h}:rate=25:duration={secs}"),
    ]
}

fn audio_source(secs: u32) -> Vec<String> {
    vec![
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("sine=frequency=440:sample_rate=48000:duration={secs}"),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// H.264 + AAC in MP4, `moov` first (faststart), with a GPS location tag.
pub fn mp4(w: u32, h: u32, secs: u32) -> Vec<u8> {
    let mut inputs = video_source(w, h, secs);
    inputs.extend(audio_source(secs));
    ffmpeg(
        &strs(&inputs),
        &[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-metadata",
            "location=+48.8584+002.2945/",
            "-movflags",
            "+faststart",
        ],
        "clip.mp4",
    )
}

/// Like [`mp4`] but with `moov` at the end (what most cameras write).
pub fn mp4_moov_last(w: u32, h: u32, secs: u32) -> Vec<u8> {
    let mut inputs = video_source(w, h, secs);
    inputs.extend(audio_source(secs));
    ffmpeg(
        &strs(&inputs),
        &[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
        ],
        "clip.mp4",
    )
}

/// H.264 without audio.
pub fn mp4_silent(w: u32, h: u32, secs: u32) -> Vec<u8> {
    ffmpeg(
        &strs(&video_source(w, h, secs)),
        &[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ],
        "silent.mp4",
    )
}

/// A phone-style portrait clip: coded landscape `w`×`h`, with a 90° display rotation
/// (set on a stream copy, which is where ffmpeg 5.1 writes it as a display matrix).
pub fn mp4_rotated(w: u32, h: u32, secs: u32) -> Vec<u8> {
    let plain = mp4(w, h, secs);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("plain.mp4");
    std::fs::write(&input, plain).unwrap();
    ffmpeg(
        &["-i", input.to_str().unwrap()],
        &["-c", "copy", "-metadata:s:v:0", "rotate=90"],
        "phone.mp4",
    )
}

/// VP9 + Opus in WebM.
pub fn webm(w: u32, h: u32, secs: u32) -> Vec<u8> {
    let mut inputs = video_source(w, h, secs);
    inputs.extend(audio_source(secs));
    ffmpeg(
        &strs(&inputs),
        &[
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-b:v",
            "300k",
            "-c:a",
            "libopus",
        ],
        "clip.webm",
    )
}

/// MP3 audio only.
pub fn mp3(secs: u32) -> Vec<u8> {
    ffmpeg(
        &strs(&audio_source(secs)),
        &["-c:a", "libmp3lame", "-b:a", "128k"],
        "tone.mp3",
    )
}

/// What ffprobe says about `bytes` (written to a temp file named `name`).
pub fn ffprobe(bytes: &[u8], name: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    ffprobe_path(&path)
}

pub fn ffprobe_path(path: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// (width, height) of the first video stream.
pub fn video_size(probe: &Value) -> (i64, i64) {
    let stream = probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == "video")
        .unwrap_or_else(|| panic!("no video stream in {probe}"));
    (
        stream["width"].as_i64().unwrap(),
        stream["height"].as_i64().unwrap(),
    )
}

pub fn codecs(probe: &Value) -> Vec<String> {
    probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The top-level box types of an ISO BMFF file, in order.
pub fn top_level_boxes(bytes: &[u8]) -> Vec<String> {
    let mut at = 0usize;
    let mut out = Vec::new();
    while at + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        out.push(String::from_utf8_lossy(&bytes[at + 4..at + 8]).into_owned());
        let size = match size {
            1 => u64::from_be_bytes(bytes[at + 8..at + 16].try_into().unwrap()) as usize,
            0 => bytes.len() - at,
            n => n,
        };
        at += size.max(8);
    }
    out
}
