//! The libvips operations the engine uses, each called with options libvips 8.14 knows.

use std::ffi::{c_int, CStr};
use std::ptr;

use libvips::bindings as ffi;

use super::{take_buffer, wrap, Image, Result, END, TRUE};

/// The native loaders we allow, by libvips nickname.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loader {
    Jpeg,
    Png,
    Gif,
    Webp,
    Tiff,
    Heif,
}

impl Loader {
    /// The `vips-loader` nickname libvips records on images it loads.
    pub(crate) fn nick(self) -> &'static str {
        match self {
            Loader::Jpeg => "jpegload",
            Loader::Png => "pngload",
            Loader::Gif => "gifload",
            Loader::Webp => "webpload",
            Loader::Tiff => "tiffload",
            Loader::Heif => "heifload",
        }
    }
}

/// Opens `path` with exactly this loader. libvips loaders are lazy: this reads the header
/// only, pixels are decoded when something asks for them.
pub(crate) fn load_header(loader: Loader, path: &CStr) -> Result<Image> {
    let mut out = ptr::null_mut();
    let p = path.as_ptr();
    // SAFETY: valid NUL-terminated path, out-pointer, END-terminated option list.
    let rc = unsafe {
        match loader {
            Loader::Jpeg => ffi::vips_jpegload(p, &mut out, END),
            Loader::Png => ffi::vips_pngload(p, &mut out, END),
            Loader::Gif => ffi::vips_gifload(p, &mut out, END),
            Loader::Webp => ffi::vips_webpload(p, &mut out, END),
            Loader::Tiff => ffi::vips_tiffload(p, &mut out, END),
            Loader::Heif => ffi::vips_heifload(p, &mut out, END),
        }
    };
    wrap(rc, out)
}

/// How `thumbnail_image` fits an image to a box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resize {
    /// Fit inside the box, never enlarge.
    Inside,
    /// Fill the box and crop the centre, never enlarge.
    Cover,
    /// Squash to exactly the box (used for hashing).
    Exact,
}

/// The `thumbnail` operation on a file: shrink-on-load (JPEG DCT scaling, WebP, HEIF
/// thumbnails), EXIF auto-rotate and conversion to sRGB, fitting inside `width`×`height`
/// without enlarging. Truncated input is an error rather than a grey band.
/// `to_srgb_profile` converts through the embedded ICC profile; it is only worth its cost
/// when the image has one, because the profile is stripped on save.
pub(crate) fn thumbnail_file(
    path: &CStr,
    width: u32,
    height: u32,
    to_srgb_profile: bool,
) -> Result<Image> {
    let mut out = ptr::null_mut();
    let (w, h) = (clamp_side(width), clamp_side(height));
    let size = ffi::VipsSize_VIPS_SIZE_DOWN;
    let fail_on = ffi::VipsFailOn_VIPS_FAIL_ON_TRUNCATED;
    // SAFETY: as above; every option named here exists in libvips 8.14.
    let rc = unsafe {
        if to_srgb_profile {
            ffi::vips_thumbnail(
                path.as_ptr(),
                &mut out,
                w,
                c"height".as_ptr(),
                h,
                c"size".as_ptr(),
                size,
                c"fail_on".as_ptr(),
                fail_on,
                c"export_profile".as_ptr(),
                c"srgb".as_ptr(),
                END,
            )
        } else {
            ffi::vips_thumbnail(
                path.as_ptr(),
                &mut out,
                w,
                c"height".as_ptr(),
                h,
                c"size".as_ptr(),
                size,
                c"fail_on".as_ptr(),
                fail_on,
                END,
            )
        }
    };
    wrap(rc, out)
}

/// `thumbnail` on a file to exactly `width`×`height` (per page for multi-page images), up or
/// down (`size=force`): the caller has worked out the aspect ratio, so shrink-on-load,
/// premultiplied Lanczos3 resampling, EXIF auto-rotate and sRGB conversion all happen in
/// one pass. `path` may end in a load-option string the caller built, e.g. `[n=-1]`.
pub(crate) fn thumbnail_file_exact(
    path: &CStr,
    width: u32,
    height: u32,
    to_srgb_profile: bool,
) -> Result<Image> {
    let mut out = ptr::null_mut();
    let (w, h) = (clamp_side(width), clamp_side(height));
    let size = ffi::VipsSize_VIPS_SIZE_FORCE;
    let fail_on = ffi::VipsFailOn_VIPS_FAIL_ON_TRUNCATED;
    // Passing NULL for a string option leaves it unset, exactly as if it were not named.
    let profile = if to_srgb_profile {
        c"srgb".as_ptr()
    } else {
        ptr::null()
    };
    // SAFETY: as for `thumbnail_file`.
    let rc = unsafe {
        ffi::vips_thumbnail(
            path.as_ptr(),
            &mut out,
            w,
            c"height".as_ptr(),
            h,
            c"size".as_ptr(),
            size,
            c"fail_on".as_ptr(),
            fail_on,
            c"export_profile".as_ptr(),
            profile,
            END,
        )
    };
    wrap(rc, out)
}

fn clamp_side(v: u32) -> c_int {
    v.clamp(1, 10_000_000) as c_int
}

impl Image {
    /// `thumbnail_image`: resize an already loaded image (no EXIF rotation, done on load).
    pub(crate) fn thumbnail(&self, width: u32, height: u32, mode: Resize) -> Result<Image> {
        let (size, crop) = match mode {
            Resize::Inside => (
                ffi::VipsSize_VIPS_SIZE_DOWN,
                ffi::VipsInteresting_VIPS_INTERESTING_NONE,
            ),
            Resize::Cover => (
                ffi::VipsSize_VIPS_SIZE_DOWN,
                ffi::VipsInteresting_VIPS_INTERESTING_CENTRE,
            ),
            Resize::Exact => (
                ffi::VipsSize_VIPS_SIZE_FORCE,
                ffi::VipsInteresting_VIPS_INTERESTING_NONE,
            ),
        };
        let mut out = ptr::null_mut();
        // SAFETY: live image, out-pointer, END-terminated options known to 8.14.
        let rc = unsafe {
            ffi::vips_thumbnail_image(
                self.ptr(),
                &mut out,
                clamp_side(width),
                c"height".as_ptr(),
                clamp_side(height),
                c"size".as_ptr(),
                size,
                c"crop".as_ptr(),
                crop,
                c"no_rotate".as_ptr(),
                TRUE,
                END,
            )
        };
        wrap(rc, out)
    }

    /// Composites any alpha channel onto white (for JPEG, which has none).
    pub(crate) fn flatten_white(&self) -> Result<Image> {
        let white = [255.0_f64];
        let mut out = ptr::null_mut();
        // SAFETY: the array is created, passed and released here; libvips refs what it keeps.
        let rc = unsafe {
            let bg = ffi::vips_array_double_new(white.as_ptr(), 1);
            let rc = ffi::vips_flatten(self.ptr(), &mut out, c"background".as_ptr(), bg, END);
            ffi::vips_area_unref(bg.cast());
            rc
        };
        wrap(rc, out)
    }

    /// One 8-bit luminance band.
    pub(crate) fn grey8(&self) -> Result<Image> {
        let mut grey = ptr::null_mut();
        let mut band = ptr::null_mut();
        let mut out = ptr::null_mut();
        // SAFETY: each step checks the previous output before using it.
        unsafe {
            let rc = ffi::vips_colourspace(
                self.ptr(),
                &mut grey,
                ffi::VipsInterpretation_VIPS_INTERPRETATION_B_W,
                END,
            );
            let grey = wrap(rc, grey)?;
            let band_rc = ffi::vips_extract_band(grey.ptr(), &mut band, 0, END);
            let band = wrap(band_rc, band)?;
            let rc = ffi::vips_cast(
                band.ptr(),
                &mut out,
                ffi::VipsBandFormat_VIPS_FORMAT_UCHAR,
                END,
            );
            wrap(rc, out)
        }
    }

    /// The pixels as packed bytes.
    pub(crate) fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut len: ffi::size_t = 0;
        // SAFETY: returns a g_malloc'd buffer of `len` bytes, or NULL.
        let buf = unsafe { ffi::vips_image_write_to_memory(self.ptr(), &mut len) };
        take_buffer(0, buf, len)
    }

    /// JPEG with no metadata at all (EXIF, XMP, IPTC, ICC), optimised Huffman tables and
    /// libvips' default chroma subsampling (4:2:0 below Q 90), like vipsthumbnail.
    pub(crate) fn jpeg(&self, quality: u8) -> Result<Vec<u8>> {
        self.jpeg_with(quality, false)
    }

    /// As [`Image::jpeg`], progressive (`interlace`) when asked.
    pub(crate) fn jpeg_with(&self, quality: u8, progressive: bool) -> Result<Vec<u8>> {
        let (mut buf, mut len) = (ptr::null_mut(), 0);
        // SAFETY: live image, out-pointers, END-terminated options known to 8.14.
        let rc = unsafe {
            ffi::vips_jpegsave_buffer(
                self.ptr(),
                &mut buf,
                &mut len,
                c"Q".as_ptr(),
                c_int::from(quality),
                c"strip".as_ptr(),
                TRUE,
                c"optimize_coding".as_ptr(),
                TRUE,
                c"interlace".as_ptr(),
                c_int::from(progressive),
                END,
            )
        };
        take_buffer(rc, buf, len)
    }

    /// Lossy WebP; `strip` is set but 8.14 ignores it (see `webp.rs`). Effort 4 is libvips' (and so vipsthumbnail's) default,
    /// named here so a libvips upgrade cannot change our cost silently.
    pub(crate) fn webp(&self, quality: u8) -> Result<Vec<u8>> {
        let (mut buf, mut len) = (ptr::null_mut(), 0);
        // SAFETY: as for `jpeg`.
        let rc = unsafe {
            ffi::vips_webpsave_buffer(
                self.ptr(),
                &mut buf,
                &mut len,
                c"Q".as_ptr(),
                c_int::from(quality),
                c"strip".as_ptr(),
                TRUE,
                c"effort".as_ptr(),
                4 as c_int,
                END,
            )
        };
        take_buffer(rc, buf, len)
    }
}
