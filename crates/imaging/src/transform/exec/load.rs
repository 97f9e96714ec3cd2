//! Probing, limits and decoding of the source (and of watermark images): the header is read
//! and checked before any pixel is decoded, then `thumbnail` decodes straight to the planned
//! size (shrink-on-load, EXIF auto-orient, sRGB) and the frames come out as 8-bit sRGB.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::probe::{c_path, loader_for};
use crate::vips::{self, Image, Loader, Resize, Space, Watchdog};
use crate::{bmp, check_limits, probe_file, sniff, ImageFormat, ImagingError, Limits, SNIFF_LEN};

use super::plan::Plan;
use super::TransformLimits;

/// What the headers say about a source, after its limits were checked.
pub(super) struct Source {
    pub format: ImageFormat,
    /// `None` for BMP, which libvips cannot load (see `bmp.rs`).
    pub loader: Option<Loader>,
    /// Upright size of one frame (EXIF orientation applied).
    pub width: u32,
    pub height: u32,
    pub frames: u32,
    /// An embedded ICC profile to convert from.
    pub has_profile: bool,
}

/// Decoded frames, resized to the plan, plus what an animated save needs.
pub(super) struct Frames {
    pub frames: Vec<Image>,
    /// Per-frame delays in ms and the loop count, when every frame was loaded.
    pub delays: Option<Vec<i32>>,
    pub loops: i32,
}

pub(super) fn corrupt(e: vips::VipsError) -> ImagingError {
    ImagingError::Corrupt(e.0)
}

/// Probes `path` (sniffed as `format`) and checks `limits`, reading headers only.
pub(super) fn open(
    path: &Path,
    format: ImageFormat,
    limits: &TransformLimits,
) -> Result<Source, ImagingError> {
    let probe = probe_file(path, format)?;
    let bounds = Limits {
        max_pixels: limits.max_pixels,
        max_side: limits.max_side,
        max_frames: limits.max_frames,
    };
    check_limits(&probe, &bounds).map_err(|e| ImagingError::TooLarge(e.to_string()))?;
    let mut source = Source {
        format,
        loader: None,
        width: probe.width,
        height: probe.height,
        frames: probe.frames,
        has_profile: false,
    };
    if format == ImageFormat::Bmp {
        return Ok(source);
    }
    let loader = loader_for(format)?;
    let header = vips::load_header(loader, &c_path(path)?).map_err(corrupt)?;
    if header.orientation() >= 5 {
        (source.width, source.height) = (source.height, source.width);
    }
    source.has_profile = header.has_field(c"icc-profile-data");
    source.loader = Some(loader);
    Ok(source)
}

/// Sniffs and probes a watermark image file under the same limits as a source.
pub(super) fn open_sniffed(path: &Path, limits: &TransformLimits) -> Result<Source, ImagingError> {
    let mut head = Vec::with_capacity(SNIFF_LEN);
    File::open(path)?
        .take(SNIFF_LEN as u64)
        .read_to_end(&mut head)?;
    let format = sniff(&head)
        .ok_or_else(|| ImagingError::Unsupported("watermark is not an accepted image".into()))?;
    open(path, format, limits)
}

/// Decodes the frames `plan` needs: the crop region of page `page` (or of every page when
/// `all_frames`), resized to `plan.resized`.
pub(super) fn decode(
    path: &Path,
    source: &Source,
    plan: &Plan,
    page: Option<u32>,
    watchdog: &Watchdog,
) -> Result<Frames, ImagingError> {
    let Some(loader) = source.loader else {
        let full = to_srgb8(&bmp::decode(path)?).map_err(corrupt)?;
        watchdog.watch(&full);
        let frame = crop_and_resize(&full, plan, 1.0).map_err(corrupt)?;
        return Ok(Frames {
            frames: vec![frame],
            delays: None,
            loops: 0,
        });
    };
    // Without a crop, decode straight to the final size; with one, decode the whole source
    // at a scale that still leaves the crop enough pixels.
    let scale = if plan.cropped {
        plan.crop_load_scale()
    } else {
        1.0
    };
    let (w, h) = if plan.cropped {
        let side = |v: u32| (f64::from(v) * scale).round().max(1.0) as u32;
        (side(source.width), side(source.height))
    } else {
        plan.resized
    };
    let options = match page {
        None => "[n=-1]".to_string(),
        Some(0) => String::new(),
        Some(n) => format!("[page={n}]"),
    };
    let mut spec = c_path(path)?.into_bytes();
    spec.extend_from_slice(options.as_bytes());
    // `c_path` refused names with '[' or NUL, so the only options are the ones added here.
    let spec = CString::new(spec).map_err(|_| ImagingError::Unsupported("file name".into()))?;
    let strip = vips::thumbnail_file_exact(&spec, w, h, source.has_profile).map_err(corrupt)?;
    watchdog.watch(&strip);
    if let Some(used) = strip.get_string(c"vips-loader") {
        if used != loader.nick() {
            return Err(ImagingError::Unsupported(format!(
                "{} content loaded by {used}",
                source.format.as_str()
            )));
        }
    }
    let pages = if page.is_none() {
        strip.get_int(c"n-pages").unwrap_or(1).max(1) as u32
    } else {
        1
    };
    let delays = (pages > 1).then(|| strip.get_array_int(c"delay")).flatten();
    let loops = strip.get_int(c"loop").unwrap_or(0);
    let strip = to_srgb8(&strip.without_metadata().map_err(corrupt)?).map_err(corrupt)?;
    let mut frames = split_pages(&strip, pages).map_err(corrupt)?;
    if plan.cropped {
        frames = frames
            .iter()
            .map(|f| crop_and_resize(f, plan, scale))
            .collect::<Result<_, _>>()
            .map_err(corrupt)?;
    }
    Ok(Frames {
        frames,
        delays: delays.filter(|d| d.len() == pages as usize),
        loops,
    })
}

/// Cuts a toilet-roll strip of `pages` equal frames into frames.
fn split_pages(strip: &Image, pages: u32) -> vips::Result<Vec<Image>> {
    if pages <= 1 {
        return Ok(vec![strip.share()]);
    }
    let page_height = strip.height() / pages;
    if page_height == 0 || page_height * pages != strip.height() {
        return Err(vips::VipsError(format!(
            "{} px high strip of {pages} frames",
            strip.height()
        )));
    }
    (0..pages)
        .map(|i| strip.extract_area(0, i * page_height, strip.width(), page_height))
        .collect()
}

/// Cuts `plan.region` (scaled by `scale`, the scale `frame` was decoded at) out of `frame`
/// and resizes it to exactly `plan.resized`.
fn crop_and_resize(frame: &Image, plan: &Plan, scale: f64) -> vips::Result<Image> {
    let r = plan.region;
    let (fw, fh) = (frame.width(), frame.height());
    let at = |v: u32, max: u32| ((f64::from(v) * scale).floor() as u32).min(max - 1);
    let (x, y) = (at(r.x, fw), at(r.y, fh));
    let len =
        |v: u32, from: u32, max: u32| ((f64::from(v) * scale).round() as u32).clamp(1, max - from);
    let (w, h) = (len(r.width, x, fw), len(r.height, y, fh));
    let region = frame.extract_area(x, y, w, h)?;
    if (w, h) == plan.resized {
        return Ok(region);
    }
    let (tw, th) = plan.resized;
    region.thumbnail(tw, th, Resize::Exact)
}

/// Every later step works on 8-bit sRGB (plus alpha): grey, 16-bit and other sources are
/// converted once here.
pub(super) fn to_srgb8(image: &Image) -> vips::Result<Image> {
    if image.is_srgb8() {
        return Ok(image.share());
    }
    let srgb = image.colourspace(Space::Srgb)?;
    if srgb.is_srgb8() {
        Ok(srgb)
    } else {
        srgb.cast_uchar()?.tagged_srgb()
    }
}
