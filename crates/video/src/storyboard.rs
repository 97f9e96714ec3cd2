//! Seek-preview sprite sheets: evenly spaced thumbnails tiled into one JPEG,
//! described to players by a WebVTT file of `#xywh=` regions.

use std::fmt::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::ladder::display_size;
use crate::run::{no_progress, out_url, redactions, Input, Job, Runner};
use crate::VideoError;

/// Most tiles in one sheet.
const MAX_TILES: u32 = 100;
/// Most tiles in one row.
const MAX_COLUMNS: u32 = 10;
/// A tile's long side, in pixels.
const TILE_LONG_SIDE: u32 = 160;

/// The layout of a written sprite sheet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Storyboard {
    pub tile_width: u32,
    pub tile_height: u32,
    pub columns: u32,
    pub rows: u32,
    /// Tiles actually used; the last row may be partly empty.
    pub count: u32,
    /// Seconds between tiles; tile `i` shows the clip at `i * interval_secs`.
    pub interval_secs: f64,
}

impl Storyboard {
    /// Plans the grid for a clip of `duration_secs` shown at `width`×`height`.
    pub(crate) fn plan(width: u32, height: u32, duration_secs: f64, fps: f64) -> Storyboard {
        let duration = if duration_secs.is_finite() {
            duration_secs.max(0.0)
        } else {
            0.0
        };
        // Whole seconds keep the cue times readable; at most MAX_TILES tiles.
        let interval_secs = (duration / f64::from(MAX_TILES)).ceil().max(1.0);
        // The last frame starts one frame before the end, so a tile planned
        // at exactly the end would have nothing to show.
        let frame = if fps > 0.0 { 1.0 / fps } else { 0.04 };
        let usable = (duration - frame).max(0.0);
        let count = ((usable / interval_secs).floor() as u32 + 1).min(MAX_TILES);
        let (long, short) = (width.max(height).max(1), width.min(height).max(1));
        let tile_short = (f64::from(TILE_LONG_SIDE) * f64::from(short) / f64::from(long) / 2.0)
            .round()
            .max(1.0) as u32
            * 2;
        let (tile_width, tile_height) = if width >= height {
            (TILE_LONG_SIDE, tile_short)
        } else {
            (tile_short, TILE_LONG_SIDE)
        };
        let columns = count.min(MAX_COLUMNS);
        Storyboard {
            tile_width,
            tile_height,
            columns,
            rows: count.div_ceil(columns),
            count,
            interval_secs,
        }
    }

    /// WebVTT with one cue per tile pointing at its region of the sprite at
    /// `sprite_url`; the last cue ends at `duration_secs`.
    pub fn vtt(&self, sprite_url: &str, duration_secs: f64) -> String {
        let mut out = String::from("WEBVTT\n");
        for i in 0..self.count {
            let start = f64::from(i) * self.interval_secs;
            let end = if i + 1 == self.count {
                duration_secs.max(start)
            } else {
                f64::from(i + 1) * self.interval_secs
            };
            let x = (i % self.columns.max(1)) * self.tile_width;
            let y = (i / self.columns.max(1)) * self.tile_height;
            let _ = write!(
                out,
                "\n{} --> {}\n{sprite_url}#xywh={x},{y},{},{}\n",
                timestamp(start),
                timestamp(end),
                self.tile_width,
                self.tile_height
            );
        }
        out
    }
}

/// `HH:MM:SS.mmm`.
fn timestamp(secs: f64) -> String {
    let ms = (secs.max(0.0) * 1000.0).round() as u64;
    let (h, m, s, ms) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    format!("{h:02}:{m:02}:{s:02}.{ms:03}")
}

impl Runner {
    /// Sprite sheet (JPEG) of evenly spaced thumbnails for seek previews.
    pub async fn storyboard(
        &self,
        input: &Input<'_>,
        out_jpg: &Path,
        cancel: &CancellationToken,
    ) -> Result<Storyboard, VideoError> {
        let (w, h) = display_size(input.probe)
            .ok_or_else(|| VideoError::Failed("no video stream".into()))?;
        let fps = input.probe.video.as_ref().map_or(0.0, |v| v.fps);
        let plan = Storyboard::plan(w, h, input.probe.duration_secs, fps);
        // select picks the first frame at or after each tile's time (a hair
        // early to absorb timestamp rounding) and stops after `count`.
        let graph = format!(
            "[0:v:0]select='lt(selected_n,{n})*gte(t+0.001,selected_n*{i})',\
             scale={tw}:{th},setsar=1,tile={c}x{r}:nb_frames={n},format=yuvj420p[t]",
            n = plan.count,
            i = plan.interval_secs,
            tw = plan.tile_width,
            th = plan.tile_height,
            c = plan.columns,
            r = plan.rows,
        );
        let work = self.workdir()?;
        let mut args = self.args();
        args.input(input.container.demuxer(), &input.url().await?)
            .push_all(["-filter_complex", &graph, "-map", "[t]"])
            .push_all(["-frames:v", "1", "-c:v", "mjpeg", "-q:v", "4"])
            .no_metadata()
            .push_all(["-f", "image2pipe", &out_url(out_jpg)?]);
        let mut redact = redactions(input.path, "input");
        redact.extend(redactions(out_jpg, "output"));
        let job = Job {
            args,
            cwd: work.path(),
            duration_secs: input.probe.duration_secs,
            redact,
            progress: &no_progress,
        };
        self.run(job, cancel).await?;
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_clips_get_one_tile_per_second() {
        let p = Storyboard::plan(640, 360, 5.0, 30.0);
        assert_eq!(
            (p.count, p.columns, p.rows, p.interval_secs),
            (5, 5, 1, 1.0)
        );
        assert_eq!((p.tile_width, p.tile_height), (160, 90));
        let p = Storyboard::plan(640, 360, 25.02, 30.0);
        assert_eq!((p.count, p.columns, p.rows), (25, 10, 3));
    }

    #[test]
    fn long_clips_are_capped_at_100_tiles_and_portrait_tiles_stand_up() {
        let p = Storyboard::plan(1080, 1920, 3600.0, 30.0);
        assert_eq!(
            (p.interval_secs, p.count, p.columns, p.rows),
            (36.0, 100, 10, 10)
        );
        assert_eq!((p.tile_width, p.tile_height), (90, 160));
        let p = Storyboard::plan(640, 360, 0.0, 0.0);
        assert_eq!((p.count, p.columns, p.rows), (1, 1, 1));
    }

    #[test]
    fn vtt_cues_tile_the_sheet_and_end_at_the_duration() {
        let p = Storyboard::plan(640, 360, 12.5, 25.0);
        let vtt = p.vtt("s.jpg", 12.5);
        assert!(vtt.starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\ns.jpg#xywh=0,0,160,90\n"));
        assert!(vtt.contains("00:00:10.000 --> 00:00:11.000\ns.jpg#xywh=0,90,160,90\n"));
        assert!(vtt.ends_with("00:00:12.000 --> 00:00:12.500\ns.jpg#xywh=320,90,160,90\n"));
        assert_eq!(timestamp(3725.25), "01:02:05.250");
    }
}
