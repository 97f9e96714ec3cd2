//! Header-only probing (dimensions, frames) and the limits checked before any decode.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::vips::{self, Loader};
use crate::{bmp, ImageFormat, ImagingError};

/// What a file's header declares. Dimensions are as stored, before EXIF rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    /// Pages or animation frames (GIF, WebP, TIFF, HEIF); 1 for still formats.
    pub frames: u32,
}

impl Probe {
    /// Pixels in one frame (only the first frame is ever decoded).
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// Reads only the header of `path`, which [`crate::sniff`] identified as `format`, with the
/// matching decoder. No pixel data is decoded or allocated, so a small file that declares
/// 100000×100000 probes cheaply; garbage or truncated headers give
/// [`ImagingError::Corrupt`].
///
/// PNG and BMP headers are parsed here: libspng refuses a header that is not followed by
/// image data, and libvips has no trusted BMP loader. The rest use libvips' own loader for
/// the sniffed format, never its content-based guessing.
pub fn probe_file(path: &Path, format: ImageFormat) -> Result<Probe, ImagingError> {
    let (width, height, frames) = match format {
        ImageFormat::Png => {
            let mut head = Vec::with_capacity(33);
            File::open(path)?.take(33).read_to_end(&mut head)?;
            let (w, h) = parse_png_ihdr(&head)?;
            // libvips 8.14 reads APNG as a still image (its default frame).
            (w, h, 1)
        }
        ImageFormat::Bmp => {
            let h = bmp::probe(path)?;
            (h.width, h.height, 1)
        }
        _ => {
            crate::ensure_started()?;
            let header = vips::load_header(loader_for(format)?, &c_path(path)?)
                .map_err(|e| ImagingError::Corrupt(e.0))?;
            // Read "n-pages" directly: vips_image_get_n_pages() reports 1 for absurd counts,
            // which would let a 50 000-frame GIF past `max_frames`.
            let frames = header.get_int(c"n-pages").unwrap_or(1).max(1) as u32;
            (header.width(), header.height(), frames)
        }
    };
    if width == 0 || height == 0 {
        return Err(ImagingError::Corrupt("zero-sized image".into()));
    }
    Ok(Probe {
        format,
        width,
        height,
        frames,
    })
}

pub(crate) fn loader_for(format: ImageFormat) -> Result<Loader, ImagingError> {
    Ok(match format {
        ImageFormat::Jpeg => Loader::Jpeg,
        ImageFormat::Png => Loader::Png,
        ImageFormat::Gif => Loader::Gif,
        ImageFormat::Webp => Loader::Webp,
        ImageFormat::Tiff => Loader::Tiff,
        ImageFormat::Avif | ImageFormat::Heic => Loader::Heif,
        ImageFormat::Bmp => return Err(ImagingError::Unsupported("bmp via libvips".into())),
    })
}

/// A path libvips can take. libvips parses a trailing `[...]` in file names as load options,
/// so such names are refused; the worker names its own temp files, so this never bites.
pub(crate) fn c_path(path: &Path) -> Result<CString, ImagingError> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    if bytes.contains(&b'[') {
        return Err(ImagingError::Unsupported("file name containing '['".into()));
    }
    CString::new(bytes).map_err(|_| ImagingError::Unsupported("file name containing NUL".into()))
}

/// Signature, then IHDR as the first chunk: length 13, type, width, height, depth, colour
/// type, compression, filter, interlace, CRC.
fn parse_png_ihdr(h: &[u8]) -> Result<(u32, u32), ImagingError> {
    let corrupt = |why: &str| ImagingError::Corrupt(format!("png: {why}"));
    if h.len() < 33 {
        return Err(corrupt("truncated header"));
    }
    if !h.starts_with(b"\x89PNG\r\n\x1a\n") || h[8..16] != *b"\0\0\0\x0dIHDR" {
        return Err(corrupt("IHDR is not the first chunk"));
    }
    let be = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    if crc32(&h[12..29]) != be(29) {
        return Err(corrupt("IHDR checksum mismatch"));
    }
    let (width, height, depth, colour) = (be(16), be(20), h[24], h[25]);
    let depth_ok = match colour {
        0 => matches!(depth, 1 | 2 | 4 | 8 | 16),
        3 => matches!(depth, 1 | 2 | 4 | 8),
        2 | 4 | 6 => matches!(depth, 8 | 16),
        _ => false,
    };
    // The PNG spec caps each side at 2^31 - 1.
    let sides_ok =
        (1..=i32::MAX as u32).contains(&width) && (1..=i32::MAX as u32).contains(&height);
    if !depth_ok || !sides_ok || h[26] != 0 || h[27] != 0 || h[28] > 1 {
        return Err(corrupt("invalid IHDR fields"));
    }
    Ok((width, height))
}

/// CRC-32 (ISO-HDLC, as PNG uses); bitwise, since it only ever sees 17 bytes.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Upper bounds an upload must respect before it is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Pixels in one frame (width × height).
    pub max_pixels: u64,
    /// Longest allowed side, in pixels.
    pub max_side: u32,
    /// Pages or animation frames.
    pub max_frames: u32,
}

impl Default for Limits {
    /// 268 MP (sharp's default: 16383², above any camera sold), 65 535 px a side, 1 000 frames.
    fn default() -> Self {
        Limits {
            max_pixels: 16_383 * 16_383,
            max_side: 65_535,
            max_frames: 1_000,
        }
    }
}

/// Which limit an image broke, with the values, for a 413/422 message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("image is {width}×{height} px; the longest side may be at most {max} px")]
    SideTooLong { width: u32, height: u32, max: u32 },
    #[error("image has {pixels} px ({width}×{height}); at most {max} px are allowed")]
    TooManyPixels {
        width: u32,
        height: u32,
        pixels: u64,
        max: u64,
    },
    #[error("image has {frames} frames; at most {max} are allowed")]
    TooManyFrames { frames: u32, max: u32 },
}

impl LimitError {
    /// Stable snake_case code for the API error body.
    pub fn code(&self) -> &'static str {
        match self {
            LimitError::SideTooLong { .. } => "image_side_too_long",
            LimitError::TooManyPixels { .. } => "image_too_many_pixels",
            LimitError::TooManyFrames { .. } => "image_too_many_frames",
        }
    }
}

/// Checks a probe against limits: sides first, then pixels, then frames.
pub fn check_limits(p: &Probe, l: &Limits) -> Result<(), LimitError> {
    let (width, height) = (p.width, p.height);
    if width.max(height) > l.max_side {
        return Err(LimitError::SideTooLong {
            width,
            height,
            max: l.max_side,
        });
    }
    if p.pixels() > l.max_pixels {
        return Err(LimitError::TooManyPixels {
            width,
            height,
            pixels: p.pixels(),
            max: l.max_pixels,
        });
    }
    if p.frames > l.max_frames {
        return Err(LimitError::TooManyFrames {
            frames: p.frames,
            max: l.max_frames,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ihdr(width: u32, height: u32, depth: u8, colour: u8) -> Vec<u8> {
        let mut chunk = b"IHDR".to_vec();
        chunk.extend_from_slice(&width.to_be_bytes());
        chunk.extend_from_slice(&height.to_be_bytes());
        chunk.extend_from_slice(&[depth, colour, 0, 0, 0]);
        let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\x0d".to_vec();
        v.extend_from_slice(&chunk);
        v.extend_from_slice(&crc32(&chunk).to_be_bytes());
        v
    }

    #[test]
    fn crc32_matches_the_reference_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn png_ihdr_gives_declared_dimensions() {
        assert_eq!(
            parse_png_ihdr(&ihdr(100_000, 100_000, 8, 2)).unwrap(),
            (100_000, 100_000)
        );
    }

    #[test]
    fn png_ihdr_rejects_bad_fields_checksums_and_truncation() {
        assert!(parse_png_ihdr(&ihdr(0, 10, 8, 2)).is_err());
        assert!(parse_png_ihdr(&ihdr(10, 10, 3, 2)).is_err());
        let mut bad_crc = ihdr(10, 10, 8, 6);
        bad_crc[32] ^= 1;
        assert!(parse_png_ihdr(&bad_crc).is_err());
        assert!(parse_png_ihdr(&ihdr(10, 10, 8, 6)[..30]).is_err());
    }

    #[test]
    fn limits_name_the_broken_limit() {
        let l = Limits {
            max_pixels: 1_000_000,
            max_side: 4_000,
            max_frames: 10,
        };
        let p = |width, height, frames| Probe {
            format: ImageFormat::Gif,
            width,
            height,
            frames,
        };
        assert_eq!(check_limits(&p(1000, 1000, 10), &l), Ok(()));
        assert!(matches!(
            check_limits(&p(5000, 10, 1), &l),
            Err(LimitError::SideTooLong { max: 4000, .. })
        ));
        let err = check_limits(&p(1001, 1000, 1), &l).unwrap_err();
        assert_eq!(err.code(), "image_too_many_pixels");
        assert!(err.to_string().contains("1001000"), "{err}");
        assert_eq!(
            check_limits(&p(10, 10, 11), &l),
            Err(LimitError::TooManyFrames {
                frames: 11,
                max: 10
            })
        );
    }
}
