//! End-to-end tests of sniffing and probing against the real Debian ffmpeg:
//! media is generated per test with `testsrc2` + `sine`, and hostile inputs
//! check that nothing outside the upload is ever read.

use std::io::{ErrorKind, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;
use video::{probe, sniff, Container, ProbeLimits, VideoError};

/// Runs ffmpeg with `args` and returns the output path inside `dir`.
fn ffmpeg(dir: &TempDir, name: &str, args: &[&str]) -> PathBuf {
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

/// One second of 160x96 test pattern plus a sine tone, encoded with `codecs`.
fn clip(dir: &TempDir, name: &str, codecs: &[&str]) -> PathBuf {
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x96:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        "1",
    ];
    args.extend_from_slice(codecs);
    ffmpeg(dir, name, &args)
}

fn tone(dir: &TempDir, name: &str, codec: &[&str]) -> PathBuf {
    let mut args = vec!["-f", "lavfi", "-i", "sine=sample_rate=44100", "-t", "1"];
    args.extend_from_slice(codec);
    ffmpeg(dir, name, &args)
}

/// Sniffs the file the way the upload path will: from its first 4 KiB.
fn sniff_file(path: &Path) -> Option<Container> {
    let bytes = std::fs::read(path).unwrap();
    sniff(&bytes[..bytes.len().min(4096)])
}

async fn probe_file(path: &Path) -> Result<video::Probe, VideoError> {
    let container = sniff_file(path).ok_or(VideoError::Unsupported)?;
    probe(path, container, &ProbeLimits::default()).await
}

#[tokio::test]
async fn h264_aac_mp4_reports_dimensions_codecs_and_duration() {
    let dir = TempDir::new().unwrap();
    let path = clip(&dir, "a.mp4", &["-c:v", "libx264", "-c:a", "aac"]);
    assert_eq!(sniff_file(&path), Some(Container::Mp4));
    let p = probe_file(&path).await.unwrap();
    let v = p.video.unwrap();
    assert_eq!(
        (v.codec.as_str(), v.width, v.height, v.rotation),
        ("h264", 160, 96, 0)
    );
    assert!((v.fps - 30.0).abs() < 0.01);
    assert_eq!(p.audio.unwrap().codec, "aac");
    assert!((p.duration_secs - 1.0).abs() < 0.1, "{}", p.duration_secs);
    assert_eq!(p.stream_count, 2);
}

#[tokio::test]
async fn vp9_opus_webm_is_sniffed_from_its_doctype_and_probed() {
    let dir = TempDir::new().unwrap();
    let path = clip(&dir, "a.webm", &["-c:v", "libvpx-vp9", "-c:a", "libopus"]);
    assert_eq!(sniff_file(&path), Some(Container::Webm));
    let p = probe_file(&path).await.unwrap();
    assert_eq!(p.container, Container::Webm);
    assert_eq!(p.video.unwrap().codec, "vp9");
    let a = p.audio.unwrap();
    assert_eq!((a.codec.as_str(), a.sample_rate), ("opus", 48000));
}

#[tokio::test]
async fn h264_in_matroska_sniffs_as_mkv() {
    let dir = TempDir::new().unwrap();
    let path = clip(&dir, "a.mkv", &["-c:v", "libx264", "-c:a", "libopus"]);
    assert_eq!(sniff_file(&path), Some(Container::Mkv));
    assert_eq!(
        probe_file(&path).await.unwrap().video.unwrap().codec,
        "h264"
    );
}

#[tokio::test]
async fn portrait_phone_clip_reports_its_rotation() {
    let dir = TempDir::new().unwrap();
    let plain = clip(&dir, "plain.mp4", &["-c:v", "libx264", "-c:a", "aac"]);
    // ffmpeg 5.1 only writes the display matrix when stream-copying.
    let plain = plain.to_str().unwrap();
    let args = ["-i", plain, "-c", "copy", "-metadata:s:v:0", "rotate=90"];
    let rotated = ffmpeg(&dir, "rotated.mp4", &args);
    let v = probe_file(&rotated).await.unwrap().video.unwrap();
    assert!(v.rotation == 90 || v.rotation == 270, "{}", v.rotation);
    assert_eq!((v.width, v.height), (160, 96));
}

#[tokio::test]
async fn audio_only_mp3_and_m4a_have_no_video() {
    let dir = TempDir::new().unwrap();
    let mp3 = tone(&dir, "a.mp3", &["-c:a", "libmp3lame"]);
    assert_eq!(sniff_file(&mp3), Some(Container::Mp3));
    let p = probe_file(&mp3).await.unwrap();
    assert!(p.video.is_none());
    assert_eq!(p.audio.unwrap().codec, "mp3");

    let m4a = tone(&dir, "a.m4a", &["-c:a", "aac"]);
    assert_eq!(sniff_file(&m4a), Some(Container::M4a));
    let p = probe_file(&m4a).await.unwrap();
    assert!(p.video.is_none());
    assert_eq!(p.audio.unwrap().channels, 1);
}

#[tokio::test]
async fn mpeg4_part2_video_is_an_unsupported_codec() {
    let dir = TempDir::new().unwrap();
    let path = clip(&dir, "a.mp4", &["-c:v", "mpeg4", "-c:a", "aac"]);
    let err = probe_file(&path).await.unwrap_err();
    assert!(
        matches!(err, VideoError::UnsupportedCodec(ref c) if c == "mpeg4"),
        "{err:?}"
    );
}

/// A playlist that would make ffmpeg read a local file and the network.
fn playlist(port: u16) -> String {
    format!(
        "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:///etc/passwd\n\
         #EXTINF:1,\nhttp://127.0.0.1:{port}/x.ts\n#EXT-X-ENDLIST\n"
    )
}

#[test]
fn hls_playlists_and_ffconcat_lists_sniff_as_nothing() {
    assert_eq!(sniff(playlist(9).as_bytes()), None);
    assert_eq!(sniff(b"ffconcat version 1.0\nfile /etc/passwd\n"), None);
}

#[tokio::test]
async fn playlist_disguised_behind_an_ftyp_box_is_corrupt_and_fetches_nothing() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = TempDir::new().unwrap();

    let mut disguised = b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2".to_vec();
    disguised.extend(playlist(port).as_bytes());
    let path = dir.path().join("upload.mp4");
    std::fs::write(&path, &disguised).unwrap();
    assert_eq!(sniff(&disguised), Some(Container::Mp4));
    let err = probe_file(&path).await.unwrap_err();
    assert!(matches!(err, VideoError::Corrupt(_)), "{err:?}");

    // Whatever a caller claims the bare playlist is, no demuxer follows it.
    let bare = dir.path().join("bare");
    std::fs::write(&bare, playlist(port)).unwrap();
    for c in [
        Container::Mp4,
        Container::Webm,
        Container::Mp3,
        Container::Ogg,
        Container::Wav,
    ] {
        let res = probe(&bare, c, &ProbeLimits::default()).await;
        assert!(res.is_err(), "{c:?} accepted a playlist: {res:?}");
    }

    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Ok((mut s, _)) => {
            let mut req = String::new();
            let _ = s.read_to_string(&mut req);
            panic!("ffprobe connected to the playlist's URL: {req}");
        }
        Err(e) => panic!("listener failed: {e}"),
    }
}

#[tokio::test]
async fn truncated_mp4_is_an_error_not_a_panic() {
    let dir = TempDir::new().unwrap();
    let path = clip(&dir, "a.mp4", &["-c:v", "libx264", "-c:a", "aac"]);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    assert!(probe_file(&path).await.is_err());
}

#[tokio::test]
async fn zero_length_file_is_corrupt() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("empty.mp4");
    std::fs::write(&path, b"").unwrap();
    assert_eq!(sniff(b""), None);
    let err = probe(&path, Container::Mp4, &ProbeLimits::default())
        .await
        .unwrap_err();
    assert!(matches!(err, VideoError::Corrupt(_)), "{err:?}");
}

#[tokio::test]
async fn clip_longer_than_the_duration_limit_is_too_large() {
    let dir = TempDir::new().unwrap();
    let path = clip(&dir, "a.mp4", &["-c:v", "libx264", "-c:a", "aac"]);
    let limits = ProbeLimits {
        max_duration_secs: 0.5,
        ..ProbeLimits::default()
    };
    let err = probe(&path, Container::Mp4, &limits).await.unwrap_err();
    assert!(
        matches!(err, VideoError::TooLarge(ref m) if m.contains("duration")),
        "{err:?}"
    );

    let limits = ProbeLimits {
        max_width: 100,
        max_height: 100,
        ..ProbeLimits::default()
    };
    let err = probe(&path, Container::Mp4, &limits).await.unwrap_err();
    assert!(
        matches!(err, VideoError::TooLarge(ref m) if m.contains("resolution")),
        "{err:?}"
    );
}

#[tokio::test]
async fn probe_that_exceeds_its_time_limit_times_out() {
    let dir = TempDir::new().unwrap();
    let path = clip(&dir, "a.mp4", &["-c:v", "libx264", "-c:a", "aac"]);
    let limits = ProbeLimits {
        timeout: Duration::ZERO,
        ..ProbeLimits::default()
    };
    let err = probe(&path, Container::Mp4, &limits).await.unwrap_err();
    assert!(matches!(err, VideoError::Timeout), "{err:?}");
}
