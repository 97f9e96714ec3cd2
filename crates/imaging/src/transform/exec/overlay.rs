//! The last per-frame steps: rounded corners, padding, and the watermark (an image or a line
//! of text, placed by gravity or tiled), composited with `composite2` over.

use std::ffi::CString;

use crate::transform::{Gravity, TransformSpec, WatermarkSpec};
use crate::vips::{self, Image, Result, Watchdog};
use crate::ImagingError;

use super::adjust::{anchor, offset, Fill};
use super::load::{self, corrupt};
use super::{ResolvedWatermark, TransformLimits, WatermarkSource};

/// `radius_N`: an anti-aliased rounded-corner mask multiplied into alpha (corners become
/// transparent; `bg` or the JPEG flattening fills them later).
pub(super) fn round_corners(frame: Image, radius: u32) -> Result<Image> {
    let (w, h) = (frame.width(), frame.height());
    let r = radius.min(w / 2).min(h / 2);
    if r == 0 {
        return Ok(frame);
    }
    let corner = corner_mask(r)?;
    let mask = Image::black(w, h, 1)?
        .linear(&[1.0], &[255.0], true)?
        .insert(&corner, 0, 0)?
        .insert(&corner.flip(true)?, w - r, 0)?
        .insert(&corner.flip(false)?, 0, h - r)?
        .insert(&corner.rotate(vips::Turn::Deg180)?, w - r, h - r)?;
    if !frame.has_alpha() {
        return frame.bandjoin(&mask);
    }
    let n = frame.bands();
    let alpha = frame.extract_bands(n - 1, 1)?.multiply(&mask)?;
    let alpha = alpha.linear(&[1.0 / 255.0], &[0.0], true)?;
    frame.extract_bands(0, n - 1)?.bandjoin(&alpha)
}

/// The top-left `r`×`r` corner of a rounded rectangle as 8-bit coverage: each pixel's centre
/// distance `d` from the circle's centre gives `clamp(r + 0.5 - d, 0, 1)`.
fn corner_mask(r: u32) -> Result<Image> {
    let off = 0.5 - f64::from(r);
    let d = Image::xyz(r, r)?.linear(&[1.0, 1.0], &[off, off], false)?;
    let d2 = d.multiply(&d)?.bandmean()?.linear(&[2.0], &[0.0], false)?;
    let b = 255.0 * (f64::from(r) + 0.5);
    d2.pow(0.5)?.linear(&[-255.0], &[b], true)
}

/// `pad_N`: a border of the fill colour on every side.
pub(super) fn pad(frame: Image, pad: u32, fill: &Fill) -> Result<Image> {
    let (frame, bg) = fill.prepare(&frame)?;
    let (w, h) = (frame.width(), frame.height());
    let (pw, ph) = (w.saturating_add(2 * pad), h.saturating_add(2 * pad));
    frame.embed(pad, pad, pw, ph, &bg)
}

/// A watermark ready to composite: already sized, faded, placed or tiled.
pub(super) struct Mark {
    image: Image,
    x: i32,
    y: i32,
}

impl Mark {
    /// Composites the mark over `frame`, keeping the frame opaque if it was.
    pub fn apply(&self, frame: Image) -> Result<Image> {
        let had_alpha = frame.has_alpha();
        let out = frame.composite_over(&self.image, self.x, self.y)?;
        let out = if had_alpha {
            out
        } else {
            out.extract_bands(0, 3)?
        };
        super::adjust::srgb8(&out)
    }
}

/// Prepares `wm` for `width`×`height` frames, or `None` when the frame is too small to
/// hold it inside its margins.
pub(super) fn watermark(
    wm: &ResolvedWatermark,
    ws: &WatermarkSpec,
    (width, height): (u32, u32),
    limits: &TransformLimits,
    watchdog: &Watchdog,
) -> std::result::Result<Option<Mark>, ImagingError> {
    let margin = wm.margin;
    let (room_w, room_h) = if ws.tile {
        (width, height)
    } else {
        (
            width.saturating_sub(margin.saturating_mul(2)),
            height.saturating_sub(margin.saturating_mul(2)),
        )
    };
    if room_w == 0 || room_h == 0 {
        return Ok(None);
    }
    let percent = ws.scale.unwrap_or(wm.width_percent).clamp(1, 100);
    let want_w = ((u64::from(width) * u64::from(percent)) / 100).max(1) as u32;
    let want_w = want_w.min(room_w);
    let vips_err = |e: vips::VipsError| ImagingError::Vips(e.0);
    let mark = match &wm.source {
        WatermarkSource::Image(path) => image_mark(path, want_w, room_h, limits, watchdog)?,
        WatermarkSource::Text { text, font, rgba } => {
            text_mark(text, font, *rgba, want_w, room_h, watchdog).map_err(vips_err)?
        }
    };
    let opacity = f64::from(wm.opacity.min(100)) * f64::from(ws.opacity.min(100)) / 10_000.0;
    let mark = if opacity < 1.0 {
        mark.linear(&[1.0, 1.0, 1.0, opacity], &[0.0; 4], true)
            .map_err(vips_err)?
    } else {
        mark
    };
    let placed = if ws.tile {
        tile(&mark, margin, width, height)
    } else {
        let gravity = match ws.position {
            Gravity::Smart | Gravity::Focal(..) => Gravity::Center,
            g => g,
        };
        let (ax, ay) = anchor(gravity);
        let x = margin + offset(room_w, mark.width(), ax);
        let y = margin + offset(room_h, mark.height(), ay);
        Ok(Mark {
            image: mark,
            x: x as i32,
            y: y as i32,
        })
    };
    placed.map(Some).map_err(vips_err)
}

/// A watermark image: sniffed, probed and checked against the limits before it is decoded,
/// then decoded straight to `width` (or less, to fit `max_height`) as sRGB with alpha.
fn image_mark(
    path: &std::path::Path,
    width: u32,
    max_height: u32,
    limits: &TransformLimits,
    watchdog: &Watchdog,
) -> std::result::Result<Image, ImagingError> {
    let source = load::open_sniffed(path, limits)?;
    let (sw, sh) = (f64::from(source.width), f64::from(source.height));
    let mut size = (width, (f64::from(width) * sh / sw).round().max(1.0) as u32);
    if size.1 > max_height {
        size = (
            (f64::from(max_height) * sw / sh).round().max(1.0) as u32,
            max_height,
        );
    }
    let plan = super::plan::Plan::new(
        source.width,
        source.height,
        &TransformSpec {
            width: Some(size.0),
            height: Some(size.1),
            fit: crate::transform::ResizeFit::Fill,
            upscale: true,
            ..Default::default()
        },
    )?;
    let frames = load::decode(path, &source, &plan, Some(0), watchdog)?;
    let mark = frames
        .frames
        .into_iter()
        .next()
        .ok_or_else(|| ImagingError::Corrupt("watermark has no frames".into()))?;
    // Rendered now: it is small, and every frame of an animation reuses it.
    let mark = with_alpha(mark)
        .and_then(|m| m.copy_memory())
        .map_err(corrupt)?;
    watchdog.watch(&mark);
    Ok(mark)
}

/// A line of text in `rgba`, as large as fits `width`×`max_height`.
fn text_mark(
    text: &str,
    font: &str,
    rgba: [u8; 4],
    width: u32,
    max_height: u32,
    watchdog: &Watchdog,
) -> Result<Image> {
    let bad = |_| vips::VipsError("watermark text or font contains NUL".into());
    // vips_text reads Pango markup; the preset's text is shown literally.
    let markup = CString::new(escape_markup(text)).map_err(bad)?;
    let font = CString::new(font).map_err(bad)?;
    let coverage = Image::text(&markup, &font, width, max_height)?;
    watchdog.watch(&coverage);
    let [r, g, b, a] = rgba.map(f64::from);
    let colour = coverage.constant_like(&[r, g, b])?.tagged_srgb()?;
    let alpha = coverage.linear(&[a / 255.0], &[0.0], true)?;
    colour.bandjoin(&alpha)?.copy_memory()
}

fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn with_alpha(image: Image) -> Result<Image> {
    if image.has_alpha() {
        Ok(image)
    } else {
        image.bandjoin_const(&[255.0])
    }
}

/// `wmtile_1`: the mark repeated over the whole frame, `margin` apart, from the top-left.
fn tile(mark: &Image, margin: u32, width: u32, height: u32) -> Result<Mark> {
    let gap = margin.max(1);
    let (cw, ch) = (mark.width() + gap, mark.height() + gap);
    let cell = mark.embed(gap, gap, cw, ch, &[0.0; 4])?;
    let layer = cell
        .replicate(width.div_ceil(cw), height.div_ceil(ch))?
        .extract_area(0, 0, width, height)?;
    Ok(Mark {
        image: layer,
        x: 0,
        y: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::escape_markup;

    #[test]
    fn watermark_text_is_shown_literally_not_as_markup() {
        assert_eq!(
            escape_markup("<b>A&B</b> 'x'"),
            "&lt;b&gt;A&amp;B&lt;/b&gt; &#39;x&#39;"
        );
    }
}
