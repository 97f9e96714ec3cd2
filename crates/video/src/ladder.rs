//! Plans the adaptive-bitrate ladder: which renditions to encode for a source,
//! from its display size (rotation applied), never upscaling.

use crate::Probe;

/// One rendition to encode.
#[derive(Clone, Debug, PartialEq)]
pub struct Rung {
    /// Named after the short side, e.g. "360p".
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// Nominal video bit rate for this size.
    pub video_kbps: u32,
    /// The cap (VBV maxrate) on the constant-quality encode.
    pub max_kbps: u32,
    pub audio_kbps: u32,
}

/// Reference bit rates by pixel count (16:9 sizes); other sizes interpolate.
const REFERENCE: &[(u32, u32)] = &[
    (426 * 240, 400),
    (640 * 360, 800),
    (854 * 480, 1400),
    (1280 * 720, 2800),
    (1920 * 1080, 5000),
    (2560 * 1440, 8000),
    (3840 * 2160, 14000),
];
const AUDIO_KBPS: u32 = 128;

/// Width and height as shown on screen: a quarter turn swaps them.
pub(crate) fn display_size(probe: &Probe) -> Option<(u32, u32)> {
    let v = probe.video.as_ref()?;
    Some(match v.rotation {
        90 | 270 => (v.height, v.width),
        _ => (v.width, v.height),
    })
}

/// Rungs for the source's display size. `heights` are short-side targets (for
/// a portrait 1080x1920 source, "720p" is 720x1280). Targets above the
/// source's short side are skipped; when none fits, one rung at the source
/// size. Dimensions are even and keep the aspect ratio; sorted ascending.
/// Audio-only sources get no rungs.
pub fn plan_ladder(probe: &Probe, heights: &[u32]) -> Vec<Rung> {
    let Some((w, h)) = display_size(probe) else {
        return Vec::new();
    };
    let (short, long) = (w.min(h), w.max(h));
    let mut targets: Vec<u32> = heights
        .iter()
        .map(|&t| even_down(t))
        .filter(|&t| t >= 2 && t <= short)
        .collect();
    targets.sort_unstable();
    targets.dedup();
    if targets.is_empty() {
        targets.push(even_down(short).max(2));
    }
    let fps = probe.video.as_ref().map_or(0.0, |v| v.fps);
    targets
        .into_iter()
        .map(|t| {
            let scaled = f64::from(t) * f64::from(long) / f64::from(short);
            let t_long = even_nearest(scaled).min(even_down(long)).max(t);
            let (width, height) = if w >= h { (t_long, t) } else { (t, t_long) };
            rung(width, height, fps)
        })
        .collect()
}

fn rung(width: u32, height: u32, fps: f64) -> Rung {
    let mut kbps = bitrate_for(u64::from(width) * u64::from(height));
    // High frame rates need more bits for the same look.
    if fps > 31.0 {
        kbps *= 1.5;
    }
    let video_kbps = round_to_ten(kbps);
    Rung {
        name: format!("{}p", width.min(height)),
        width,
        height,
        video_kbps,
        max_kbps: round_to_ten(f64::from(video_kbps) * 1.5),
        audio_kbps: AUDIO_KBPS,
    }
}

/// Interpolates [`REFERENCE`] linearly in pixel count, scaling
/// proportionally outside it.
fn bitrate_for(pixels: u64) -> f64 {
    let px = pixels as f64;
    let (first, last) = (REFERENCE[0], REFERENCE[REFERENCE.len() - 1]);
    if px <= f64::from(first.0) {
        return f64::from(first.1) * px / f64::from(first.0);
    }
    for pair in REFERENCE.windows(2) {
        let ((p0, k0), (p1, k1)) = (pair[0], pair[1]);
        if px <= f64::from(p1) {
            let t = (px - f64::from(p0)) / f64::from(p1 - p0);
            return f64::from(k0) + t * f64::from(k1 - k0);
        }
    }
    f64::from(last.1) * px / f64::from(last.0)
}

fn round_to_ten(kbps: f64) -> u32 {
    ((kbps / 10.0).round() as u32 * 10).max(50)
}

fn even_down(n: u32) -> u32 {
    n & !1
}

fn even_nearest(x: f64) -> u32 {
    ((x / 2.0).round() * 2.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Container, VideoStream};

    fn source(width: u32, height: u32, rotation: i32, fps: f64) -> Probe {
        Probe {
            duration_secs: 10.0,
            container: Container::Mp4,
            video: Some(VideoStream {
                codec: "h264".into(),
                width,
                height,
                fps,
                rotation,
                bit_rate: None,
            }),
            audio: None,
            stream_count: 1,
            bit_rate: None,
        }
    }

    const ALL: &[u32] = &[1080, 240, 480, 720, 360, 1440, 2160];

    fn sizes(rungs: &[Rung]) -> Vec<(&str, u32, u32)> {
        rungs
            .iter()
            .map(|r| (r.name.as_str(), r.width, r.height))
            .collect()
    }

    #[test]
    fn full_hd_landscape_gets_240p_to_1080p_with_rising_bitrates() {
        let rungs = plan_ladder(&source(1920, 1080, 0, 30.0), ALL);
        assert_eq!(
            sizes(&rungs),
            [
                ("240p", 426, 240),
                ("360p", 640, 360),
                ("480p", 854, 480),
                ("720p", 1280, 720),
                ("1080p", 1920, 1080)
            ]
        );
        let kbps: Vec<u32> = rungs.iter().map(|r| r.video_kbps).collect();
        assert_eq!(kbps, [400, 800, 1400, 2800, 5000]);
        assert!(rungs
            .iter()
            .all(|r| r.max_kbps > r.video_kbps && r.audio_kbps == 128));
    }

    #[test]
    fn a_720p_source_is_never_upscaled_to_1080p() {
        let rungs = plan_ladder(&source(1280, 720, 0, 30.0), ALL);
        assert_eq!(rungs.last().unwrap().name, "720p");
        assert!(rungs.iter().all(|r| r.width <= 1280 && r.height <= 720));
    }

    #[test]
    fn a_rotated_phone_clip_gets_portrait_rungs_named_by_short_side() {
        let rungs = plan_ladder(&source(1920, 1080, 90, 30.0), &[360, 720]);
        assert_eq!(sizes(&rungs), [("360p", 360, 640), ("720p", 720, 1280)]);
        let rungs = plan_ladder(&source(1080, 1920, 0, 30.0), &[720]);
        assert_eq!(sizes(&rungs), [("720p", 720, 1280)]);
    }

    #[test]
    fn a_tiny_source_gets_one_rung_at_its_own_size() {
        let rungs = plan_ladder(&source(160, 120, 0, 30.0), ALL);
        assert_eq!(sizes(&rungs), [("120p", 160, 120)]);
        assert!(rungs[0].video_kbps < 400);
    }

    #[test]
    fn odd_sizes_give_even_dimensions_within_the_source() {
        let rungs = plan_ladder(&source(427, 241, 0, 30.0), &[240, 360]);
        assert_eq!(sizes(&rungs), [("240p", 426, 240)]);
        let rungs = plan_ladder(&source(99, 75, 0, 30.0), &[240]);
        assert_eq!(sizes(&rungs), [("74p", 98, 74)]);
        for r in plan_ladder(&source(1001, 563, 0, 30.0), ALL) {
            assert!(r.width % 2 == 0 && r.height % 2 == 0, "{r:?}");
        }
    }

    #[test]
    fn high_frame_rates_get_more_bits_and_audio_gets_no_rungs() {
        let fast = plan_ladder(&source(1280, 720, 0, 60.0), &[720]);
        assert_eq!(fast[0].video_kbps, 4200);
        let mut audio = source(1, 1, 0, 0.0);
        audio.video = None;
        assert!(plan_ladder(&audio, ALL).is_empty());
    }
}
