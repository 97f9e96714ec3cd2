//! The HLS ladder, its measurements and the MP4 made from a rendition.

use std::sync::atomic::{AtomicU64, Ordering};

use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use video::{plan_ladder, Gravity, Watermark};

use crate::helpers::*;

#[tokio::test]
async fn a_640x360_mp4_becomes_aligned_renditions_without_metadata() {
    let dir = TempDir::new().unwrap();
    let mut codecs = H264_AAC.to_vec();
    codecs.extend(["-metadata", "location=+48.8584+002.2945/"]);
    codecs.extend(["-metadata", "creation_time=2020-01-02T03:04:05Z"]);
    let src = Media::load(clip(&dir, "a.mp4", "640x360", 5, &codecs)).await;
    let rungs = plan_ladder(&src.probe, &[240, 360, 480]);
    let out = dir.path().join("hls");
    let last = AtomicU64::new(0);
    let progress = |f: f64| last.store(f.to_bits(), Ordering::Relaxed);
    let cancel = CancellationToken::new();
    let renditions = runner()
        .hls(&src.input(), &rungs, None, &out, &cancel, &progress)
        .await
        .unwrap();
    assert_eq!(f64::from_bits(last.load(Ordering::Relaxed)), 1.0);

    let names: Vec<_> = renditions
        .iter()
        .map(|r| (r.name.as_str(), r.width, r.height))
        .collect();
    assert_eq!(names, [("240p", 426, 240), ("360p", 640, 360)]);
    let mut segment_counts = Vec::new();
    for r in &renditions {
        let playlist = std::fs::read_to_string(r.dir.join("index.m3u8")).unwrap();
        assert!(playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{playlist}");
        assert!(playlist.contains("#EXT-X-ENDLIST"));
        for line in playlist.lines().filter(|l| !l.starts_with('#')) {
            assert!(r.dir.join(line).is_file(), "{line} missing");
        }
        assert!(r.files.contains(&"init.mp4".to_string()));
        segment_counts.push(r.files.len());
        assert!(r.codecs.starts_with("avc1.64"), "{}", r.codecs);
        assert!(r.codecs.contains("mp4a.40.2"), "{}", r.codecs);
        assert!(r.bandwidth >= r.average_bandwidth && r.average_bandwidth > 0);
        assert_eq!(r.frame_rate, Some(30.0));

        let report = ffprobe(&joined(r, &dir));
        assert_eq!(
            video_size(&report),
            (u64::from(r.width), u64::from(r.height))
        );
        assert_eq!(streams(&report, "audio").len(), 1);
        let tags = tag_keys(&report);
        for bad in ["location", "creation_time", "rotate", "rotation"] {
            assert!(
                !tags.iter().any(|t| t.starts_with(bad)),
                "{bad} in {tags:?}"
            );
        }
    }
    // 5 s in 4 s segments: two segments per rung, aligned across rungs.
    assert_eq!(segment_counts, [4, 4]);

    let mp4 = dir.path().join("download.mp4");
    runner()
        .mp4_from_rendition(&renditions[1], &mp4, &cancel)
        .await
        .unwrap();
    let report = ffprobe(&mp4);
    assert!(report["format"]["format_name"]
        .as_str()
        .unwrap()
        .contains("mp4"));
    assert_eq!(video_size(&report), (640, 360));
    let boxes = top_level_boxes(&mp4);
    let pos = |name: &str| boxes.iter().position(|b| b == name).unwrap();
    assert!(pos("moov") < pos("mdat"), "{boxes:?}");
    assert!(!boxes.iter().any(|b| b == "moof"), "{boxes:?}");
    let tags = tag_keys(&report);
    assert!(
        !tags
            .iter()
            .any(|t| t.starts_with("location") || t == "creation_time"),
        "{tags:?}"
    );
}

#[tokio::test]
async fn vp9_opus_webm_and_h264_matroska_inputs_are_encoded() {
    let dir = TempDir::new().unwrap();
    let vp9 = [
        "-c:v",
        "libvpx-vp9",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-c:a",
        "libopus",
    ];
    let webm = Media::load(clip(&dir, "a.webm", "480x270", 2, &vp9)).await;
    let mkv = ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "libopus"];
    let mkv = Media::load(clip(&dir, "a.mkv", "480x270", 2, &mkv)).await;
    for src in [webm, mkv] {
        let out = dir.path().join(format!("hls-{:?}", src.container));
        let rungs = plan_ladder(&src.probe, &[240]);
        let r = runner()
            .hls(
                &src.input(),
                &rungs,
                None,
                &out,
                &CancellationToken::new(),
                &|_| {},
            )
            .await
            .unwrap();
        assert_eq!((r[0].width, r[0].height), (426, 240));
        assert_eq!(video_size(&ffprobe(&joined(&r[0], &dir))), (426, 240));
        assert!(r[0].codecs.ends_with(",mp4a.40.2"), "{}", r[0].codecs);
    }
}

#[tokio::test]
async fn a_rotated_phone_clip_gives_portrait_renditions_and_poster() {
    let dir = TempDir::new().unwrap();
    let plain = clip(&dir, "plain.mp4", "640x360", 2, H264_AAC);
    let plain = plain.to_str().unwrap();
    // ffmpeg 5.1 writes the display matrix only when stream-copying.
    let args = ["-i", plain, "-c", "copy", "-metadata:s:v:0", "rotate=90"];
    let src = Media::load(ffmpeg(&dir, "phone.mp4", &args)).await;
    assert_eq!(src.probe.video.as_ref().unwrap().rotation % 180, 90);

    let rungs = plan_ladder(&src.probe, &[240]);
    let out = dir.path().join("hls");
    let cancel = CancellationToken::new();
    let r = runner()
        .hls(&src.input(), &rungs, None, &out, &cancel, &|_| {})
        .await
        .unwrap();
    assert_eq!((r[0].width, r[0].height), (240, 426));
    let report = ffprobe(&joined(&r[0], &dir));
    assert_eq!(video_size(&report), (240, 426));
    assert!(!tag_keys(&report)
        .iter()
        .any(|t| t == "rotate" || t == "rotation"));

    let png = dir.path().join("poster.png");
    let poster = runner()
        .poster(&src.input(), 1.0, &png, &cancel)
        .await
        .unwrap();
    assert_eq!((poster.width, poster.height), (360, 640));
}

#[tokio::test]
async fn a_source_without_audio_gets_video_only_renditions() {
    let dir = TempDir::new().unwrap();
    let codecs = ["-an", "-c:v", "libx264", "-preset", "ultrafast"];
    let src = Media::load(clip(&dir, "mute.mp4", "320x180", 2, &codecs)).await;
    let rungs = plan_ladder(&src.probe, &[240, 360]);
    let out = dir.path().join("hls");
    let cancel = CancellationToken::new();
    let r = runner()
        .hls(&src.input(), &rungs, None, &out, &cancel, &|_| {})
        .await
        .unwrap();
    assert_eq!((r.len(), r[0].width, r[0].height), (1, 320, 180));
    assert!(r[0].codecs.starts_with("avc1.64") && !r[0].codecs.contains("mp4a"));
    assert!(streams(&ffprobe(&joined(&r[0], &dir)), "audio").is_empty());
}

#[tokio::test]
async fn a_white_watermark_at_south_east_brightens_the_bottom_right_corner() {
    let dir = TempDir::new().unwrap();
    let gray = ["-f", "lavfi", "-i", "color=c=0x202020:s=320x180:r=30:d=2"];
    let codecs = [
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
    ];
    let src = Media::load(ffmpeg(&dir, "dark.mp4", &[&gray[..], &codecs[..]].concat())).await;
    let white = ["-f", "lavfi", "-i", "color=white:s=64x64", "-frames:v", "1"];
    let png = ffmpeg(
        &dir,
        "wm.png",
        &[&white[..], &["-f", "image2pipe", "-c:v", "png"]].concat(),
    );
    let wm = Watermark {
        png,
        gravity: Gravity::SouthEast,
        margin: 4,
        opacity: 1.0,
        scale: 0.2,
    };
    let rungs = plan_ladder(&src.probe, &[180]);
    let cancel = CancellationToken::new();
    let mut lumas = Vec::new();
    for (name, watermark) in [("plain", None), ("marked", Some(&wm))] {
        let out = dir.path().join(name);
        let r = runner()
            .hls(&src.input(), &rungs, watermark, &out, &cancel, &|_| {})
            .await
            .unwrap();
        let file = joined(&r[0], &dir);
        lumas.push((
            region_luma(&file, 0.5, (320 - 4 - 40, 180 - 4 - 40, 32, 32)),
            region_luma(&file, 0.5, (8, 8, 32, 32)),
        ));
    }
    let ((plain_corner, plain_top), (marked_corner, marked_top)) = (lumas[0], lumas[1]);
    assert!(marked_corner > plain_corner + 100.0, "{lumas:?}");
    assert!((marked_top - plain_top).abs() < 10.0, "{lumas:?}");
}

#[tokio::test]
async fn an_audio_file_gets_an_audio_only_rendition() {
    let dir = TempDir::new().unwrap();
    let tone = [
        "-f",
        "lavfi",
        "-i",
        "sine=sample_rate=44100",
        "-t",
        "3",
        "-c:a",
        "libmp3lame",
    ];
    let src = Media::load(ffmpeg(&dir, "a.mp3", &tone)).await;
    let out = dir.path().join("hls");
    let cancel = CancellationToken::new();
    let r = runner()
        .audio_hls(&src.input(), &out, &cancel, &|_| {})
        .await
        .unwrap();
    assert_eq!((r.name.as_str(), r.width, r.height), ("audio", 0, 0));
    assert_eq!(r.codecs, "mp4a.40.2");
    assert!(r.dir.ends_with("audio") && r.bandwidth > 0);
    let report = ffprobe(&joined(&r, &dir));
    assert!(streams(&report, "video").is_empty());
    assert_eq!(streams(&report, "audio")[0]["channels"], 2);
}
