//! Cancellation, time limits, hostile inputs and clean-up.

use std::path::Path;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use video::{plan_ladder, Container, Gravity, Input, VideoError, Watermark};

use crate::helpers::*;

/// Whether any ffmpeg process mentions `path` on its command line.
fn ffmpeg_running_under(path: &Path) -> bool {
    let needle = path.to_str().unwrap();
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        cmdline.starts_with("ffmpeg") && cmdline.contains(needle)
    })
}

fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

#[tokio::test]
async fn cancelling_a_long_encode_kills_ffmpeg_within_two_seconds() {
    let dir = TempDir::new().unwrap();
    let src = Media::load(clip(&dir, "long.mp4", "640x360", 20, H264_AAC)).await;
    let work = TempDir::new().unwrap();
    let mut slow = runner();
    slow.x264_preset = "veryslow".into();
    slow.work_root = Some(work.path().to_owned());
    let rungs = plan_ladder(&src.probe, &[360]);
    let out = dir.path().join("hls");
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let err = slow
        .hls(&src.input(), &rungs, None, &out, &cancel, &|_| {})
        .await
        .unwrap_err();
    let cancelled_after = started
        .elapsed()
        .saturating_sub(Duration::from_millis(1500));
    assert!(matches!(err, VideoError::Cancelled), "{err:?}");
    assert!(
        cancelled_after < Duration::from_secs(2),
        "{cancelled_after:?}"
    );
    assert!(!ffmpeg_running_under(dir.path()));
    assert!(is_empty(work.path()), "a working directory was left behind");
    assert!(!out.join("360p").exists(), "partial output was left behind");
}

#[tokio::test]
async fn a_step_over_its_time_limit_times_out_and_cleans_up() {
    let dir = TempDir::new().unwrap();
    let src = Media::load(clip(&dir, "a.mp4", "320x180", 3, H264_AAC)).await;
    let work = TempDir::new().unwrap();
    let mut hasty = runner();
    hasty.timeout_floor = Duration::from_millis(20);
    hasty.timeout_per_media_second = 0.0;
    hasty.work_root = Some(work.path().to_owned());
    let rungs = plan_ladder(&src.probe, &[180]);
    let out = dir.path().join("hls");
    let cancel = CancellationToken::new();
    let err = hasty
        .hls(&src.input(), &rungs, None, &out, &cancel, &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, VideoError::Timeout), "{err:?}");
    assert!(!ffmpeg_running_under(dir.path()));
    assert!(is_empty(work.path()));
}

#[tokio::test]
async fn a_playlist_posing_as_mp4_is_never_followed() {
    let dir = TempDir::new().unwrap();
    let real = Media::load(clip(&dir, "real.mp4", "320x180", 2, H264_AAC)).await;
    let target = real.path.to_str().unwrap();
    let playlist = format!(
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nfile:{target}\n#EXTINF:2,\n\
         /etc/passwd\n#EXT-X-ENDLIST\n"
    );
    let evil = dir.path().join("evil.mp4");
    std::fs::write(&evil, playlist).unwrap();
    // Even if sniffing were bypassed and the probe of another file reused:
    let input = Input {
        path: &evil,
        container: Container::Mp4,
        probe: &real.probe,
    };
    let work = TempDir::new().unwrap();
    let mut r = runner();
    r.work_root = Some(work.path().to_owned());
    let cancel = CancellationToken::new();
    let rungs = plan_ladder(&real.probe, &[180]);
    let out = dir.path().join("hls");
    let err = r
        .hls(&input, &rungs, None, &out, &cancel, &|_| {})
        .await
        .unwrap_err();
    let VideoError::Failed(msg) = err else {
        panic!("{err:?}")
    };
    assert!(
        !msg.contains(dir.path().to_str().unwrap()),
        "path leaked: {msg}"
    );
    let poster = dir.path().join("p.png");
    assert!(r.poster(&input, 0.0, &poster, &cancel).await.is_err());

    // A watermark that is really a playlist is refused by the PNG demuxer.
    let wm = Watermark {
        png: evil.clone(),
        gravity: Gravity::Center,
        margin: 0,
        opacity: 1.0,
        scale: 0.5,
    };
    let err = r
        .hls(&real.input(), &rungs, Some(&wm), &out, &cancel, &|_| {})
        .await;
    assert!(matches!(err, Err(VideoError::Failed(_))), "{err:?}");
    assert!(is_empty(work.path()));
}
