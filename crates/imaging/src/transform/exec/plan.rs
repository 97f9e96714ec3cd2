//! The geometry of a transform, worked out from the header before anything is decoded, so
//! output limits hold before any work and the loader knows how far it may shrink on load.

use crate::transform::{CropRect, ResizeFit, Rotation, TransformFormat, TransformSpec};
use crate::ImagingError;

use super::TransformLimits;

/// WebP's format limit per side.
const WEBP_MAX_SIDE: u64 = 16_383;

/// Sizes are (width, height) in pixels of one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Plan {
    /// The region of the upright source that is used: the crop rectangle, or all of it.
    pub region: CropRect,
    /// Whether `region` is a real crop (not the whole source).
    pub cropped: bool,
    /// The region's size after resizing.
    pub resized: (u32, u32),
    /// `fit_cover`: the box cut out of `resized` by gravity.
    pub cut: Option<(u32, u32)>,
    /// `fit_contain`: the canvas `resized` is placed on.
    pub canvas: Option<(u32, u32)>,
    /// The encoded size: after the cut or canvas, the rotation and the padding.
    pub output: (u32, u32),
}

impl Plan {
    /// Plans `spec` for an upright source of `width`×`height`.
    pub fn new(width: u32, height: u32, spec: &TransformSpec) -> Result<Plan, ImagingError> {
        let region = region(width, height, spec.crop)?;
        let (rw, rh) = (f64::from(region.width), f64::from(region.height));
        // `dpr_N` multiplies the CSS-pixel box; 0 (an unset field) means 1.
        let dpr = f64::from(spec.dpr.clamp(1, 4));
        let tw = spec.width.map(|w| (f64::from(w) * dpr).round());
        let th = spec.height.map(|h| (f64::from(h) * dpr).round());
        let (mut sx, mut sy) = match (tw, th) {
            (None, None) => (1.0, 1.0),
            (Some(w), None) => (w / rw, w / rw),
            (None, Some(h)) => (h / rh, h / rh),
            (Some(w), Some(h)) => match spec.fit {
                ResizeFit::Inside | ResizeFit::Contain => uniform((w / rw).min(h / rh)),
                ResizeFit::Cover | ResizeFit::Outside => uniform((w / rw).max(h / rh)),
                ResizeFit::Fill => (w / rw, h / rh),
            },
        };
        if !spec.upscale {
            // Per axis, so `fit_fill` never enlarges either side either.
            (sx, sy) = (sx.min(1.0), sy.min(1.0));
        }
        let side = |v: f64| v.round().clamp(1.0, f64::from(u32::MAX)) as u32;
        let resized = (side(rw * sx), side(rh * sy));
        let (cut, canvas) = match (tw, th, spec.fit) {
            (Some(w), Some(h), ResizeFit::Cover) => {
                let cut = (side(w).min(resized.0), side(h).min(resized.1));
                ((cut != resized).then_some(cut), None)
            }
            (Some(w), Some(h), ResizeFit::Contain) => {
                let canvas = (side(w).max(resized.0), side(h).max(resized.1));
                (None, (canvas != resized).then_some(canvas))
            }
            _ => (None, None),
        };
        let boxed = cut.or(canvas).unwrap_or(resized);
        let turned = match spec.rotate {
            Rotation::Deg90 | Rotation::Deg270 => (boxed.1, boxed.0),
            Rotation::None | Rotation::Deg180 => boxed,
        };
        let pad = spec.pad.unwrap_or(0).saturating_mul(2);
        let output = (turned.0.saturating_add(pad), turned.1.saturating_add(pad));
        Ok(Plan {
            cropped: spec.crop.is_some(),
            region,
            resized,
            cut,
            canvas,
            output,
        })
    }

    /// The size after the cut or canvas, before rotation and padding.
    pub fn boxed(&self) -> (u32, u32) {
        self.cut.or(self.canvas).unwrap_or(self.resized)
    }

    /// The scale at which to decode the whole source before cutting out the crop region:
    /// twice the final scale when that is below a half (so shrink-on-load still applies,
    /// the crop edges land within a quarter of an output pixel, and the last resize is a
    /// real Lanczos downscale), else full size.
    pub fn crop_load_scale(&self) -> f64 {
        let sx = f64::from(self.resized.0) / f64::from(self.region.width);
        let sy = f64::from(self.resized.1) / f64::from(self.region.height);
        let s = sx.max(sy);
        if s < 0.5 {
            2.0 * s
        } else {
            1.0
        }
    }

    /// Refuses plans whose intermediate or final images break `limits` or the format.
    pub fn check(
        &self,
        limits: &TransformLimits,
        format: TransformFormat,
    ) -> Result<(), ImagingError> {
        for (what, (w, h)) in [
            ("resized image", self.resized),
            ("output", self.boxed()),
            ("output", self.output),
        ] {
            let (w, h) = (u64::from(w), u64::from(h));
            if w.max(h) > u64::from(limits.max_side) {
                return Err(ImagingError::TooLarge(format!(
                    "the {what} would be {w}×{h} px; the longest side may be at most {} px",
                    limits.max_side
                )));
            }
            if w * h > limits.max_pixels {
                return Err(ImagingError::TooLarge(format!(
                    "the {what} would have {} px ({w}×{h}); at most {} px are allowed",
                    w * h,
                    limits.max_pixels
                )));
            }
        }
        let (w, h) = (u64::from(self.output.0), u64::from(self.output.1));
        if format == TransformFormat::Webp && w.max(h) > WEBP_MAX_SIDE {
            return Err(ImagingError::TooLarge(format!(
                "WebP output is limited to {WEBP_MAX_SIDE} px a side; {w}×{h} asked"
            )));
        }
        Ok(())
    }
}

fn uniform(s: f64) -> (f64, f64) {
    (s, s)
}

/// The crop rectangle clipped to the image; a rectangle that misses it is an error.
fn region(width: u32, height: u32, crop: Option<CropRect>) -> Result<CropRect, ImagingError> {
    let Some(c) = crop else {
        return Ok(CropRect {
            x: 0,
            y: 0,
            width,
            height,
        });
    };
    if c.x >= width || c.y >= height || c.width == 0 || c.height == 0 {
        return Err(ImagingError::InvalidTransform(format!(
            "crop {}:{}:{}:{} lies outside the {width}×{height} image",
            c.x, c.y, c.width, c.height
        )));
    }
    Ok(CropRect {
        x: c.x,
        y: c.y,
        width: c.width.min(width - c.x),
        height: c.height.min(height - c.y),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(w: u32, h: u32, spec: TransformSpec) -> Plan {
        Plan::new(w, h, &spec).unwrap()
    }

    fn boxed(w: Option<u32>, h: Option<u32>, fit: ResizeFit) -> TransformSpec {
        TransformSpec {
            width: w,
            height: h,
            fit,
            ..Default::default()
        }
    }

    #[test]
    fn width_only_keeps_the_aspect_ratio_like_vipsthumbnail() {
        let p = plan(5120, 2880, boxed(Some(300), None, ResizeFit::Inside));
        assert_eq!((p.resized, p.output), ((300, 169), (300, 169)));
    }

    #[test]
    fn each_fit_gives_its_box() {
        let src = (400, 200);
        let fits = [
            (ResizeFit::Inside, (100, 50), (100, 50)),
            (ResizeFit::Contain, (100, 50), (100, 100)),
            (ResizeFit::Cover, (200, 100), (100, 100)),
            (ResizeFit::Outside, (200, 100), (200, 100)),
            (ResizeFit::Fill, (100, 100), (100, 100)),
        ];
        for (fit, resized, output) in fits {
            let p = plan(src.0, src.1, boxed(Some(100), Some(100), fit));
            assert_eq!((p.resized, p.output), (resized, output), "{fit:?}");
        }
    }

    #[test]
    fn never_enlarges_unless_asked_and_dpr_multiplies() {
        let small = boxed(Some(800), None, ResizeFit::Inside);
        assert_eq!(plan(400, 200, small.clone()).output, (400, 200));
        let up = TransformSpec {
            upscale: true,
            ..small
        };
        assert_eq!(plan(400, 200, up).output, (800, 400));
        let dpr = TransformSpec {
            dpr: 2,
            ..boxed(Some(100), None, ResizeFit::Inside)
        };
        assert_eq!(plan(400, 200, dpr).output, (200, 100));
    }

    #[test]
    fn crop_rotation_and_padding_shape_the_output() {
        let spec = TransformSpec {
            crop: Some(CropRect {
                x: 350,
                y: 0,
                width: 100,
                height: 80,
            }),
            rotate: Rotation::Deg90,
            pad: Some(5),
            ..Default::default()
        };
        let p = plan(400, 200, spec);
        assert_eq!(p.region.width, 50, "clipped to the image");
        assert_eq!(p.output, (90, 60));
    }

    #[test]
    fn crops_outside_the_image_are_refused() {
        let spec = TransformSpec {
            crop: Some(CropRect {
                x: 400,
                y: 0,
                width: 10,
                height: 10,
            }),
            ..Default::default()
        };
        let err = Plan::new(400, 200, &spec).unwrap_err();
        assert!(matches!(err, ImagingError::InvalidTransform(_)), "{err}");
    }

    #[test]
    fn output_limits_name_the_limit() {
        let limits = TransformLimits {
            max_pixels: 1_000_000,
            max_side: 2_000,
            max_frames: 10,
            timeout: std::time::Duration::from_secs(1),
        };
        let big = TransformSpec {
            upscale: true,
            ..boxed(Some(3000), None, ResizeFit::Inside)
        };
        let err = plan(400, 200, big).check(&limits, TransformFormat::Jpeg);
        assert!(matches!(err, Err(ImagingError::TooLarge(m)) if m.contains("2000 px")));
        let ok = plan(400, 200, TransformSpec::default());
        assert!(ok.check(&limits, TransformFormat::Jpeg).is_ok());
    }
}
