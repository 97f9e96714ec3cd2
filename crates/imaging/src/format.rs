//! Image formats we accept and produce, and format sniffing from magic bytes.
//!
//! Only the leading bytes decide a format: file names and client content types are
//! attacker-controlled and never consulted.

use serde::{Deserialize, Serialize};

/// An accepted upload format, detected by [`sniff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Jpeg,
    Png,
    Gif,
    Webp,
    Tiff,
    Bmp,
    Avif,
    Heic,
}

impl ImageFormat {
    pub const ALL: [ImageFormat; 8] = [
        ImageFormat::Jpeg,
        ImageFormat::Png,
        ImageFormat::Gif,
        ImageFormat::Webp,
        ImageFormat::Tiff,
        ImageFormat::Bmp,
        ImageFormat::Avif,
        ImageFormat::Heic,
    ];

    /// Stable lowercase name, the same as the serde form (for DB columns and JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpeg",
            ImageFormat::Png => "png",
            ImageFormat::Gif => "gif",
            ImageFormat::Webp => "webp",
            ImageFormat::Tiff => "tiff",
            ImageFormat::Bmp => "bmp",
            ImageFormat::Avif => "avif",
            ImageFormat::Heic => "heic",
        }
    }

    /// Parses [`ImageFormat::as_str`] back.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }

    pub fn mime(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Png => "image/png",
            ImageFormat::Gif => "image/gif",
            ImageFormat::Webp => "image/webp",
            ImageFormat::Tiff => "image/tiff",
            ImageFormat::Bmp => "image/bmp",
            ImageFormat::Avif => "image/avif",
            ImageFormat::Heic => "image/heic",
        }
    }
}

/// A format we encode derivatives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    Jpeg,
    Webp,
}

impl OutputFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "jpeg",
            OutputFormat::Webp => "webp",
        }
    }

    /// File extension for object keys.
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "jpg",
            OutputFormat::Webp => "webp",
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "image/jpeg",
            OutputFormat::Webp => "image/webp",
        }
    }
}

/// How many leading bytes [`sniff`] may look at; pass at least this many when you have them.
pub const SNIFF_LEN: usize = 64;

/// Detects the format from the first bytes of a file (magic numbers only, strict allow-list).
/// Returns `None` for anything else, including truncated or unknown headers.
pub fn sniff(head: &[u8]) -> Option<ImageFormat> {
    let h = head;
    if h.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageFormat::Jpeg)
    } else if h.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageFormat::Png)
    } else if h.starts_with(b"GIF87a") || h.starts_with(b"GIF89a") {
        Some(ImageFormat::Gif)
    } else if h.len() >= 16
        && &h[0..4] == b"RIFF"
        && &h[8..12] == b"WEBP"
        && is_webp_chunk(&h[12..16])
    {
        Some(ImageFormat::Webp)
    } else if h.starts_with(b"II*\0") || h.starts_with(b"MM\0*") {
        Some(ImageFormat::Tiff)
    } else if h.starts_with(b"BM") {
        sniff_bmp(h)
    } else {
        sniff_heif(h)
    }
}

fn is_webp_chunk(fourcc: &[u8]) -> bool {
    matches!(fourcc, b"VP8 " | b"VP8L" | b"VP8X")
}

/// "BM" alone is too weak a signature (plain text can start with it), so also require a
/// known DIB header size and one colour plane.
fn sniff_bmp(h: &[u8]) -> Option<ImageFormat> {
    let u16_at = |i: usize| h.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let dib = h
        .get(14..18)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))?;
    let planes = match dib {
        12 => u16_at(22)?,
        40 | 52 | 56 | 108 | 124 => u16_at(26)?,
        _ => return None,
    };
    (planes == 1).then_some(ImageFormat::Bmp)
}

/// HEIF family (ISO BMFF): an `ftyp` box first; AVIF and HEIC are told apart by the major
/// brand, or for the generic `mif1`/`msf1`/`miaf` major brands by the compatible brands.
fn sniff_heif(h: &[u8]) -> Option<ImageFormat> {
    if h.len() < 16 || &h[4..8] != b"ftyp" {
        return None;
    }
    let size = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
    if !(16..=4096).contains(&size) || size % 4 != 0 {
        return None;
    }
    let brand = |b: &[u8]| match b {
        b"avif" | b"avis" => Some(ImageFormat::Avif),
        b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" => Some(ImageFormat::Heic),
        _ => None,
    };
    if let Some(f) = brand(&h[8..12]) {
        return Some(f);
    }
    if !matches!(&h[8..12], b"mif1" | b"msf1" | b"miaf") {
        return None;
    }
    let end = size.min(h.len());
    h[16..end].chunks_exact(4).find_map(brand)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
        let size = 16 + 4 * compatible.len() as u32;
        let mut v = size.to_be_bytes().to_vec();
        v.extend_from_slice(b"ftyp");
        v.extend_from_slice(major);
        v.extend_from_slice(&[0; 4]);
        compatible.iter().for_each(|b| v.extend_from_slice(*b));
        v
    }

    #[test]
    fn magic_bytes_decide_the_format() {
        assert_eq!(
            sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]),
            Some(ImageFormat::Jpeg)
        );
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Some(ImageFormat::Png)
        );
        assert_eq!(sniff(b"GIF89a\x01\0\x01\0"), Some(ImageFormat::Gif));
        assert_eq!(
            sniff(b"RIFF\x24\0\0\0WEBPVP8 \x18\0\0\0"),
            Some(ImageFormat::Webp)
        );
        assert_eq!(sniff(b"II*\0\x08\0\0\0"), Some(ImageFormat::Tiff));
        assert_eq!(sniff(b"MM\0*\0\0\0\x08"), Some(ImageFormat::Tiff));
    }

    #[test]
    fn heif_brands_separate_avif_from_heic() {
        assert_eq!(sniff(&ftyp(b"avif", &[b"mif1"])), Some(ImageFormat::Avif));
        assert_eq!(sniff(&ftyp(b"avis", &[])), Some(ImageFormat::Avif));
        assert_eq!(sniff(&ftyp(b"heic", &[b"mif1"])), Some(ImageFormat::Heic));
        assert_eq!(
            sniff(&ftyp(b"mif1", &[b"heic", b"miaf"])),
            Some(ImageFormat::Heic)
        );
        assert_eq!(
            sniff(&ftyp(b"mif1", &[b"miaf", b"avif"])),
            Some(ImageFormat::Avif)
        );
        // Generic brand with no codec brand, and video MP4s, are not images we take.
        assert_eq!(sniff(&ftyp(b"mif1", &[b"miaf"])), None);
        assert_eq!(sniff(&ftyp(b"isom", &[b"avc1", b"mp41"])), None);
        assert_eq!(sniff(&ftyp(b"qt  ", &[])), None);
    }

    #[test]
    fn bmp_needs_a_known_dib_header() {
        let mut bmp = b"BM".to_vec();
        bmp.extend_from_slice(&[0; 12]);
        bmp.extend_from_slice(&40u32.to_le_bytes());
        bmp.extend_from_slice(&[0; 8]);
        bmp.extend_from_slice(&1u16.to_le_bytes());
        assert_eq!(sniff(&bmp), Some(ImageFormat::Bmp));
        assert_eq!(sniff(b"BMW is a car brand, not a bitmap"), None);
    }

    #[test]
    fn text_and_short_or_unknown_input_are_rejected() {
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(b"hello world, this is text"), None);
        assert_eq!(sniff(&[0xFF, 0xD8]), None);
        assert_eq!(sniff(b"RIFF\0\0\0\0WAVEfmt "), None);
        assert_eq!(sniff(b"%PDF-1.7\n"), None);
        assert_eq!(sniff(b"<svg xmlns=\"http://www.w3.org/2000/svg\">"), None);
    }

    #[test]
    fn names_round_trip_through_as_str() {
        for f in ImageFormat::ALL {
            assert_eq!(ImageFormat::parse(f.as_str()), Some(f));
            assert!(f.mime().starts_with("image/"));
        }
        assert_eq!(OutputFormat::Jpeg.extension(), "jpg");
        assert_eq!(OutputFormat::Webp.mime(), "image/webp");
    }
}
