//! Operations that move pixels around without changing them: crops, turns, flips, canvases,
//! joins. All lazy; nothing here decodes until something downstream asks for pixels.

use libvips::bindings as ffi;
use std::ffi::c_int;

use super::{call, wrap, Doubles, Image, Result, VipsError, END};

/// A quarter turn, clockwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Turn {
    Deg90,
    Deg180,
    Deg270,
}

fn coord(v: u32) -> c_int {
    c_int::try_from(v).unwrap_or(c_int::MAX)
}

impl Image {
    /// The `width`×`height` window at `x`,`y`; libvips refuses windows outside the image.
    pub(crate) fn extract_area(&self, x: u32, y: u32, width: u32, height: u32) -> Result<Image> {
        let (x, y, w, h) = (coord(x), coord(y), coord(width), coord(height));
        // SAFETY: live image, out-pointer, END-terminated options.
        call(|out| unsafe { ffi::vips_extract_area(self.ptr(), out, x, y, w, h, END) })
    }

    /// `smartcrop` with the `attention` strategy (skin tones, saturation, edges), the
    /// strategy imgproxy's `sm` gravity uses. Computes statistics of the whole input first.
    pub(crate) fn smartcrop(&self, width: u32, height: u32) -> Result<Image> {
        let attention = ffi::VipsInteresting_VIPS_INTERESTING_ATTENTION as c_int;
        // SAFETY: as above.
        call(|out| unsafe {
            ffi::vips_smartcrop(
                self.ptr(),
                out,
                coord(width),
                coord(height),
                c"interesting".as_ptr(),
                attention,
                END,
            )
        })
    }

    /// Places the image at `x`,`y` on a `width`×`height` canvas of `background` (one value
    /// per band).
    pub(crate) fn embed(
        &self,
        x: u32,
        y: u32,
        width: u32,
        height: u32,
        background: &[f64],
    ) -> Result<Image> {
        let extend = ffi::VipsExtend_VIPS_EXTEND_BACKGROUND as c_int;
        let bg = Doubles::new(background)?;
        // SAFETY: as above; `bg` outlives the call and libvips refs what it keeps.
        call(|out| unsafe {
            ffi::vips_embed(
                self.ptr(),
                out,
                coord(x),
                coord(y),
                coord(width),
                coord(height),
                c"extend".as_ptr(),
                extend,
                c"background".as_ptr(),
                bg.0,
                END,
            )
        })
    }

    pub(crate) fn rotate(&self, turn: Turn) -> Result<Image> {
        let angle = match turn {
            Turn::Deg90 => ffi::VipsAngle_VIPS_ANGLE_D90,
            Turn::Deg180 => ffi::VipsAngle_VIPS_ANGLE_D180,
            Turn::Deg270 => ffi::VipsAngle_VIPS_ANGLE_D270,
        };
        // SAFETY: as above.
        call(|out| unsafe { ffi::vips_rot(self.ptr(), out, angle, END) })
    }

    /// Mirrors left–right (`horizontal`) or top–bottom.
    pub(crate) fn flip(&self, horizontal: bool) -> Result<Image> {
        let direction = if horizontal {
            ffi::VipsDirection_VIPS_DIRECTION_HORIZONTAL
        } else {
            ffi::VipsDirection_VIPS_DIRECTION_VERTICAL
        };
        // SAFETY: as above.
        call(|out| unsafe { ffi::vips_flip(self.ptr(), out, direction, END) })
    }

    /// `across`×`down` copies of the image side by side.
    pub(crate) fn replicate(&self, across: u32, down: u32) -> Result<Image> {
        // SAFETY: as above.
        call(|out| unsafe { ffi::vips_replicate(self.ptr(), out, coord(across), coord(down), END) })
    }

    /// This image with `sub` pasted over it at `x`,`y` (no blending; same size as `self`).
    pub(crate) fn insert(&self, sub: &Image, x: u32, y: u32) -> Result<Image> {
        // SAFETY: two live images, out-pointer, END-terminated options.
        call(|out| unsafe { ffi::vips_insert(self.ptr(), sub.ptr(), out, coord(x), coord(y), END) })
    }

    /// Stacks images of equal width top to bottom (the "toilet roll" layout libvips uses
    /// for animations).
    pub(crate) fn join_vertically(images: &[Image]) -> Result<Image> {
        let mut ptrs: Vec<*mut ffi::VipsImage> = images.iter().map(Image::ptr).collect();
        let n = c_int::try_from(ptrs.len()).map_err(|_| VipsError("too many frames".into()))?;
        if n == 0 {
            return Err(VipsError("nothing to join".into()));
        }
        // SAFETY: `ptrs` holds `n` live images for the duration of the call; arrayjoin takes
        // its own references.
        call(|out| unsafe {
            ffi::vips_arrayjoin(
                ptrs.as_mut_ptr(),
                out,
                n,
                c"across".as_ptr(),
                1 as c_int,
                END,
            )
        })
    }

    /// An all-zero `width`×`height` image of `bands` uchar bands.
    pub(crate) fn black(width: u32, height: u32, bands: u32) -> Result<Image> {
        // SAFETY: out-pointer, END-terminated options.
        call(|out| unsafe {
            ffi::vips_black(
                out,
                coord(width),
                coord(height),
                c"bands".as_ptr(),
                coord(bands),
                END,
            )
        })
    }

    /// A two-band image whose pixels hold their own x and y coordinates.
    pub(crate) fn xyz(width: u32, height: u32) -> Result<Image> {
        // SAFETY: out-pointer, END-terminated options.
        call(|out| unsafe { ffi::vips_xyz(out, coord(width), coord(height), END) })
    }

    /// An image of the same size (and format) whose every pixel is `values`.
    pub(crate) fn constant_like(&self, values: &[f64]) -> Result<Image> {
        let n = c_int::try_from(values.len()).map_err(|_| VipsError("too many bands".into()))?;
        // SAFETY: `values` holds `n` doubles; libvips copies them.
        let img = unsafe { ffi::vips_image_new_from_image(self.ptr(), values.as_ptr(), n) };
        wrap(0, img)
    }
}
