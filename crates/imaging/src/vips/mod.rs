//! A small safe layer over the libvips C API, reached through `libvips::bindings`.
//!
//! Why not the `libvips` crate's high-level `ops`: they are generated from libvips 8.18 and
//! pass option names that Debian's 8.14 does not know (`keep` instead of `strip`,
//! `input-profile` instead of `import-profile`, `revalidate` …), so their `*_with_opts` calls
//! fail at run time; its `VipsImage` derives `Clone` without taking a reference (a clone
//! double-frees); and its buffer savers hand g_malloc'd memory to `Vec::from_raw_parts`, which
//! breaks under any non-system global allocator. Here every call names only options that
//! libvips 8.14 has, images are reference counted, and saved buffers are copied and released
//! with `g_free`. All `unsafe` of the crate lives in this module.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr::{self, NonNull};

use libvips::bindings as ffi;

mod geometry;
mod ops;
mod pixels;
mod save;
mod watchdog;
pub(crate) use geometry::Turn;
pub(crate) use ops::{load_header, thumbnail_file, thumbnail_file_exact, Loader, Resize};
pub(crate) use pixels::Space;
pub(crate) use watchdog::Watchdog;

/// Terminates the NULL-ended varargs option list every libvips operation takes.
const END: *const c_char = ptr::null();
const TRUE: c_int = 1;

/// The message libvips left in its error buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VipsError(pub String);

pub(crate) type Result<T> = std::result::Result<T, VipsError>;

/// Starts libvips for this process. Called once, through a `OnceLock`.
pub(crate) fn start() -> Result<()> {
    // SAFETY: plain C calls with a static NUL-terminated name; `vips_init` is guarded by the
    // caller's OnceLock and is itself idempotent.
    unsafe {
        if ffi::vips_init(c"framehouse".as_ptr()) != 0 {
            return Err(last_error());
        }
        // Every operation here runs once per upload, so libvips' operation cache only holds
        // memory and open files; derivatives are cached by the server, not here.
        ffi::vips_cache_set_max(0);
        ffi::vips_cache_set_max_mem(0);
        ffi::vips_cache_set_max_files(0);
        // Refuse the loaders libvips marks as unsafe for hostile input (ImageMagick, matio,
        // PPM, CSV, vips' own format …): we only ever want the trusted native ones.
        ffi::vips_block_untrusted_set(TRUE);
    }
    Ok(())
}

/// Sets the number of libvips worker threads per pipeline (0 leaves the default).
pub(crate) fn set_concurrency(threads: usize) {
    if threads > 0 {
        // SAFETY: sets a global int inside libvips.
        unsafe { ffi::vips_concurrency_set(threads.min(1024) as c_int) }
    }
}

/// Frees libvips' per-thread buffers of the calling thread; they are rebuilt on demand.
/// Worth doing on pool threads (tokio's blocking pool) that may exit without telling libvips.
pub(crate) fn release_thread_buffers() {
    // SAFETY: only touches the calling thread's private buffer cache.
    unsafe { ffi::vips_thread_shutdown() }
}

fn last_error() -> VipsError {
    // SAFETY: vips_error_buffer_copy returns a g_malloc'd string (or NULL) that we own.
    unsafe {
        let p = ffi::vips_error_buffer_copy();
        if p.is_null() {
            return VipsError("unknown libvips error".into());
        }
        let msg = CStr::from_ptr(p)
            .to_string_lossy()
            .trim()
            .replace('\n', "; ");
        ffi::g_free(p.cast());
        VipsError(if msg.is_empty() {
            "unknown libvips error".into()
        } else {
            msg
        })
    }
}

/// An owned reference to a libvips image. Not `Send`: a pipeline stays on the thread that
/// built it.
pub(crate) struct Image(NonNull<ffi::VipsImage>);

impl Drop for Image {
    fn drop(&mut self) {
        // SAFETY: we own exactly one reference.
        unsafe { ffi::g_object_unref(self.0.as_ptr().cast()) }
    }
}

fn wrap(rc: c_int, out: *mut ffi::VipsImage) -> Result<Image> {
    match NonNull::new(out) {
        Some(p) if rc == 0 => Ok(Image(p)),
        Some(p) => {
            // SAFETY: a failed operation that still returned an image; drop our reference.
            unsafe { ffi::g_object_unref(p.as_ptr().cast()) };
            Err(last_error())
        }
        None => Err(last_error()),
    }
}

/// Runs one libvips operation that writes its result to an out-pointer.
fn call(op: impl FnOnce(*mut *mut ffi::VipsImage) -> c_int) -> Result<Image> {
    let mut out = ptr::null_mut();
    let rc = op(&mut out);
    wrap(rc, out)
}

/// A `VipsArrayDouble` for options such as `background`, released on drop.
struct Doubles(*mut ffi::VipsArrayDouble);

impl Doubles {
    fn new(values: &[f64]) -> Result<Doubles> {
        let n = c_int::try_from(values.len()).map_err(|_| VipsError("array too long".into()))?;
        // SAFETY: `values` holds `n` doubles, which libvips copies into a new area we own.
        let area = unsafe { ffi::vips_array_double_new(values.as_ptr(), n) };
        if area.is_null() {
            return Err(last_error());
        }
        Ok(Doubles(area))
    }
}

impl Drop for Doubles {
    fn drop(&mut self) {
        // SAFETY: we own one reference to the area; operations that kept it took their own.
        unsafe { ffi::vips_area_unref(self.0.cast()) }
    }
}

/// Copies a g_malloc'd buffer returned by libvips into a `Vec` and frees the original.
fn take_buffer(rc: c_int, buf: *mut c_void, len: ffi::size_t) -> Result<Vec<u8>> {
    if rc != 0 || buf.is_null() {
        return Err(last_error());
    }
    // SAFETY: libvips returned `len` readable bytes at `buf`, which we now own.
    unsafe {
        let bytes = std::slice::from_raw_parts(buf as *const u8, len as usize).to_vec();
        ffi::g_free(buf);
        Ok(bytes)
    }
}

impl Image {
    fn ptr(&self) -> *mut ffi::VipsImage {
        self.0.as_ptr()
    }

    /// Wraps packed 8-bit pixels (copied, so `pixels` may be dropped afterwards).
    pub(crate) fn from_pixels(pixels: &[u8], width: u32, height: u32, bands: u32) -> Result<Self> {
        let expected = width as usize * height as usize * bands as usize;
        if pixels.len() != expected || expected == 0 {
            return Err(VipsError(format!("pixel buffer of {} bytes", pixels.len())));
        }
        // SAFETY: the buffer holds exactly width*height*bands bytes and libvips copies it.
        let out = unsafe {
            ffi::vips_image_new_from_memory_copy(
                pixels.as_ptr().cast(),
                pixels.len() as ffi::size_t,
                width as c_int,
                height as c_int,
                bands as c_int,
                ffi::VipsBandFormat_VIPS_FORMAT_UCHAR,
            )
        };
        wrap(0, out)
    }

    /// Another reference to the same image.
    pub(crate) fn share(&self) -> Image {
        // SAFETY: takes one more reference on a live object; `Drop` releases it.
        unsafe { ffi::g_object_ref(self.ptr().cast()) };
        Image(self.0)
    }

    pub(crate) fn width(&self) -> u32 {
        // SAFETY: live image.
        unsafe { ffi::vips_image_get_width(self.ptr()) }.max(0) as u32
    }

    pub(crate) fn height(&self) -> u32 {
        // SAFETY: live image.
        unsafe { ffi::vips_image_get_height(self.ptr()) }.max(0) as u32
    }

    pub(crate) fn bands(&self) -> u32 {
        // SAFETY: live image.
        unsafe { ffi::vips_image_get_bands(self.ptr()) }.max(0) as u32
    }

    pub(crate) fn has_alpha(&self) -> bool {
        // SAFETY: live image.
        unsafe { ffi::vips_image_hasalpha(self.ptr()) != 0 }
    }

    /// EXIF orientation 1..=8 (1 when absent).
    pub(crate) fn orientation(&self) -> u32 {
        // SAFETY: live image.
        unsafe { ffi::vips_image_get_orientation(self.ptr()) }.clamp(1, 8) as u32
    }

    pub(crate) fn has_field(&self, name: &CStr) -> bool {
        // SAFETY: live image, NUL-terminated name.
        unsafe { ffi::vips_image_get_typeof(self.ptr(), name.as_ptr()) != 0 }
    }

    pub(crate) fn get_int(&self, name: &CStr) -> Option<i32> {
        let mut v: c_int = 0;
        // SAFETY: live image, NUL-terminated name, valid out-pointer.
        let ok = self.has_field(name)
            && unsafe { ffi::vips_image_get_int(self.ptr(), name.as_ptr(), &mut v) } == 0;
        ok.then_some(v)
    }

    pub(crate) fn get_string(&self, name: &CStr) -> Option<String> {
        let mut v: *const c_char = ptr::null();
        // SAFETY: the returned string is owned by the image and copied before it can go.
        unsafe {
            let ok = self.has_field(name)
                && ffi::vips_image_get_string(self.ptr(), name.as_ptr(), &mut v) == 0;
            (ok && !v.is_null()).then(|| CStr::from_ptr(v).to_string_lossy().into_owned())
        }
    }

    pub(crate) fn get_array_int(&self, name: &CStr) -> Option<Vec<i32>> {
        let (mut v, mut n): (*mut c_int, c_int) = (ptr::null_mut(), 0);
        // SAFETY: the array is owned by the image and copied before it can go.
        unsafe {
            let ok = self.has_field(name)
                && ffi::vips_image_get_array_int(self.ptr(), name.as_ptr(), &mut v, &mut n) == 0;
            (ok && !v.is_null() && n > 0)
                .then(|| std::slice::from_raw_parts(v, n as usize).to_vec())
        }
    }

    /// A new header over the same pixels with these int and int-array fields set (e.g. the
    /// `page-height`, `delay` and `loop` of an animation, after `without_metadata`).
    pub(crate) fn with_fields(
        &self,
        ints: &[(&CStr, i32)],
        arrays: &[(&CStr, &[i32])],
    ) -> Result<Image> {
        let mut out = ptr::null_mut();
        // SAFETY: as in `without_metadata`, the copy is ours alone; libvips copies the values.
        unsafe {
            let copy = wrap(ffi::vips_copy(self.ptr(), &mut out, END), out)?;
            for (name, v) in ints {
                ffi::vips_image_set_int(copy.ptr(), name.as_ptr(), *v);
            }
            for (name, v) in arrays {
                let n = c_int::try_from(v.len()).unwrap_or(0);
                ffi::vips_image_set_array_int(copy.ptr(), name.as_ptr(), v.as_ptr(), n);
            }
            Ok(copy)
        }
    }

    /// Renders the whole pipeline into memory once, so later uses do not re-decode.
    pub(crate) fn copy_memory(&self) -> Result<Image> {
        // SAFETY: returns a new reference or NULL.
        let out = unsafe { ffi::vips_image_copy_memory(self.ptr()) };
        wrap(0, out)
    }

    /// A new header over the same pixels with every metadata item removed (EXIF, XMP,
    /// IPTC, ICC, orientation …), so no saver has anything to leak even where its `strip`
    /// is broken (libvips 8.14's `webpsave`, see `webp.rs`).
    pub(crate) fn without_metadata(&self) -> Result<Image> {
        let mut out = ptr::null_mut();
        // SAFETY: with the operation cache off (see `start`), `vips_copy` gives a fresh image
        // only we reference, so editing its metadata cannot affect anyone else; the field
        // list is a g_strdup'd copy, freed afterwards.
        unsafe {
            let copy = wrap(ffi::vips_copy(self.ptr(), &mut out, END), out)?;
            let fields = ffi::vips_image_get_fields(copy.ptr());
            if !fields.is_null() {
                let mut i = 0;
                while !(*fields.add(i)).is_null() {
                    // Core header fields are not metadata and are left alone by libvips.
                    ffi::vips_image_remove(copy.ptr(), *fields.add(i));
                    i += 1;
                }
                ffi::g_strfreev(fields);
            }
            Ok(copy)
        }
    }
}
