//! Posters, storyboards and waveforms.

use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

#[tokio::test]
async fn a_poster_has_the_display_size_of_the_clip() {
    let dir = TempDir::new().unwrap();
    let src = Media::load(clip(&dir, "a.mp4", "640x360", 2, H264_AAC)).await;
    let png = dir.path().join("poster.png");
    let cancel = CancellationToken::new();
    let p = runner()
        .poster(&src.input(), 99.0, &png, &cancel)
        .await
        .unwrap();
    assert_eq!((p.width, p.height), (640, 360));
    assert!(p.at_secs > 1.0 && p.at_secs < 2.0, "{}", p.at_secs);
    assert_eq!(video_size(&ffprobe(&png)), (640, 360));
}

#[tokio::test]
async fn a_clip_that_starts_black_gets_a_poster_from_later_on() {
    let dir = TempDir::new().unwrap();
    let graph = "color=c=black:s=320x180:r=30:d=2[a];testsrc2=s=320x180:r=30:d=3[b];\
                 [a][b]concat=n=2:v=1:a=0[v]";
    let args = [
        "-filter_complex",
        graph,
        "-map",
        "[v]",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
    ];
    let src = Media::load(ffmpeg(&dir, "late.mp4", &args)).await;
    let png = dir.path().join("poster.png");
    let cancel = CancellationToken::new();
    let p = runner()
        .poster(&src.input(), 0.5, &png, &cancel)
        .await
        .unwrap();
    assert!(p.at_secs >= 2.0, "{}", p.at_secs);
    assert!(region_luma(&png, 0.0, (0, 0, 320, 180)) > 40.0);
}

#[tokio::test]
async fn a_storyboard_tiles_one_thumbnail_per_second_into_a_grid() {
    let dir = TempDir::new().unwrap();
    let codecs = ["-an", "-c:v", "libx264", "-preset", "ultrafast"];
    let src = Media::load(clip(&dir, "a.mp4", "320x180", 12, &codecs)).await;
    let jpg = dir.path().join("sprite.jpg");
    let cancel = CancellationToken::new();
    let sb = runner()
        .storyboard(&src.input(), &jpg, &cancel)
        .await
        .unwrap();
    assert_eq!(
        (sb.count, sb.columns, sb.rows, sb.interval_secs),
        (12, 10, 2, 1.0)
    );
    assert_eq!((sb.tile_width, sb.tile_height), (160, 90));
    let (w, h) = video_size(&ffprobe(&jpg));
    assert_eq!(
        (w, h),
        (u64::from(sb.columns * 160), u64::from(sb.rows * 90))
    );

    let vtt = sb.vtt("sprite.jpg", src.probe.duration_secs);
    let regions: Vec<_> = vtt
        .lines()
        .filter_map(|l| l.strip_prefix("sprite.jpg#xywh="))
        .collect();
    assert_eq!(regions.len(), 12);
    for r in regions {
        let n: Vec<u64> = r.split(',').map(|v| v.parse().unwrap()).collect();
        assert!(n[0] + n[2] <= w && n[1] + n[3] <= h, "{r}");
    }
    assert!(vtt
        .trim_end()
        .lines()
        .rev()
        .nth(1)
        .unwrap()
        .ends_with("--> 00:00:12.000"));
    // The 12th tile (second row, second column) shows video, not padding.
    assert!(region_luma(&jpg, 0.0, (160, 90, 160, 90)) > 30.0);
}

#[tokio::test]
async fn an_audio_file_gets_a_waveform_of_the_requested_size() {
    let dir = TempDir::new().unwrap();
    let tone = [
        "-f",
        "lavfi",
        "-i",
        "sine=sample_rate=44100",
        "-t",
        "2",
        "-c:a",
        "aac",
    ];
    let src = Media::load(ffmpeg(&dir, "a.m4a", &tone)).await;
    let png = dir.path().join("wave.png");
    runner()
        .waveform(&src.input(), &png, 400, 100, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(video_size(&ffprobe(&png)), (400, 100));
}
