//! Operations that compute new pixel values: colour spaces, arithmetic, filters,
//! compositing and text. All lazy except `percent`, which reads the whole image.

use std::ffi::{c_int, CStr};

use libvips::bindings as ffi;

use super::{call, last_error, Doubles, Image, Result, VipsError, END};

/// The colour spaces the transforms work in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Space {
    Srgb,
    /// One band of luminance (plus alpha).
    Grey,
    Lab,
    Lch,
}

impl Space {
    fn interpretation(self) -> ffi::VipsInterpretation {
        match self {
            Space::Srgb => ffi::VipsInterpretation_VIPS_INTERPRETATION_sRGB,
            Space::Grey => ffi::VipsInterpretation_VIPS_INTERPRETATION_B_W,
            Space::Lab => ffi::VipsInterpretation_VIPS_INTERPRETATION_LAB,
            Space::Lch => ffi::VipsInterpretation_VIPS_INTERPRETATION_LCH,
        }
    }
}

fn len(values: &[f64]) -> Result<c_int> {
    c_int::try_from(values.len()).map_err(|_| VipsError("array too long".into()))
}

impl Image {
    /// Whether the pixels are 8-bit sRGB (the form every transform step expects).
    pub(crate) fn is_srgb8(&self) -> bool {
        // SAFETY: live image.
        unsafe {
            ffi::vips_image_get_interpretation(self.ptr())
                == ffi::VipsInterpretation_VIPS_INTERPRETATION_sRGB
                && ffi::vips_image_get_format(self.ptr()) == ffi::VipsBandFormat_VIPS_FORMAT_UCHAR
        }
    }

    /// Converts to `space`; alpha is carried along unchanged.
    pub(crate) fn colourspace(&self, space: Space) -> Result<Image> {
        let space = space.interpretation();
        // SAFETY: live image, out-pointer, END-terminated options.
        call(|out| unsafe { ffi::vips_colourspace(self.ptr(), out, space, END) })
    }

    /// Casts to 8 bits per band, clipping out-of-range values.
    pub(crate) fn cast_uchar(&self) -> Result<Image> {
        let uchar = ffi::VipsBandFormat_VIPS_FORMAT_UCHAR;
        // SAFETY: as above.
        call(|out| unsafe { ffi::vips_cast(self.ptr(), out, uchar, END) })
    }

    /// `a * in + b` per band (one value, or one per band); with `uchar` the result is
    /// rounded and clipped to 0–255, otherwise it is float.
    pub(crate) fn linear(&self, a: &[f64], b: &[f64], uchar: bool) -> Result<Image> {
        if a.len() != b.len() {
            return Err(VipsError("linear: a and b differ in length".into()));
        }
        let n = len(a)?;
        // SAFETY: both arrays hold `n` doubles for the duration of the call.
        call(|out| unsafe {
            ffi::vips_linear(
                self.ptr(),
                out,
                a.as_ptr(),
                b.as_ptr(),
                n,
                c"uchar".as_ptr(),
                c_int::from(uchar),
                END,
            )
        })
    }

    /// Every pixel's bands times a 3×3 `matrix` (rows are output bands).
    pub(crate) fn recomb(&self, matrix: &[f64; 9]) -> Result<Image> {
        // SAFETY: libvips copies the nine values into a new matrix image we then own.
        let m = unsafe { ffi::vips_image_new_matrix_from_array(3, 3, matrix.as_ptr(), 9) };
        let m = super::wrap(0, m)?;
        // SAFETY: two live images, out-pointer, END-terminated options.
        call(|out| unsafe { ffi::vips_recomb(self.ptr(), out, m.ptr(), END) })
    }

    /// `in ^ (1 / exponent)` scaled to the range of the format (a lookup table for uchar).
    pub(crate) fn gamma(&self, exponent: f64) -> Result<Image> {
        // SAFETY: as above; "exponent" is a double option.
        call(|out| unsafe { ffi::vips_gamma(self.ptr(), out, c"exponent".as_ptr(), exponent, END) })
    }

    pub(crate) fn gaussblur(&self, sigma: f64) -> Result<Image> {
        // SAFETY: as above.
        call(|out| unsafe { ffi::vips_gaussblur(self.ptr(), out, sigma, END) })
    }

    /// libvips' unsharp mask on the L channel of LabS, with its default curve.
    pub(crate) fn sharpen(&self, sigma: f64) -> Result<Image> {
        // SAFETY: as above; "sigma" is a double option.
        call(|out| unsafe { ffi::vips_sharpen(self.ptr(), out, c"sigma".as_ptr(), sigma, END) })
    }

    /// The value below which `percent` % of the pixels lie (reads the whole image).
    pub(crate) fn percent(&self, percent: f64) -> Result<i32> {
        let mut threshold: c_int = 0;
        // SAFETY: live image, valid out-pointer.
        let rc = unsafe { ffi::vips_percent(self.ptr(), percent, &mut threshold, END) };
        if rc != 0 {
            return Err(last_error());
        }
        Ok(threshold)
    }

    /// Composites the alpha channel onto `background` (one value per colour band).
    pub(crate) fn flatten(&self, background: &[f64]) -> Result<Image> {
        let bg = Doubles::new(background)?;
        // SAFETY: live image; `bg` outlives the call.
        call(|out| unsafe { ffi::vips_flatten(self.ptr(), out, c"background".as_ptr(), bg.0, END) })
    }

    /// `n` bands starting at `first`.
    pub(crate) fn extract_bands(&self, first: u32, n: u32) -> Result<Image> {
        let (first, n) = (first as c_int, n as c_int);
        // SAFETY: as above; libvips checks the band range.
        call(|out| unsafe { ffi::vips_extract_band(self.ptr(), out, first, c"n".as_ptr(), n, END) })
    }

    /// This image's bands followed by `other`'s.
    pub(crate) fn bandjoin(&self, other: &Image) -> Result<Image> {
        let mut pair = [self.ptr(), other.ptr()];
        // SAFETY: two live images for the duration of the call.
        call(|out| unsafe { ffi::vips_bandjoin(pair.as_mut_ptr(), out, 2, END) })
    }

    /// Appends constant bands (e.g. an opaque alpha of 255).
    pub(crate) fn bandjoin_const(&self, values: &[f64]) -> Result<Image> {
        let n = len(values)?;
        let mut values = values.to_vec();
        // SAFETY: `values` holds `n` doubles; libvips copies them.
        call(|out| unsafe {
            ffi::vips_bandjoin_const(self.ptr(), out, values.as_mut_ptr(), n, END)
        })
    }

    /// The mean of the bands, as one band.
    pub(crate) fn bandmean(&self) -> Result<Image> {
        // SAFETY: as above.
        call(|out| unsafe { ffi::vips_bandmean(self.ptr(), out, END) })
    }

    /// Each pixel to the power `exponent`.
    pub(crate) fn pow(&self, exponent: f64) -> Result<Image> {
        // SAFETY: as above.
        call(|out| unsafe { ffi::vips_pow_const1(self.ptr(), out, exponent, END) })
    }

    /// Pixel-wise product (float for uchar inputs).
    pub(crate) fn multiply(&self, other: &Image) -> Result<Image> {
        // SAFETY: two live images.
        call(|out| unsafe { ffi::vips_multiply(self.ptr(), other.ptr(), out, END) })
    }

    /// Colour times alpha, as float, so resampling and blurring do not bleed the colour of
    /// transparent pixels.
    pub(crate) fn premultiply(&self) -> Result<Image> {
        // SAFETY: as above.
        call(|out| unsafe { ffi::vips_premultiply(self.ptr(), out, END) })
    }

    pub(crate) fn unpremultiply(&self) -> Result<Image> {
        // SAFETY: as above.
        call(|out| unsafe { ffi::vips_unpremultiply(self.ptr(), out, END) })
    }

    /// `overlay` (sRGB with alpha) blended over this image with its top-left at `x`,`y`.
    pub(crate) fn composite_over(&self, overlay: &Image, x: i32, y: i32) -> Result<Image> {
        let over = ffi::VipsBlendMode_VIPS_BLEND_MODE_OVER;
        // SAFETY: two live images, out-pointer, END-terminated int options.
        call(|out| unsafe {
            ffi::vips_composite2(
                self.ptr(),
                overlay.ptr(),
                out,
                over,
                c"x".as_ptr(),
                x as c_int,
                c"y".as_ptr(),
                y as c_int,
                END,
            )
        })
    }

    /// The same pixels, labelled as sRGB (for images built from constants).
    pub(crate) fn tagged_srgb(&self) -> Result<Image> {
        let srgb = ffi::VipsInterpretation_VIPS_INTERPRETATION_sRGB;
        // SAFETY: as above.
        call(|out| unsafe {
            ffi::vips_copy(self.ptr(), out, c"interpretation".as_ptr(), srgb, END)
        })
    }

    /// One line of `text` (Pango markup) rendered with `font` as an 8-bit coverage mask,
    /// at the largest size that fits `width`×`height` (libvips' autofit).
    pub(crate) fn text(text: &CStr, font: &CStr, width: u32, height: u32) -> Result<Image> {
        let no_wrap = ffi::VipsTextWrap_VIPS_TEXT_WRAP_NONE as c_int;
        let (w, h) = (
            width.clamp(1, 100_000) as c_int,
            height.clamp(1, 100_000) as c_int,
        );
        // SAFETY: NUL-terminated strings, out-pointer, END-terminated options.
        call(|out| unsafe {
            ffi::vips_text(
                out,
                text.as_ptr(),
                c"font".as_ptr(),
                font.as_ptr(),
                c"width".as_ptr(),
                w,
                c"height".as_ptr(),
                h,
                c"wrap".as_ptr(),
                no_wrap,
                END,
            )
        })
    }
}
