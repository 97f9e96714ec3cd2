//! Still pictures of a clip: a display-oriented poster frame that avoids
//! black frames, and a waveform picture for audio-only files.

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use crate::run::{no_progress, out_url, redactions, Input, Job, Runner};
use crate::VideoError;

/// A poster frame that was written, with its pixel size.
#[derive(Clone, Debug, PartialEq)]
pub struct Poster {
    pub width: u32,
    pub height: u32,
    /// Where in the clip the frame was taken.
    pub at_secs: f64,
}

/// Mean luma (0–255) below which a frame counts as black.
const BLACK_LUMA: f64 = 20.0;
/// Fractions of the duration tried when the requested frame is black.
const FALLBACKS: [f64; 3] = [0.25, 0.5, 0.75];

impl Runner {
    /// Full-resolution, display-oriented frame as PNG at `out_png`, taken at
    /// `at_secs` (clamped into the clip). A (nearly) black frame is replaced
    /// by the first non-black one at 25 %, 50 % or 75 % of the duration, or
    /// by the brightest if all are dark.
    pub async fn poster(
        &self,
        input: &Input<'_>,
        at_secs: f64,
        out_png: &Path,
        cancel: &CancellationToken,
    ) -> Result<Poster, VideoError> {
        if input.probe.video.is_none() {
            return Err(VideoError::Failed("no video stream".into()));
        }
        let duration = input.probe.duration_secs;
        let mut offsets = vec![clamp_into(at_secs, duration)];
        for f in FALLBACKS {
            let t = clamp_into(duration * f, duration);
            if t > offsets[0] + 0.1 && offsets.iter().all(|o| (o - t).abs() > 0.1) {
                offsets.push(t);
            }
        }
        let work = self.workdir()?;
        let mut best: Option<(f64, PathBuf, f64)> = None;
        for (i, at) in offsets.into_iter().enumerate() {
            let png = work.path().join(format!("poster-{i}.png"));
            let Some(luma) = self.grab(input, at, &png, work.path(), cancel).await? else {
                continue;
            };
            if best.as_ref().is_none_or(|b| luma > b.0) {
                best = Some((luma, png, at));
            }
            if luma >= BLACK_LUMA {
                break;
            }
        }
        let (_, png, at_secs) =
            best.ok_or_else(|| VideoError::Failed("no frame could be decoded".into()))?;
        tokio::fs::copy(&png, out_png).await?;
        let (width, height) = png_size(&tokio::fs::read(&png).await?)
            .ok_or_else(|| VideoError::Failed("poster is not a PNG".into()))?;
        Ok(Poster {
            width,
            height,
            at_secs,
        })
    }

    /// Writes the frame at `at` as PNG plus a 16x16 gray copy in the same run
    /// and returns the copy's mean luma; `None` when no frame came out.
    async fn grab(
        &self,
        input: &Input<'_>,
        at: f64,
        png: &Path,
        work: &Path,
        cancel: &CancellationToken,
    ) -> Result<Option<f64>, VideoError> {
        let gray = work.join("luma.gray");
        let mut args = self.args();
        args.push_all(["-ss", &format!("{at:.3}")])
            .input(input.container.demuxer(), &input.url().await?)
            .push("-filter_complex")
            .push("[0:v:0]split=2[p][g];[g]scale=16:16,format=gray[l]")
            .push_all(["-map", "[p]", "-frames:v", "1", "-c:v", "png"])
            .no_metadata()
            .push_all(["-f", "image2pipe", &out_url(png)?])
            .push_all(["-map", "[l]", "-frames:v", "1", "-f", "rawvideo"])
            .push(out_url(&gray)?);
        let mut redact = redactions(input.path, "input");
        redact.extend(redactions(work, "work"));
        let job = Job {
            args,
            cwd: work,
            duration_secs: 1.0,
            redact,
            progress: &no_progress,
        };
        self.run(job, cancel).await?;
        let pixels = tokio::fs::read(&gray).await.unwrap_or_default();
        let png_len = tokio::fs::metadata(png).await.map_or(0, |m| m.len());
        if pixels.is_empty() || png_len == 0 {
            return Ok(None);
        }
        let sum: u64 = pixels.iter().map(|&p| u64::from(p)).sum();
        Ok(Some(sum as f64 / pixels.len() as f64))
    }

    /// For audio-only files: a `width`×`height` waveform picture as PNG.
    pub async fn waveform(
        &self,
        input: &Input<'_>,
        out_png: &Path,
        width: u32,
        height: u32,
        cancel: &CancellationToken,
    ) -> Result<(), VideoError> {
        if input.probe.audio.is_none() {
            return Err(VideoError::NoAudio);
        }
        if !(1..=8192).contains(&width) || !(1..=8192).contains(&height) {
            return Err(VideoError::Failed("waveform size out of range".into()));
        }
        let work = self.workdir()?;
        let graph =
            format!("[0:a:0]showwavespic=s={width}x{height}:split_channels=0:colors=0x3ea6ff[w]");
        let mut args = self.args();
        args.input(input.container.demuxer(), &input.url().await?)
            .push_all(["-filter_complex", &graph, "-map", "[w]"])
            .push_all(["-frames:v", "1", "-c:v", "png"])
            .no_metadata()
            .push_all(["-f", "image2pipe", &out_url(out_png)?]);
        let mut redact = redactions(input.path, "input");
        redact.extend(redactions(out_png, "output"));
        let job = Job {
            args,
            cwd: work.path(),
            duration_secs: input.probe.duration_secs,
            redact,
            progress: &no_progress,
        };
        self.run(job, cancel).await
    }
}

/// Keeps a seek inside the clip, short of the very end where no frame is left.
fn clamp_into(at: f64, duration: f64) -> f64 {
    let at = if at.is_finite() { at } else { 0.0 };
    let last = (duration - 0.5).max(duration * 0.5).max(0.0);
    at.clamp(0.0, last)
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 24 || &bytes[..8] != b"\x89PNG\r\n\x1a\n" || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    Some((be(&bytes[16..20]), be(&bytes[20..24])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeks_stay_inside_the_clip() {
        assert_eq!(clamp_into(-3.0, 10.0), 0.0);
        assert_eq!(clamp_into(99.0, 10.0), 9.5);
        assert_eq!(clamp_into(f64::NAN, 10.0), 0.0);
        assert_eq!(clamp_into(0.4, 0.4), 0.2);
    }

    #[test]
    fn png_size_reads_ihdr() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend(640u32.to_be_bytes());
        png.extend(360u32.to_be_bytes());
        assert_eq!(png_size(&png), Some((640, 360)));
        assert_eq!(png_size(b"GIF89a"), None);
    }
}
