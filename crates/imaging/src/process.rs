//! Presets and the upload pipeline: decode once, derive every preset, encode, hash.
//!
//! `process_file` opens the original exactly once, with libvips' `thumbnail` at the size the
//! largest preset needs (JPEG shrink-on-load, EXIF auto-rotate, sRGB), renders that
//! "mezzanine" into memory, and derives every other preset from it. Smaller presets made
//! from a 1920 px mezzanine look the same as from the original and cost a fraction, since
//! entropy decoding of the original dominates.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::phash::{phash, HASH_SIDE};
use crate::probe::{c_path, loader_for};
use crate::vips::{self, Image, Resize, Space};
use crate::{bmp, webp, ImageFormat, ImagingError, OutputFormat};

/// How a preset fits the image into its box. Neither ever enlarges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Fill the box, cropping the centre (the result is smaller only if the source is).
    Cover,
    /// Fit inside the box, keeping the aspect ratio.
    Inside,
}

/// One derivative size, encoded in each of `formats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresetSpec {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub fit: Fit,
    pub formats: Vec<OutputFormat>,
    /// Encoder quality, 1..=100.
    pub quality: u8,
}

/// thumb 256×256 cover, small 640×640 inside, large 1920×1920 inside; WebP and JPEG, Q80.
pub fn default_presets() -> Vec<PresetSpec> {
    let preset = |name: &str, side, fit| PresetSpec {
        name: name.into(),
        width: side,
        height: side,
        fit,
        formats: vec![OutputFormat::Webp, OutputFormat::Jpeg],
        quality: 80,
    };
    vec![
        preset("thumb", 256, Fit::Cover),
        preset("small", 640, Fit::Inside),
        preset("large", 1920, Fit::Inside),
    ]
}

/// Names of the [`proxy_presets`], smallest first.
pub const PROXIES: [&str; 2] = ["proxy-1280", "proxy"];

/// Whether a preset name is one of the internal proxies (not a published variant).
pub fn is_proxy(name: &str) -> bool {
    PROXIES.contains(&name)
}

/// High-quality 1280 and 2560 px JPEGs (Q95, 4:4:4 — libvips turns chroma subsampling off from
/// Q90) of the original, made from the same single decode as the presets. On-the-fly
/// transforms whose output fits inside one start from the smallest such proxy instead
/// of the original: decoding it costs a fraction of decoding a large (often
/// progressive) original, and the result is visually the same — measured on a
/// 5120×2880 progressive photo, resizes to 1900/1300/640 px from the 2560 proxy and to
/// 1200/640/300 px from the 1280 one are within 47–54 dB PSNR of resizes of the
/// original, far below what the output's own Q80 encoding changes.
pub fn proxy_presets() -> Vec<PresetSpec> {
    let proxy = |name: &str, side| PresetSpec {
        name: name.into(),
        width: side,
        height: side,
        fit: Fit::Inside,
        formats: vec![OutputFormat::Jpeg],
        quality: 95,
    };
    vec![proxy(PROXIES[0], 1280), proxy(PROXIES[1], 2560)]
}

/// One encoded derivative.
#[derive(Clone, PartialEq, Eq)]
pub struct Rendition {
    pub preset: String,
    pub format: OutputFormat,
    pub width: u32,
    pub height: u32,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Rendition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendition")
            .field("preset", &self.preset)
            .field("format", &self.format)
            .field("size", &format_args!("{}x{}", self.width, self.height))
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// The result of processing one upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    /// Size of the original after EXIF orientation.
    pub width: u32,
    pub height: u32,
    /// 64-bit perceptual hash; compare with [`crate::hamming`].
    pub phash: u64,
    /// ThumbHash of the picture (20 to 30 bytes): a blurred placeholder a page paints
    /// while the renditions load. Empty if it could not be made.
    pub placeholder: Vec<u8>,
    pub renditions: Vec<Rendition>,
}

/// WebP cannot encode a side above 16383 px.
const MAX_OUTPUT_SIDE: u32 = 16_383;

/// Makes every preset of `path` (identified by [`crate::sniff`] as `format`), in order.
///
/// Blocking and CPU-heavy: run it on a blocking thread. The caller must have probed the file
/// and passed [`crate::check_limits`] first; this function trusts the header's size.
/// Animated GIF/WebP and multi-page TIFF/HEIF use their first frame/page (the primary image
/// for HEIF). Outputs are sRGB, stripped of all metadata; JPEG alpha is flattened onto white.
pub fn process_file(
    path: &Path,
    format: ImageFormat,
    presets: &[PresetSpec],
) -> Result<Processed, ImagingError> {
    crate::ensure_started()?;
    validate(presets)?;
    let result = run(path, format, presets);
    // The caller's thread pool may retire this thread at any time; libvips keeps per-thread
    // buffers that are only freed this way.
    vips::release_thread_buffers();
    result
}

fn run(
    path: &Path,
    format: ImageFormat,
    presets: &[PresetSpec],
) -> Result<Processed, ImagingError> {
    let (mezzanine, width, height) = decode_mezzanine(path, format, presets)?;
    let vips_err = |e: vips::VipsError| ImagingError::Vips(e.0);
    let (images, hash_source) = derive_all(&mezzanine, presets).map_err(vips_err)?;
    let mut renditions = Vec::with_capacity(presets.len() * 2);
    for (preset, image) in presets.iter().zip(&images) {
        for &format in &preset.formats {
            let bytes = encode(image, format, preset.quality).map_err(vips_err)?;
            renditions.push(Rendition {
                preset: preset.name.clone(),
                format,
                width: image.width(),
                height: image.height(),
                bytes,
            });
        }
    }
    let phash = hash(&hash_source).map_err(vips_err)?;
    // Only cosmetic: a picture without a placeholder is still processed.
    let placeholder = placeholder(&hash_source).unwrap_or_default();
    Ok(Processed {
        width,
        height,
        phash,
        placeholder,
        renditions,
    })
}

fn validate(presets: &[PresetSpec]) -> Result<(), ImagingError> {
    for p in presets {
        let bad = |why: &str| ImagingError::InvalidPreset(format!("{}: {why}", p.name));
        if p.width == 0 || p.height == 0 || p.width.max(p.height) > MAX_OUTPUT_SIDE {
            return Err(bad("sides must be 1..=16383"));
        }
        if !(1..=100).contains(&p.quality) {
            return Err(bad("quality must be 1..=100"));
        }
    }
    Ok(())
}

/// Decodes the original once, at the smallest size every preset can be derived from without
/// enlarging, into memory. Returns it with the original's upright size.
fn decode_mezzanine(
    path: &Path,
    format: ImageFormat,
    presets: &[PresetSpec],
) -> Result<(Image, u32, u32), ImagingError> {
    let corrupt = |e: vips::VipsError| ImagingError::Corrupt(e.0);
    if format == ImageFormat::Bmp {
        let full = bmp::decode(path)?;
        let (w, h) = (full.width(), full.height());
        let (mw, mh) = mezzanine_box(w, h, presets);
        let mezzanine = full
            .thumbnail(mw, mh, Resize::Inside)
            .and_then(|m| m.copy_memory());
        return Ok((mezzanine.map_err(corrupt)?, w, h));
    }
    let loader = loader_for(format)?;
    let cpath = c_path(path)?;
    // Header only: the upright size and whether an ICC profile needs applying.
    let header = vips::load_header(loader, &cpath).map_err(corrupt)?;
    let (mut w, mut h) = (header.width(), header.height());
    if header.orientation() >= 5 {
        std::mem::swap(&mut w, &mut h);
    }
    let has_profile = header.has_field(c"icc-profile-data");
    drop(header);

    let (mw, mh) = mezzanine_box(w, h, presets);
    let thumb = vips::thumbnail_file(&cpath, mw, mh, has_profile).map_err(corrupt)?;
    // `thumbnail` picks its loader by content; make sure it agrees with our sniffing.
    if let Some(used) = thumb.get_string(c"vips-loader") {
        if used != loader.nick() {
            return Err(ImagingError::Unsupported(format!(
                "{} content loaded by {used}",
                format.as_str()
            )));
        }
    }
    // Metadata goes here, once, so no derivative can carry it (see `without_metadata`).
    let mezzanine = thumb.copy_memory().and_then(|m| m.without_metadata());
    Ok((mezzanine.map_err(corrupt)?, w, h))
}

/// The box (in upright pixels) that covers every preset's need: the largest scale any
/// preset asks for, capped at 1 (never enlarge), and never below what hashing needs.
pub(crate) fn mezzanine_box(w: u32, h: u32, presets: &[PresetSpec]) -> (u32, u32) {
    let hash_side = HASH_SIDE as u32 * 2;
    let hash_scale = scale(hash_side, hash_side, Fit::Inside, w, h);
    let s = presets
        .iter()
        .map(|p| scale(p.width, p.height, p.fit, w, h))
        .fold(hash_scale, f64::max)
        .min(1.0);
    let side = |v: u32| (f64::from(v) * s).ceil().max(1.0) as u32;
    (side(w), side(h))
}

/// The factor that brings a `w`×`h` image to a `bw`×`bh` box (before any crop).
fn scale(bw: u32, bh: u32, fit: Fit, w: u32, h: u32) -> f64 {
    let (sx, sy) = (f64::from(bw) / f64::from(w), f64::from(bh) / f64::from(h));
    match fit {
        Fit::Inside => sx.min(sy),
        Fit::Cover => sx.max(sy),
    }
}

/// Every preset's image, plus the smallest uncropped one (for the pHash).
///
/// Presets are derived largest first, each from the smallest uncropped image made so far
/// that still has the pixels it needs: resampling cost follows the source's size, and a
/// 640 px image is plenty for a 256 px crop (measured: 5 ms from 640×360 against
/// 150 ms from the 1920×1080 mezzanine).
fn derive_all(mezzanine: &Image, presets: &[PresetSpec]) -> vips::Result<(Vec<Image>, Image)> {
    let (mw, mh) = (mezzanine.width(), mezzanine.height());
    let need = |p: &PresetSpec| scale(p.width, p.height, p.fit, mw, mh).min(1.0);
    let mut order: Vec<usize> = (0..presets.len()).collect();
    order.sort_by(|&a, &b| need(&presets[b]).total_cmp(&need(&presets[a])));

    let mut sources = vec![mezzanine.share()];
    let mut images: Vec<Option<Image>> = presets.iter().map(|_| None).collect();
    for i in order {
        let p = &presets[i];
        let s = need(p);
        let (nw, nh) = (
            (f64::from(mw) * s).round() as u32,
            (f64::from(mh) * s).round() as u32,
        );
        let source = sources
            .iter()
            .filter(|img| img.width() >= nw && img.height() >= nh)
            .min_by_key(|img| img.width())
            .unwrap_or(mezzanine);
        let image = derive(source, p)?;
        if p.fit == Fit::Inside {
            sources.push(image.share());
        }
        images[i] = Some(image);
    }
    let smallest = sources.into_iter().min_by_key(|img| img.width());
    let hash_source = smallest.unwrap_or_else(|| mezzanine.share());
    Ok((images.into_iter().flatten().collect(), hash_source))
}

/// A preset's image from an in-memory source, rendered once (it is encoded up to twice).
fn derive(source: &Image, p: &PresetSpec) -> vips::Result<Image> {
    let fits = source.width() <= p.width && source.height() <= p.height;
    if p.fit == Fit::Inside && fits {
        return Ok(source.share());
    }
    let mode = match p.fit {
        Fit::Cover => Resize::Cover,
        Fit::Inside => Resize::Inside,
    };
    source.thumbnail(p.width, p.height, mode)?.copy_memory()
}

fn encode(image: &Image, format: OutputFormat, quality: u8) -> vips::Result<Vec<u8>> {
    match format {
        OutputFormat::Webp => webp::strip_metadata(&image.webp(quality)?)
            .ok_or_else(|| vips::VipsError("libvips wrote a malformed WebP".into())),
        OutputFormat::Jpeg if image.has_alpha() => image.flatten_white()?.jpeg(quality),
        OutputFormat::Jpeg => image.jpeg(quality),
    }
}

fn hash(image: &Image) -> vips::Result<u64> {
    let side = HASH_SIDE as u32;
    let mut small = image.thumbnail(side, side, Resize::Exact)?;
    if small.has_alpha() {
        small = small.flatten_white()?;
    }
    let bytes = small.grey8()?.to_bytes()?;
    let grey: &[u8; HASH_SIDE * HASH_SIDE] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| vips::VipsError(format!("hash image of {} bytes", bytes.len())))?;
    Ok(phash(grey))
}

/// The ThumbHash of `image`, from an sRGB copy of at most 100×100 (what the algorithm takes).
fn placeholder(image: &Image) -> vips::Result<Vec<u8>> {
    let small = image.thumbnail(100, 100, Resize::Inside)?;
    let srgb = if small.is_srgb8() {
        small
    } else {
        small.colourspace(Space::Srgb)?.cast_uchar()?
    };
    let rgba = match srgb.bands() {
        4 => srgb,
        3 => srgb.bandjoin_const(&[255.0])?,
        n => return Err(vips::VipsError(format!("placeholder of {n} bands"))),
    };
    let (w, h) = (rgba.width() as usize, rgba.height() as usize);
    let bytes = rgba.to_bytes()?;
    if w == 0 || h == 0 || w > 100 || h > 100 || bytes.len() != w * h * 4 {
        return Err(vips::VipsError(format!(
            "placeholder image {w}x{h}, {} bytes",
            bytes.len()
        )));
    }
    Ok(thumbhash::rgba_to_thumb_hash(w, h, &bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_presets_are_thumb_small_large_in_webp_and_jpeg() {
        let p = default_presets();
        let names: Vec<_> = p
            .iter()
            .map(|p| (p.name.as_str(), p.width, p.fit))
            .collect();
        assert_eq!(
            names,
            [
                ("thumb", 256, Fit::Cover),
                ("small", 640, Fit::Inside),
                ("large", 1920, Fit::Inside)
            ]
        );
        assert!(p.iter().all(|p| p.formats.len() == 2 && p.quality == 80));
        assert!(validate(&p).is_ok());
    }

    #[test]
    fn mezzanine_is_the_largest_preset_and_never_enlarges() {
        let p = default_presets();
        assert_eq!(mezzanine_box(5120, 2880, &p), (1920, 1080));
        assert_eq!(mezzanine_box(300, 200, &p), (300, 200));
    }

    #[test]
    fn a_cover_preset_on_a_panorama_widens_the_mezzanine() {
        // Inside 1920 would give 1920×24, too thin for a 256×256 cover crop.
        assert_eq!(
            mezzanine_box(16_000, 200, &default_presets()),
            (16_000, 200)
        );
        assert_eq!(
            mezzanine_box(40_000, 2_000, &default_presets()),
            (5120, 256)
        );
    }

    #[test]
    fn invalid_presets_are_refused() {
        let mut p = default_presets();
        p[0].quality = 0;
        assert!(matches!(validate(&p), Err(ImagingError::InvalidPreset(_))));
        let mut p = default_presets();
        p[1].width = 20_000;
        assert!(matches!(validate(&p), Err(ImagingError::InvalidPreset(_))));
    }
}
