//! Per-frame steps between the resize and the overlays: the `fit_cover` cut or
//! `fit_contain` canvas, the user's rotation and flips, the filters, and `bg`.
//!
//! Frames arrive as 8-bit sRGB, with or without alpha, and leave the same way. Filters that
//! must not touch alpha run on the colour bands only (`on_colour`).

use crate::transform::{Gravity, Rotation, TransformFormat, TransformSpec};
use crate::vips::{Image, Result, Space, Turn};

use super::plan::Plan;

/// The colour of new pixels (the `fit_contain` canvas, `pad`, rounded corners): `bg`, else
/// transparent where the output format keeps alpha, else white.
pub(super) struct Fill {
    rgb: [f64; 3],
    transparent: bool,
}

impl Fill {
    pub fn new(spec: &TransformSpec, output: TransformFormat) -> Fill {
        match spec.background {
            Some(c) => Fill {
                rgb: c.map(f64::from),
                transparent: false,
            },
            None => Fill {
                rgb: [255.0; 3],
                transparent: output != TransformFormat::Jpeg,
            },
        }
    }

    /// `image` ready to be extended, with an alpha band added when the fill is transparent,
    /// and the background value for each of its bands.
    pub fn prepare(&self, image: &Image) -> Result<(Image, Vec<f64>)> {
        let image = if self.transparent && !image.has_alpha() {
            image.bandjoin_const(&[255.0])?
        } else {
            image.share()
        };
        let mut bg = self.rgb.to_vec();
        if image.has_alpha() {
            bg.push(if self.transparent { 0.0 } else { 255.0 });
        }
        Ok((image, bg))
    }
}

/// Where `gravity` anchors a box inside a larger one, as fractions of the free space.
pub(super) fn anchor(gravity: Gravity) -> (f64, f64) {
    match gravity {
        Gravity::North => (0.5, 0.0),
        Gravity::South => (0.5, 1.0),
        Gravity::East => (1.0, 0.5),
        Gravity::West => (0.0, 0.5),
        Gravity::NorthEast => (1.0, 0.0),
        Gravity::NorthWest => (0.0, 0.0),
        Gravity::SouthEast => (1.0, 1.0),
        Gravity::SouthWest => (0.0, 1.0),
        Gravity::Center | Gravity::Smart | Gravity::Focal(..) => (0.5, 0.5),
    }
}

/// The offset that puts `inner` at `fraction` of the space left in `outer`.
pub(super) fn offset(outer: u32, inner: u32, fraction: f64) -> u32 {
    (f64::from(outer.saturating_sub(inner)) * fraction).round() as u32
}

/// Whether the steps after the resize need random access to the resized frame; the loaders
/// stream top to bottom, so such frames are rendered to memory first (they are output-sized,
/// which the limits bound).
pub(super) fn needs_memory(spec: &TransformSpec) -> bool {
    spec.rotate != Rotation::None || spec.flip_v || spec.normalize || spec.gravity == Gravity::Smart
}

/// The `fit_cover` cut (by gravity, smartcrop or focal point) or the `fit_contain` canvas.
pub(super) fn fit(frame: &Image, plan: &Plan, spec: &TransformSpec, fill: &Fill) -> Result<Image> {
    if let Some((bw, bh)) = plan.cut {
        let (w, h) = (frame.width(), frame.height());
        let (bw, bh) = (bw.min(w), bh.min(h));
        return match spec.gravity {
            Gravity::Smart => frame.smartcrop(bw, bh),
            Gravity::Focal(fx, fy) => {
                // A window of the box's size centred on the point, clamped to the image.
                let centre = |size: u32, f: f32| f64::from(size) * f64::from(f.clamp(0.0, 1.0));
                let start = |c: f64, size: u32, b: u32| {
                    (c - f64::from(b) / 2.0)
                        .round()
                        .clamp(0.0, f64::from(size - b)) as u32
                };
                let x = start(centre(w, fx), w, bw);
                let y = start(centre(h, fy), h, bh);
                frame.extract_area(x, y, bw, bh)
            }
            g => {
                let (ax, ay) = anchor(g);
                frame.extract_area(offset(w, bw, ax), offset(h, bh, ay), bw, bh)
            }
        };
    }
    if let Some((cw, ch)) = plan.canvas {
        let (frame, bg) = fill.prepare(frame)?;
        let (ax, ay) = anchor(spec.gravity);
        let (x, y) = (
            offset(cw, frame.width(), ax),
            offset(ch, frame.height(), ay),
        );
        return frame.embed(x, y, cw, ch, &bg);
    }
    Ok(frame.share())
}

/// `rot_*` then `flip_h` / `flip_v`.
pub(super) fn orient(frame: Image, spec: &TransformSpec) -> Result<Image> {
    let mut frame = match spec.rotate {
        Rotation::None => frame,
        Rotation::Deg90 => frame.rotate(Turn::Deg90)?,
        Rotation::Deg180 => frame.rotate(Turn::Deg180)?,
        Rotation::Deg270 => frame.rotate(Turn::Deg270)?,
    };
    if spec.flip_h {
        frame = frame.flip(true)?;
    }
    if spec.flip_v {
        frame = frame.flip(false)?;
    }
    Ok(frame)
}

/// The classic sepia matrix (as in CSS `sepia(1)`), rows R, G, B.
const SEPIA: [f64; 9] = [
    0.393, 0.769, 0.189, //
    0.349, 0.686, 0.168, //
    0.272, 0.534, 0.131,
];

/// The filters, in a fixed order: tone first (`norm`, `bright`/`contrast`, `sat`, `gamma`),
/// then colour effects (`gray`, `sepia`), then spatial ones (`blur`, `sharpen`), so a
/// URL's meaning does not depend on the order of its tokens.
pub(super) fn filters(mut frame: Image, spec: &TransformSpec) -> Result<Image> {
    if spec.normalize {
        frame = normalize(&frame)?;
    }
    if spec.brightness != 0 || spec.contrast != 0 {
        // In sRGB: contrast scales around mid-grey (−100 flattens, +100 doubles), brightness
        // shifts by up to ±255.
        let c = 1.0 + f64::from(spec.contrast.clamp(-100, 100)) / 100.0;
        let b = 128.0 * (1.0 - c) + 2.55 * f64::from(spec.brightness.clamp(-100, 100));
        frame = on_colour(&frame, |rgb| rgb.linear(&[c; 3], &[b; 3], true))?;
    }
    if spec.saturation != 0 {
        // Chroma in LCh scales saturation without moving lightness or hue.
        let k = 1.0 + f64::from(spec.saturation.clamp(-100, 100)) / 100.0;
        let lch = frame.colourspace(Space::Lch)?;
        let mut a = vec![1.0, k, 1.0];
        a.resize(lch.bands() as usize, 1.0);
        let b = vec![0.0; a.len()];
        frame = srgb8(&lch.linear(&a, &b, false)?.colourspace(Space::Srgb)?)?;
    }
    if let Some(g) = spec.gamma {
        // out = in^(1/g): above 1 brightens the mid-tones.
        let g = f64::from(g).clamp(0.1, 10.0);
        frame = on_colour(&frame, |rgb| rgb.gamma(g))?;
    }
    if spec.gray {
        frame = frame.colourspace(Space::Grey)?.colourspace(Space::Srgb)?;
    }
    if spec.sepia {
        frame = on_colour(&frame, |rgb| rgb.recomb(&SEPIA)?.cast_uchar())?;
    }
    if let Some(sigma) = spec.blur.filter(|s| *s > 0.0) {
        frame = blur(&frame, f64::from(sigma).min(1000.0))?;
    }
    if let Some(sigma) = spec.sharpen.filter(|s| *s > 0.0) {
        let sigma = f64::from(sigma).min(100.0);
        frame = on_colour(&frame, |rgb| rgb.sharpen(sigma))?;
    }
    srgb8(&frame)
}

/// `bg_RRGGBB`: flattens alpha onto the colour.
pub(super) fn background(frame: Image, spec: &TransformSpec) -> Result<Image> {
    match spec.background {
        Some(c) if frame.has_alpha() => frame.flatten(&c.map(f64::from)),
        _ => Ok(frame),
    }
}

/// Gaussian blur; with alpha, on premultiplied values so transparent pixels' colour does not
/// bleed into the visible ones.
fn blur(frame: &Image, sigma: f64) -> Result<Image> {
    if !frame.has_alpha() {
        return frame.gaussblur(sigma);
    }
    let blurred = frame.premultiply()?.gaussblur(sigma)?.unpremultiply()?;
    blurred.cast_uchar()?.tagged_srgb()
}

/// Stretches lightness so the 1st and 99th percentiles become black and white (like sharp's
/// `normalise`): a linear map of L* in Lab, which leaves hue and chroma alone.
fn normalize(frame: &Image) -> Result<Image> {
    let lab = frame.colourspace(Space::Lab)?;
    let lightness = lab.extract_bands(0, 1)?.linear(&[2.55], &[0.0], true)?;
    let (low, high) = (lightness.percent(1.0)?, lightness.percent(99.0)?);
    if high <= low {
        return Ok(frame.share());
    }
    let (low, high) = (f64::from(low) / 2.55, f64::from(high) / 2.55);
    let scale = 100.0 / (high - low);
    let mut a = vec![scale, 1.0, 1.0];
    let mut b = vec![-low * scale, 0.0, 0.0];
    a.resize(lab.bands() as usize, 1.0);
    b.resize(a.len(), 0.0);
    srgb8(&lab.linear(&a, &b, false)?.colourspace(Space::Srgb)?)
}

/// Runs `f` on the colour bands and puts the alpha band (if any) back unchanged.
fn on_colour(frame: &Image, f: impl FnOnce(&Image) -> Result<Image>) -> Result<Image> {
    if !frame.has_alpha() {
        return f(frame);
    }
    let n = frame.bands();
    let colour = frame.extract_bands(0, n - 1)?;
    let alpha = frame.extract_bands(n - 1, 1)?;
    f(&colour)?.bandjoin(&alpha)
}

/// Back to 8-bit sRGB after a step that may leave float or another space.
pub(super) fn srgb8(frame: &Image) -> Result<Image> {
    super::load::to_srgb8(frame)
}
