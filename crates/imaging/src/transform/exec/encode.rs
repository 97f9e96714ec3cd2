//! Encoding the final frames: one image, or an animation in libvips' toilet-roll layout
//! (frames stacked, `page-height`, `delay`, `loop`). Every output is stripped of metadata.

use crate::transform::{TransformFormat, TransformSpec};
use crate::vips::{Image, Result, VipsError};
use crate::webp;

/// libvips' and imgproxy's default quality.
const DEFAULT_QUALITY: u8 = 80;
/// AVIF encoder effort 0–9 (libvips' `effort` = 9 − aom's speed). AV1 encoding is slow:
/// measured on a 1920×1080 photo at Q80, libvips' default 4 took 1.6 s (36 kB), 2 took
/// 0.28 s (33 kB), 0 took 0.16 s but grew to 43 kB. 2 is the fast setting that does not
/// cost size, in the spirit of imgproxy's fast AVIF defaults.
const AVIF_EFFORT: u8 = 2;

/// Joins `frames` into one image, an animation when there are several.
pub(super) fn join(frames: Vec<Image>, delays: Option<&[i32]>, loops: i32) -> Result<Image> {
    if frames.len() == 1 {
        return frames
            .into_iter()
            .next()
            .ok_or_else(|| VipsError("no frames".into()));
    }
    let page_height = frames.first().map_or(0, Image::height) as i32;
    let strip = Image::join_vertically(&frames)?;
    let ints = [(c"page-height", page_height), (c"loop", loops)];
    match delays {
        Some(d) => strip.with_fields(&ints, &[(c"delay", d)]),
        None => strip.with_fields(&ints, &[]),
    }
}

/// Encodes as `format` with the spec's quality, lossless and progressive options. JPEG has
/// no alpha, so it is flattened onto `bg`, else white.
pub(super) fn encode(
    image: &Image,
    format: TransformFormat,
    spec: &TransformSpec,
) -> Result<Vec<u8>> {
    let quality = spec.quality.unwrap_or(DEFAULT_QUALITY).clamp(1, 100);
    match format {
        TransformFormat::Jpeg => {
            let flat;
            let image = if image.has_alpha() {
                let bg = spec.background.unwrap_or([255; 3]).map(f64::from);
                flat = image.flatten(&bg)?;
                &flat
            } else {
                image
            };
            image.jpeg_with(quality, spec.progressive)
        }
        TransformFormat::Png => image.png(spec.progressive),
        TransformFormat::Webp => webp::strip_metadata(&image.webp_with(quality, spec.lossless)?)
            .ok_or_else(|| VipsError("libvips wrote a malformed WebP".into())),
        TransformFormat::Avif => image.avif(quality, spec.lossless, AVIF_EFFORT),
        TransformFormat::Gif => image.gif(spec.progressive),
    }
}
