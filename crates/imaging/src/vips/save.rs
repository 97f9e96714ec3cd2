//! Encoders for transform outputs, each told to strip metadata and named only with options
//! libvips 8.14 knows. Multi-page images (with `page-height`) become animations where the
//! format has them (GIF, WebP).

use std::ffi::c_int;
use std::ptr;

use libvips::bindings as ffi;

use super::{take_buffer, Image, Result, END, TRUE};

/// zlib level 6: libvips' and libpng's default, the usual size/speed balance.
const PNG_COMPRESSION: c_int = 6;
/// libvips' default WebP effort, as in [`Image::webp`].
const WEBP_EFFORT: c_int = 4;

impl Image {
    /// PNG, Adam7-interlaced when `interlace`.
    pub(crate) fn png(&self, interlace: bool) -> Result<Vec<u8>> {
        let (mut buf, mut len) = (ptr::null_mut(), 0);
        // SAFETY: live image, out-pointers, END-terminated options known to 8.14.
        let rc = unsafe {
            ffi::vips_pngsave_buffer(
                self.ptr(),
                &mut buf,
                &mut len,
                c"compression".as_ptr(),
                PNG_COMPRESSION,
                c"interlace".as_ptr(),
                c_int::from(interlace),
                c"strip".as_ptr(),
                TRUE,
                END,
            )
        };
        take_buffer(rc, buf, len)
    }

    /// WebP, lossy at `quality` or lossless; animated when the image has a `page-height`.
    /// 8.14 ignores `strip`: callers pass the result through `webp::strip_metadata`.
    pub(crate) fn webp_with(&self, quality: u8, lossless: bool) -> Result<Vec<u8>> {
        let (mut buf, mut len) = (ptr::null_mut(), 0);
        // SAFETY: as above.
        let rc = unsafe {
            ffi::vips_webpsave_buffer(
                self.ptr(),
                &mut buf,
                &mut len,
                c"Q".as_ptr(),
                c_int::from(quality),
                c"lossless".as_ptr(),
                c_int::from(lossless),
                c"strip".as_ptr(),
                TRUE,
                c"effort".as_ptr(),
                WEBP_EFFORT,
                END,
            )
        };
        take_buffer(rc, buf, len)
    }

    /// AVIF: HEIF with AV1 compression (libaom through libheif on Debian). `effort` 0–9 is
    /// libvips' name for `9 - speed`.
    pub(crate) fn avif(&self, quality: u8, lossless: bool, effort: u8) -> Result<Vec<u8>> {
        let (mut buf, mut len) = (ptr::null_mut(), 0);
        let av1 = ffi::VipsForeignHeifCompression_VIPS_FOREIGN_HEIF_COMPRESSION_AV1 as c_int;
        // SAFETY: as above.
        let rc = unsafe {
            ffi::vips_heifsave_buffer(
                self.ptr(),
                &mut buf,
                &mut len,
                c"compression".as_ptr(),
                av1,
                c"Q".as_ptr(),
                c_int::from(quality),
                c"lossless".as_ptr(),
                c_int::from(lossless),
                c"effort".as_ptr(),
                c_int::from(effort.min(9)),
                c"strip".as_ptr(),
                TRUE,
                END,
            )
        };
        take_buffer(rc, buf, len)
    }

    /// GIF through cgif (libvips ≥ 8.12), with libvips' default palette effort and
    /// dithering; animated when the image has a `page-height`.
    pub(crate) fn gif(&self, interlace: bool) -> Result<Vec<u8>> {
        let (mut buf, mut len) = (ptr::null_mut(), 0);
        // SAFETY: as above.
        let rc = unsafe {
            ffi::vips_gifsave_buffer(
                self.ptr(),
                &mut buf,
                &mut len,
                c"interlace".as_ptr(),
                c_int::from(interlace),
                c"strip".as_ptr(),
                TRUE,
                END,
            )
        };
        take_buffer(rc, buf, len)
    }
}
