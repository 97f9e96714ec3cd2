//! Parses ffprobe's JSON report into a [`Probe`] and applies the codec
//! allow-list. ffprobe prints many numbers as strings and omits fields freely,
//! so every field is optional here and converted leniently.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Container, VideoError};

/// What ffprobe found in an accepted file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Probe {
    pub duration_secs: f64,
    pub container: Container,
    /// The first real video stream (cover art is not video).
    pub video: Option<VideoStream>,
    /// The first audio stream.
    pub audio: Option<AudioStream>,
    /// All streams in the container, including data and subtitle streams.
    pub stream_count: u32,
    /// Overall bit rate in bits per second, when ffprobe knows it.
    pub bit_rate: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VideoStream {
    pub codec: String,
    /// Coded width, before applying `rotation`.
    pub width: u32,
    /// Coded height, before applying `rotation`.
    pub height: u32,
    pub fps: f64,
    /// Display rotation in degrees as ffprobe reports it, normalised to
    /// 0, 90, 180 or 270; a quarter turn means width and height swap on screen.
    pub rotation: i32,
    pub bit_rate: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AudioStream {
    pub codec: String,
    pub channels: u32,
    pub sample_rate: u32,
    pub bit_rate: Option<u64>,
}

const VIDEO_CODECS: &[&str] = &["h264", "hevc", "vp8", "vp9", "av1"];
const AUDIO_CODECS: &[&str] = &["aac", "opus", "mp3", "vorbis", "flac"];

#[derive(Deserialize)]
struct Report {
    #[serde(default)]
    streams: Vec<RawStream>,
    format: Option<RawFormat>,
}

#[derive(Deserialize)]
struct RawFormat {
    duration: Option<Value>,
    bit_rate: Option<Value>,
    nb_streams: Option<Value>,
}

#[derive(Deserialize)]
struct RawStream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<Value>,
    height: Option<Value>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    channels: Option<Value>,
    sample_rate: Option<Value>,
    bit_rate: Option<Value>,
    #[serde(default)]
    disposition: Option<Value>,
    #[serde(default)]
    tags: Option<Value>,
    #[serde(default)]
    side_data_list: Vec<Value>,
}

/// Turns ffprobe's JSON into a [`Probe`], rejecting files without a usable
/// stream and any audio or video stream with a codec we do not process.
pub(crate) fn parse_report(json: &[u8], container: Container) -> Result<Probe, VideoError> {
    let report: Report = serde_json::from_slice(json)
        .map_err(|e| VideoError::Corrupt(format!("unreadable probe report: {e}")))?;
    let format = report
        .format
        .ok_or_else(|| VideoError::Corrupt("no format section".into()))?;
    let duration_secs = format
        .duration
        .as_ref()
        .and_then(as_f64)
        .filter(|d| d.is_finite() && *d >= 0.0)
        .ok_or_else(|| VideoError::Corrupt("unknown duration".into()))?;

    let mut video = None;
    let mut audio = None;
    for s in &report.streams {
        match s.codec_type.as_deref() {
            Some("video") if !is_attached_picture(s) => {
                let v = video_stream(s)?;
                video.get_or_insert(v);
            }
            Some("audio") => {
                let a = audio_stream(s)?;
                audio.get_or_insert(a);
            }
            _ => {}
        }
    }
    if video.is_none() && audio.is_none() {
        return Err(VideoError::Corrupt("no audio or video stream".into()));
    }
    let listed = u32::try_from(report.streams.len()).unwrap_or(u32::MAX);
    let declared = format.nb_streams.as_ref().and_then(as_u64);
    let stream_count = declared.map_or(listed, |n| u32::try_from(n).unwrap_or(u32::MAX));
    Ok(Probe {
        duration_secs,
        container,
        video,
        audio,
        stream_count: stream_count.max(listed),
        bit_rate: format.bit_rate.as_ref().and_then(as_u64),
    })
}

/// Cover art in MP3/M4A shows up as a one-frame MJPEG/PNG "video" stream; it
/// is not a video track and must not trip the video codec allow-list.
fn is_attached_picture(s: &RawStream) -> bool {
    let flag = s.disposition.as_ref().and_then(|d| d.get("attached_pic"));
    flag.and_then(as_u64) == Some(1)
}

fn video_stream(s: &RawStream) -> Result<VideoStream, VideoError> {
    let codec = allowed_codec(s, VIDEO_CODECS)?;
    let dim = |v: &Option<Value>| {
        v.as_ref()
            .and_then(as_u64)
            .and_then(|n| u32::try_from(n).ok())
    };
    let (width, height) = match (dim(&s.width), dim(&s.height)) {
        (Some(w), Some(h)) if w > 0 && h > 0 => (w, h),
        _ => {
            return Err(VideoError::Corrupt(
                "video stream without dimensions".into(),
            ))
        }
    };
    // avg_frame_rate reflects what plays; r_frame_rate is a fallback that can
    // be a timebase-like guess for variable-frame-rate phone footage.
    let fps = [&s.avg_frame_rate, &s.r_frame_rate]
        .into_iter()
        .filter_map(|r| r.as_deref().and_then(parse_ratio))
        .find(|f| *f > 0.0)
        .unwrap_or(0.0);
    Ok(VideoStream {
        codec,
        width,
        height,
        fps,
        rotation: rotation(s),
        bit_rate: s.bit_rate.as_ref().and_then(as_u64),
    })
}

fn audio_stream(s: &RawStream) -> Result<AudioStream, VideoError> {
    let codec = allowed_codec(s, AUDIO_CODECS)?;
    let small = |v: &Option<Value>| {
        v.as_ref()
            .and_then(as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0)
    };
    Ok(AudioStream {
        codec,
        channels: small(&s.channels),
        sample_rate: small(&s.sample_rate),
        bit_rate: s.bit_rate.as_ref().and_then(as_u64),
    })
}

/// PCM variants (pcm_s16le, pcm_f32be, ...) are all plain samples, so the
/// whole family is allowed for audio.
fn allowed_codec(s: &RawStream, allowed: &[&str]) -> Result<String, VideoError> {
    let name = s.codec_name.as_deref().unwrap_or("unknown");
    let pcm = allowed == AUDIO_CODECS && name.starts_with("pcm_");
    if allowed.contains(&name) || pcm {
        Ok(name.to_owned())
    } else {
        Err(VideoError::UnsupportedCodec(
            name.chars().take(64).collect(),
        ))
    }
}

/// Rotation from the display matrix side data (what ffmpeg applies), falling
/// back to the legacy `rotate` tag written by older muxers.
fn rotation(s: &RawStream) -> i32 {
    let from_matrix = s
        .side_data_list
        .iter()
        .find_map(|d| d.get("rotation").and_then(as_f64));
    let from_tag = || {
        let tags = s.tags.as_ref()?;
        tags.get("rotate").and_then(as_f64)
    };
    let degrees = from_matrix.or_else(from_tag).unwrap_or(0.0);
    if !degrees.is_finite() {
        return 0;
    }
    // Snap to a quarter turn; odd angles are not something players honour.
    let quarter = (degrees / 90.0).round().rem_euclid(4.0);
    quarter as i32 * 90
}

/// "30000/1001" or "25" as frames per second; zero denominators are invalid.
fn parse_ratio(text: &str) -> Option<f64> {
    let (num, den) = text.split_once('/').unwrap_or((text, "1"));
    let (num, den): (f64, f64) = (num.trim().parse().ok()?, den.trim().parse().ok()?);
    let value = num / den;
    (den != 0.0 && value.is_finite()).then_some(value)
}

/// A JSON number or numeric string as f64.
fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|f: &f64| f.is_finite())
}

/// A JSON number or numeric string as a non-negative integer.
fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_rates_parse_from_ratios_and_reject_zero_denominators() {
        assert!((parse_ratio("30000/1001").unwrap() - 29.97).abs() < 0.01);
        assert_eq!(parse_ratio("25"), Some(25.0));
        assert_eq!(parse_ratio("0/0"), None);
        assert_eq!(parse_ratio("x/1"), None);
    }

    #[test]
    fn string_numbers_and_rotation_tags_are_understood() {
        let json = br#"{"format":{"duration":"2.5","bit_rate":"1000","nb_streams":1},
            "streams":[{"codec_type":"video","codec_name":"hevc","width":"1920",
            "height":1080,"r_frame_rate":"60/1","tags":{"rotate":"-90"}}]}"#;
        let p = parse_report(json, Container::Mov).unwrap();
        assert_eq!(p.duration_secs, 2.5);
        assert_eq!(p.bit_rate, Some(1000));
        let v = p.video.unwrap();
        assert_eq!(
            (v.width, v.height, v.fps, v.rotation),
            (1920, 1080, 60.0, 270)
        );
    }

    #[test]
    fn unknown_codecs_and_empty_reports_are_rejected() {
        let json = br#"{"format":{"duration":"1"},"streams":[{"codec_type":"video",
            "codec_name":"mjpeg","width":8,"height":8}]}"#;
        assert!(matches!(
            parse_report(json, Container::Mp4),
            Err(VideoError::UnsupportedCodec(c)) if c == "mjpeg"
        ));
        assert!(matches!(
            parse_report(b"{}", Container::Mp4),
            Err(VideoError::Corrupt(_))
        ));
        assert!(matches!(
            parse_report(b"not json", Container::Mp4),
            Err(VideoError::Corrupt(_))
        ));
    }
}
