//! A PNG watermark burned into every HLS rung: its settings and the filter
//! graph fragment that scales, fades and places it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Rung;

/// A watermark image and where and how to draw it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Watermark {
    /// A PNG file; it is read with the `png_pipe` demuxer only.
    pub png: PathBuf,
    pub gravity: Gravity,
    /// Distance from the edges it is anchored to, in output pixels.
    pub margin: u32,
    /// 0.0 (invisible) to 1.0 (the PNG's own alpha).
    pub opacity: f32,
    /// Watermark width as a fraction of the rung width (0.0–1.0].
    pub scale: f32,
}

/// Where the watermark sits, compass-style.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gravity {
    #[serde(rename = "n")]
    North,
    #[serde(rename = "s")]
    South,
    #[serde(rename = "e")]
    East,
    #[serde(rename = "w")]
    West,
    #[serde(rename = "ne")]
    NorthEast,
    #[serde(rename = "nw")]
    NorthWest,
    #[serde(rename = "se")]
    SouthEast,
    #[serde(rename = "sw")]
    SouthWest,
    Center,
}

impl Gravity {
    /// Parses the serde names ("n", "se", "center", ...), also accepting
    /// the long forms ("north", "southeast", "centre").
    pub fn parse(text: &str) -> Option<Gravity> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "n" | "north" => Gravity::North,
            "s" | "south" => Gravity::South,
            "e" | "east" => Gravity::East,
            "w" | "west" => Gravity::West,
            "ne" | "northeast" => Gravity::NorthEast,
            "nw" | "northwest" => Gravity::NorthWest,
            "se" | "southeast" => Gravity::SouthEast,
            "sw" | "southwest" => Gravity::SouthWest,
            "center" | "centre" | "c" => Gravity::Center,
            _ => return None,
        })
    }

    /// overlay's x and y expressions (W/H: video, w/h: watermark).
    fn position(self, m: u32) -> (String, String) {
        let left = format!("{m}");
        let right = format!("W-w-{m}");
        let top = format!("{m}");
        let bottom = format!("H-h-{m}");
        let (mid_x, mid_y) = ("(W-w)/2".to_string(), "(H-h)/2".to_string());
        match self {
            Gravity::North => (mid_x, top),
            Gravity::South => (mid_x, bottom),
            Gravity::East => (right, mid_y),
            Gravity::West => (left, mid_y),
            Gravity::NorthEast => (right, top),
            Gravity::NorthWest => (left, top),
            Gravity::SouthEast => (right, bottom),
            Gravity::SouthWest => (left, bottom),
            Gravity::Center => (mid_x, mid_y),
        }
    }
}

/// The filter graph for the HLS ladder: decode once, split per rung, scale
/// to each rung (rotation is already applied by ffmpeg's autorotate) and,
/// with a watermark (input 1), overlay it. Rung `k` comes out as `[vk]`.
pub(crate) fn ladder_graph(rungs: &[Rung], watermark: Option<&Watermark>) -> String {
    let n = rungs.len();
    let labels = |p: &str| (0..n).map(|k| format!("[{p}{k}]")).collect::<String>();
    let mut graph = format!("[0:v:0]split={n}{}", labels("s"));
    if let Some(wm) = watermark {
        let opacity = wm.opacity.clamp(0.0, 1.0);
        graph += &format!(
            ";[1:v:0]format=rgba,colorchannelmixer=aa={opacity:.3},split={n}{}",
            labels("w")
        );
    }
    for (k, r) in rungs.iter().enumerate() {
        let scaled = format!("[s{k}]scale={}:{},setsar=1", r.width, r.height);
        match watermark {
            None => graph += &format!(";{scaled},format=yuv420p[v{k}]"),
            Some(wm) => {
                let ww = (f64::from(r.width) * f64::from(wm.scale.clamp(0.01, 1.0))).round();
                let ww = (ww as u32).max(2);
                let (x, y) = wm.gravity.position(wm.margin);
                graph += &format!(
                    ";{scaled}[b{k}];[w{k}]scale={ww}:-1[m{k}];\
                     [b{k}][m{k}]overlay=x={x}:y={y},format=yuv420p[v{k}]"
                );
            }
        }
    }
    graph
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rung(name: &str, width: u32, height: u32) -> Rung {
        Rung {
            name: name.into(),
            width,
            height,
            video_kbps: 1,
            max_kbps: 1,
            audio_kbps: 1,
        }
    }

    #[test]
    fn gravity_parses_short_and_long_names_and_serialises_short() {
        assert_eq!(Gravity::parse("se"), Some(Gravity::SouthEast));
        assert_eq!(Gravity::parse("NorthWest"), Some(Gravity::NorthWest));
        assert_eq!(Gravity::parse("center"), Some(Gravity::Center));
        assert_eq!(Gravity::parse("up"), None);
        let json = serde_json::to_string(&Gravity::NorthEast).unwrap();
        assert_eq!(json, "\"ne\"");
        let g: Gravity = serde_json::from_str("\"center\"").unwrap();
        assert_eq!(g, Gravity::Center);
    }

    #[test]
    fn graph_without_watermark_splits_and_scales_each_rung() {
        let g = ladder_graph(&[rung("a", 426, 240), rung("b", 640, 360)], None);
        assert_eq!(
            g,
            "[0:v:0]split=2[s0][s1];[s0]scale=426:240,setsar=1,format=yuv420p[v0];\
             [s1]scale=640:360,setsar=1,format=yuv420p[v1]"
        );
    }

    #[test]
    fn graph_with_watermark_overlays_a_scaled_faded_copy_per_rung() {
        let wm = Watermark {
            png: "w.png".into(),
            gravity: Gravity::SouthEast,
            margin: 8,
            opacity: 0.5,
            scale: 0.25,
        };
        let g = ladder_graph(&[rung("a", 640, 360)], Some(&wm));
        assert!(g.contains("[1:v:0]format=rgba,colorchannelmixer=aa=0.500,split=1[w0]"));
        assert!(g.contains("[w0]scale=160:-1[m0]"));
        assert!(g.contains("overlay=x=W-w-8:y=H-h-8,format=yuv420p[v0]"));
    }
}
