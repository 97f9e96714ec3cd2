//! Audio-track downloads.

use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use video::{AudioFormat, VideoError};

use crate::helpers::*;

#[tokio::test]
async fn audio_is_extracted_as_m4a_mp3_and_opus_without_video() {
    let dir = TempDir::new().unwrap();
    let mp4 = Media::load(clip(&dir, "a.mp4", "320x180", 2, H264_AAC)).await;
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
    let webm = Media::load(clip(&dir, "a.webm", "160x90", 2, &vp9)).await;
    let cases = [
        (&mp4, AudioFormat::M4a, "aac"),
        (&mp4, AudioFormat::Mp3, "mp3"),
        (&mp4, AudioFormat::Opus, "opus"),
        (&webm, AudioFormat::Opus, "opus"),
        (&webm, AudioFormat::M4a, "aac"),
    ];
    let cancel = CancellationToken::new();
    for (i, (src, format, codec)) in cases.into_iter().enumerate() {
        let out = dir.path().join(format!("out{i}.{}", format.extension()));
        runner()
            .extract_audio(&src.input(), format, &out, &cancel, &|_| {})
            .await
            .unwrap();
        let report = ffprobe(&out);
        assert!(streams(&report, "video").is_empty(), "{format:?}");
        assert_eq!(
            streams(&report, "audio")[0]["codec_name"],
            codec,
            "{format:?}"
        );
        assert!(
            report["format"]["tags"].get("encoder").is_none(),
            "{report}"
        );
    }
}

#[tokio::test]
async fn extracting_audio_from_a_silent_video_is_no_audio() {
    let dir = TempDir::new().unwrap();
    let codecs = ["-an", "-c:v", "libx264", "-preset", "ultrafast"];
    let src = Media::load(clip(&dir, "mute.mp4", "160x90", 1, &codecs)).await;
    let out = dir.path().join("out.mp3");
    let err = runner()
        .extract_audio(
            &src.input(),
            AudioFormat::Mp3,
            &out,
            &CancellationToken::new(),
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(err, VideoError::NoAudio), "{err:?}");
    assert!(!out.exists());
}
