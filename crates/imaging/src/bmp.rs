//! BMP support outside libvips.
//!
//! Debian's libvips 8.14 has no native BMP loader: it reads BMP only through ImageMagick
//! (`magickload`), which libvips itself flags as untrusted and which we block for all input
//! (see `vips::start`). So BMP headers are parsed here (for probing) and BMP pixels are
//! decoded by the pure-Rust `image` crate (feature "bmp" only), then handed to libvips.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use crate::vips::Image;
use crate::ImagingError;

/// What the BMP headers declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BmpHeader {
    pub width: u32,
    pub height: u32,
}

/// Compression methods the `image` crate decodes: RGB, RLE8, RLE4, BITFIELDS,
/// ALPHABITFIELDS. Embedded JPEG/PNG (4, 5) and CMYK variants are refused.
const DECODABLE: [u32; 5] = [0, 1, 2, 3, 6];

/// Parses the file and DIB headers (the first 30 bytes matter).
pub(crate) fn parse_header(h: &[u8]) -> Result<BmpHeader, ImagingError> {
    let corrupt = |why: &str| ImagingError::Corrupt(format!("bmp: {why}"));
    let u16_at = |i: usize| h.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |i: usize| {
        h.get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if !h.starts_with(b"BM") {
        return Err(corrupt("no BM signature"));
    }
    let dib = u32_at(14).ok_or_else(|| corrupt("truncated header"))?;
    let (width, height, planes, bpp, compression) = match dib {
        // OS/2 BITMAPCOREHEADER: unsigned 16-bit sizes, always uncompressed.
        12 => {
            let f = |i| u16_at(i).ok_or_else(|| corrupt("truncated header"));
            (i64::from(f(18)?), i64::from(f(20)?), f(22)?, f(24)?, 0)
        }
        40 | 52 | 56 | 108 | 124 => {
            let w = u32_at(18).ok_or_else(|| corrupt("truncated header"))? as i32;
            let h = u32_at(22).ok_or_else(|| corrupt("truncated header"))? as i32;
            let planes = u16_at(26).ok_or_else(|| corrupt("truncated header"))?;
            let bpp = u16_at(28).ok_or_else(|| corrupt("truncated header"))?;
            let comp = u32_at(30).ok_or_else(|| corrupt("truncated header"))?;
            // A negative height means rows are stored top-down.
            (i64::from(w), i64::from(h).abs(), planes, bpp, comp)
        }
        other => return Err(corrupt(&format!("unknown DIB header size {other}"))),
    };
    if planes != 1 || ![1, 4, 8, 16, 24, 32].contains(&bpp) {
        return Err(corrupt("bad planes or bit depth"));
    }
    if width <= 0 || height <= 0 || width > i64::from(u32::MAX) || height > i64::from(u32::MAX) {
        return Err(corrupt("bad dimensions"));
    }
    if !DECODABLE.contains(&compression) {
        return Err(ImagingError::Unsupported(format!(
            "bmp compression {compression}"
        )));
    }
    Ok(BmpHeader {
        width: width as u32,
        height: height as u32,
    })
}

/// Reads and parses the header of a BMP file without touching its pixels.
pub(crate) fn probe(path: &Path) -> Result<BmpHeader, ImagingError> {
    let mut head = Vec::with_capacity(64);
    File::open(path)?.take(64).read_to_end(&mut head)?;
    parse_header(&head)
}

/// Decodes the whole BMP (the caller has checked limits against the header) into a libvips
/// image with 3 or 4 bands.
pub(crate) fn decode(path: &Path) -> Result<Image, ImagingError> {
    let corrupt = |e: image::ImageError| ImagingError::Corrupt(format!("bmp: {e}"));
    let reader = BufReader::new(File::open(path)?);
    let decoder = image::codecs::bmp::BmpDecoder::new(reader).map_err(corrupt)?;
    let decoded = image::DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    let (w, h) = (decoded.width(), decoded.height());
    let (pixels, bands) = if decoded.color().has_alpha() {
        (decoded.into_rgba8().into_raw(), 4)
    } else {
        (decoded.into_rgb8().into_raw(), 3)
    };
    Image::from_pixels(&pixels, w, h, bands).map_err(|e| ImagingError::Vips(e.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info_header(width: i32, height: i32, bpp: u16, compression: u32) -> Vec<u8> {
        let mut v = b"BM".to_vec();
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&54u32.to_le_bytes());
        v.extend_from_slice(&40u32.to_le_bytes());
        v.extend_from_slice(&width.to_le_bytes());
        v.extend_from_slice(&height.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&bpp.to_le_bytes());
        v.extend_from_slice(&compression.to_le_bytes());
        v.extend_from_slice(&[0; 20]);
        v
    }

    #[test]
    fn reads_dimensions_including_top_down_rows() {
        let h = parse_header(&info_header(640, -480, 24, 0)).unwrap();
        assert_eq!(
            h,
            BmpHeader {
                width: 640,
                height: 480
            }
        );
    }

    #[test]
    fn rejects_bad_or_truncated_headers() {
        assert!(matches!(
            parse_header(&info_header(0, 10, 24, 0)),
            Err(ImagingError::Corrupt(_))
        ));
        assert!(matches!(
            parse_header(&info_header(10, 10, 7, 0)),
            Err(ImagingError::Corrupt(_))
        ));
        assert!(matches!(
            parse_header(&info_header(10, 10, 24, 0)[..20]),
            Err(ImagingError::Corrupt(_))
        ));
        assert!(matches!(parse_header(b"BM"), Err(ImagingError::Corrupt(_))));
    }

    #[test]
    fn refuses_embedded_jpeg_or_png() {
        let r = parse_header(&info_header(10, 10, 24, 4));
        assert!(matches!(r, Err(ImagingError::Unsupported(_))));
    }
}
