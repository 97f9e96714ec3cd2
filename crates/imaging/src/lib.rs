//! Framehouse's image engine: sniff formats by magic bytes, probe headers, check limits,
//! and turn an upload into its presets (JPEG/WebP) plus a perceptual hash, on libvips.
//!
//! Pure and blocking: no HTTP, no database, no async. Callers run [`process_file`] on a
//! blocking thread, after [`sniff`] → [`probe_file`] → [`check_limits`] accepted the file.
//! libvips is started once per process by [`init`] (or lazily by the first call).

mod bmp;
mod format;
mod phash;
mod probe;
mod process;
pub mod transform;
mod vips;
mod webp;

use std::sync::OnceLock;

pub use format::{sniff, ImageFormat, OutputFormat, SNIFF_LEN};
pub use phash::{hamming, phash, HASH_SIDE};
pub use probe::{check_limits, probe_file, LimitError, Limits, Probe};
pub use process::{
    default_presets, is_proxy, process_file, proxy_presets, Fit, PresetSpec, Processed, Rendition,
    PROXIES,
};

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum ImagingError {
    /// A format, variant or file name we do not take.
    #[error("unsupported image: {0}")]
    Unsupported(String),
    /// The file is not a valid image of the sniffed format (bad or truncated data).
    #[error("corrupt image: {0}")]
    Corrupt(String),
    /// libvips failed after the input had been decoded (a bug or resource exhaustion).
    #[error("libvips: {0}")]
    Vips(String),
    #[error("invalid preset {0}")]
    InvalidPreset(String),
    /// The input, a watermark input or the requested output breaks a size, pixel or frame
    /// limit; the message names the limit. Checked from headers, before decoding.
    #[error("too large: {0}")]
    TooLarge(String),
    /// Options that cannot apply to this image (a crop outside it, a frame it lacks).
    #[error("invalid transform: {0}")]
    InvalidTransform(String),
    /// The transform ran past its time limit and was cancelled.
    #[error("the transform took longer than its time limit")]
    Timeout,
    #[error("reading image: {0}")]
    Io(#[from] std::io::Error),
}

static STARTED: OnceLock<Result<(), String>> = OnceLock::new();

/// Starts libvips once per process (thread-safe, idempotent) and sets how many threads each
/// libvips pipeline may use (`0` keeps libvips' default: the number of CPUs, or
/// `VIPS_CONCURRENCY`). Also turns off libvips' operation cache (each upload is processed
/// once; derivatives are cached by the server) and blocks the loaders libvips marks
/// untrusted (`vips_block_untrusted_set`, libvips ≥ 8.13), e.g. ImageMagick.
pub fn init(concurrency: usize) -> Result<(), ImagingError> {
    ensure_started()?;
    vips::set_concurrency(concurrency);
    Ok(())
}

pub(crate) fn ensure_started() -> Result<(), ImagingError> {
    STARTED
        .get_or_init(|| vips::start().map_err(|e| e.0))
        .clone()
        .map_err(ImagingError::Vips)
}
