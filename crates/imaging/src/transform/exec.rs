//! Running a [`TransformSpec`] on libvips.
//!
//! One pass, lazily: headers are probed and every limit checked (`load::open`,
//! `Plan::check`) before anything is decoded; `thumbnail` then decodes straight to the
//! planned size (shrink-on-load, EXIF auto-orient, ICC → sRGB, premultiplied Lanczos3);
//! each frame goes through cut/canvas → rotate/flip → filters → `bg` → `radius` → `pad` →
//! watermark; the encoder pulls the pixels through that pipeline once. A watchdog cancels
//! the pipeline when `limits.timeout` passes.

mod adjust;
mod encode;
mod load;
mod overlay;
mod plan;

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{TransformFormat, TransformSpec};
use crate::vips::{self, Image, Watchdog};
use crate::{ImageFormat, ImagingError, Limits};

use adjust::Fill;
use overlay::Mark;
use plan::Plan;

/// Bounds for one transform: input and output pixel limits, frames, wall time.
#[derive(Debug, Clone)]
pub struct TransformLimits {
    pub max_pixels: u64,
    pub max_side: u32,
    pub max_frames: u32,
    pub timeout: Duration,
}

impl Default for TransformLimits {
    /// The upload limits ([`Limits::default`]) and 30 seconds.
    fn default() -> Self {
        let l = Limits::default();
        TransformLimits {
            max_pixels: l.max_pixels,
            max_side: l.max_side,
            max_frames: l.max_frames,
            timeout: Duration::from_secs(30),
        }
    }
}

/// What a watermark name resolves to.
#[derive(Debug, Clone)]
pub enum WatermarkSource {
    /// An image file (a configured file, or a media item's original fetched to disk).
    Image(PathBuf),
    /// Text rendered with a system font (Pango font description, e.g. "DejaVu Sans Bold").
    Text {
        text: String,
        font: String,
        rgba: [u8; 4],
    },
}

/// A configured watermark preset, resolved by the server.
#[derive(Debug, Clone)]
pub struct ResolvedWatermark {
    pub source: WatermarkSource,
    /// The preset's own opacity, 0–100 (multiplied with `wmop_`).
    pub opacity: u8,
    /// Default watermark width as a percent of the output width when `wmscale_` is absent.
    pub width_percent: u8,
    /// Margin from the edges in output pixels.
    pub margin: u32,
}

/// An encoded transform result.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub format: TransformFormat,
    /// Size of the output (of one frame, for animations).
    pub width: u32,
    pub height: u32,
}

/// Applies `spec` to the image at `path` (sniffed as `input`) and encodes it as `output`.
///
/// Blocking and CPU-heavy: run it on a blocking thread. Refuses inputs, watermark inputs
/// and outputs beyond `limits` from their headers ([`ImagingError::TooLarge`]), and gives
/// up with [`ImagingError::Timeout`] once `limits.timeout` has passed.
pub fn transform_file(
    path: &Path,
    input: ImageFormat,
    spec: &TransformSpec,
    watermark: Option<&ResolvedWatermark>,
    output: TransformFormat,
    limits: &TransformLimits,
) -> Result<Encoded, ImagingError> {
    let source = Input {
        path,
        format: input,
        plan_size: None,
    };
    guarded(&source, spec, watermark, output, limits)
}

/// Runs one transform under its watchdog and cleans up libvips' thread state after.
fn guarded(
    source: &Input<'_>,
    spec: &TransformSpec,
    watermark: Option<&ResolvedWatermark>,
    output: TransformFormat,
    limits: &TransformLimits,
) -> Result<Encoded, ImagingError> {
    crate::ensure_started()?;
    let watchdog = Watchdog::start(limits.timeout).map_err(|e| ImagingError::Vips(e.0))?;
    let result = run(source, spec, watermark, output, limits, &watchdog);
    // Whatever failed once the time was up failed because the pipeline was killed.
    let result = match result {
        Err(_) if watchdog.fired() => Err(ImagingError::Timeout),
        r => r,
    };
    drop(watchdog);
    // The caller's pool may retire this thread; libvips' per-thread buffers go with it.
    vips::release_thread_buffers();
    result
}

/// Like [`transform_file`], but `path` is a smaller stand-in (a proxy) for an original of
/// `original_size` (upright): output sizes are planned for the original, so they come out
/// exactly as if the original had been read. Only for transforms without a crop
/// rectangle, whose coordinates are in the original's pixels.
pub fn transform_proxy_file(
    path: &Path,
    input: ImageFormat,
    original_size: (u32, u32),
    spec: &TransformSpec,
    watermark: Option<&ResolvedWatermark>,
    output: TransformFormat,
    limits: &TransformLimits,
) -> Result<Encoded, ImagingError> {
    if spec.crop.is_some() {
        return Err(ImagingError::InvalidTransform(
            "a proxy cannot serve a crop".into(),
        ));
    }
    let source = Input {
        path,
        format: input,
        plan_size: Some(original_size),
    };
    guarded(&source, spec, watermark, output, limits)
}

/// What to read, and the size to plan for when it stands in for a larger original.
struct Input<'a> {
    path: &'a Path,
    format: ImageFormat,
    plan_size: Option<(u32, u32)>,
}

fn run(
    input: &Input<'_>,
    spec: &TransformSpec,
    watermark: Option<&ResolvedWatermark>,
    output: TransformFormat,
    limits: &TransformLimits,
    watchdog: &Watchdog,
) -> Result<Encoded, ImagingError> {
    let (path, input_format) = (input.path, input.format);
    let source = load::open(path, input_format, limits)?;
    let (plan_w, plan_h) = input.plan_size.unwrap_or((source.width, source.height));
    let plan = Plan::new(plan_w, plan_h, spec)?;
    plan.check(limits, output)?;
    let page = page_to_load(spec, input_format, source.frames, output)?;
    let mark = match (watermark, &spec.watermark) {
        (Some(wm), Some(ws)) => overlay::watermark(wm, ws, plan.output, limits, watchdog)?,
        (None, Some(ws)) => {
            return Err(ImagingError::InvalidTransform(format!(
                "watermark `{}` is not configured",
                ws.name
            )))
        }
        (_, None) => None,
    };
    let decoded = load::decode(path, &source, &plan, page, watchdog)?;
    let fill = Fill::new(spec, output);
    let frames = decoded
        .frames
        .into_iter()
        .map(|f| finish_frame(f, &plan, spec, &fill, mark.as_ref()))
        .collect::<vips::Result<Vec<_>>>()
        .map_err(classify)?;
    let (width, height) = frames.first().map_or((0, 0), |f| (f.width(), f.height()));
    let image = encode::join(frames, decoded.delays.as_deref(), decoded.loops).map_err(classify)?;
    watchdog.watch(&image);
    let bytes = encode::encode(&image, output, spec).map_err(classify)?;
    Ok(Encoded {
        bytes,
        format: output,
        width,
        height,
    })
}

/// Which page to decode: `None` for all of them (an animation kept animated), else one.
fn page_to_load(
    spec: &TransformSpec,
    input: ImageFormat,
    frames: u32,
    output: TransformFormat,
) -> Result<Option<u32>, ImagingError> {
    let animated_in = matches!(input, ImageFormat::Gif | ImageFormat::Webp) && frames > 1;
    let animated_out = matches!(output, TransformFormat::Gif | TransformFormat::Webp);
    match spec.frame {
        None if animated_in && animated_out => Ok(None),
        None => Ok(Some(0)),
        Some(n) if n < frames => Ok(Some(n)),
        Some(n) => Err(ImagingError::InvalidTransform(format!(
            "frame {n} asked of an image with {frames} frame(s)"
        ))),
    }
}

/// The per-frame steps after the resize, in the order the spec documents.
fn finish_frame(
    frame: Image,
    plan: &Plan,
    spec: &TransformSpec,
    fill: &Fill,
    mark: Option<&Mark>,
) -> vips::Result<Image> {
    let frame = if adjust::needs_memory(spec) {
        frame.copy_memory()?
    } else {
        frame
    };
    let frame = adjust::fit(&frame, plan, spec, fill)?;
    let frame = adjust::orient(frame, spec)?;
    let frame = adjust::filters(frame, spec)?;
    let mut frame = adjust::background(frame, spec)?;
    if let Some(r) = spec.radius.filter(|r| *r > 0) {
        // With `bg`, the cut-off corners take its colour rather than staying transparent.
        frame = adjust::background(overlay::round_corners(frame, r)?, spec)?;
    }
    if let Some(p) = spec.pad.filter(|p| *p > 0) {
        frame = overlay::pad(frame, p, fill)?;
    }
    match mark {
        Some(mark) => mark.apply(frame),
        None => Ok(frame),
    }
}

/// Errors surfacing while the encoder pulls pixels come from decoding (a truncated or
/// corrupt source: the caller's fault) or from libvips itself (ours); libvips names the
/// loader in the former.
fn classify(e: vips::VipsError) -> ImagingError {
    let from_loader = ["load", "VipsJpeg", "VipsForeignLoad"]
        .iter()
        .any(|name| e.0.contains(name));
    if from_loader {
        ImagingError::Corrupt(e.0)
    } else {
        ImagingError::Vips(e.0)
    }
}
