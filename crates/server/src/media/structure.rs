//! Cheap structural checks that catch truncated files at upload, before any decode.
//!
//! Header probing cannot see a file cut short after its header, and a full decode at
//! upload would double the processing cost, so the containers are walked instead:
//! this reads at most a few bytes per chunk/marker and scans JPEG entropy data with
//! memchr-speed byte search. Formats without a cheap check pass and are caught by the
//! decode in the processing job (status `failed`).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use imaging::ImageFormat;

/// Returns a reason when the file is visibly truncated or malformed.
pub fn check(path: &Path, format: ImageFormat) -> std::io::Result<Option<&'static str>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    match format {
        ImageFormat::Jpeg => jpeg_has_end(&mut file),
        ImageFormat::Png => png_chunks_complete(&mut file, len),
        ImageFormat::Gif => gif_has_trailer(&mut file, len),
        ImageFormat::Webp => riff_size_fits(&mut file, len),
        _ => Ok(None),
    }
}

/// A complete JPEG has an EOI marker (FF D9) after its first scan. Data after the EOI
/// (e.g. motion-photo videos) is allowed.
fn jpeg_has_end(file: &mut File) -> std::io::Result<Option<&'static str>> {
    let mut buf = vec![0u8; 1 << 20];
    let mut previous_ff = false;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(Some(
                "the JPEG data ends before its end-of-image marker (truncated file)",
            ));
        }
        let chunk = &buf[..n];
        if previous_ff && chunk[0] == 0xD9 {
            return Ok(None);
        }
        if chunk.windows(2).any(|w| w == [0xFF, 0xD9]) {
            return Ok(None);
        }
        previous_ff = chunk[n - 1] == 0xFF;
    }
}

/// Walks PNG chunks by their length fields up to IEND.
fn png_chunks_complete(file: &mut File, len: u64) -> std::io::Result<Option<&'static str>> {
    let mut pos = 8u64;
    let mut header = [0u8; 8];
    loop {
        if pos + 12 > len {
            return Ok(Some(
                "the PNG data ends before its IEND chunk (truncated file)",
            ));
        }
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut header)?;
        let size = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as u64;
        if &header[4..8] == b"IEND" {
            return Ok(None);
        }
        pos += 12 + size;
    }
}

/// A GIF ends with the trailer byte 0x3B (padding zeros after it are tolerated).
fn gif_has_trailer(file: &mut File, len: u64) -> std::io::Result<Option<&'static str>> {
    let tail_len = len.min(4096);
    file.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = vec![0u8; tail_len as usize];
    file.read_exact(&mut tail)?;
    match tail.iter().rev().find(|&&b| b != 0) {
        Some(0x3B) => Ok(None),
        _ => Ok(Some(
            "the GIF data ends before its trailer (truncated file)",
        )),
    }
}

/// The RIFF header states the file size; a shorter file is truncated.
fn riff_size_fits(file: &mut File, len: u64) -> std::io::Result<Option<&'static str>> {
    let mut header = [0u8; 8];
    file.seek(SeekFrom::Start(0))?;
    file.read_exact(&mut header)?;
    let declared = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as u64 + 8;
    Ok((declared > len)
        .then_some("the WebP data is shorter than its RIFF header says (truncated file)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp_with(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn jpeg_without_eoi_is_truncated() {
        let ok = temp_with(&[0xFF, 0xD8, 0xFF, 0xDA, 1, 2, 3, 0xFF, 0xD9]);
        let cut = temp_with(&[0xFF, 0xD8, 0xFF, 0xDA, 1, 2, 3]);
        assert_eq!(check(ok.path(), ImageFormat::Jpeg).unwrap(), None);
        assert!(check(cut.path(), ImageFormat::Jpeg).unwrap().is_some());
    }

    #[test]
    fn png_must_reach_iend() {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend_from_slice(&13u32.to_be_bytes());
        png.extend_from_slice(b"IHDR");
        png.extend_from_slice(&[0; 13 + 4]);
        let cut = temp_with(&png);
        png.extend_from_slice(&0u32.to_be_bytes());
        png.extend_from_slice(b"IEND");
        png.extend_from_slice(&[0; 4]);
        let ok = temp_with(&png);
        assert_eq!(check(ok.path(), ImageFormat::Png).unwrap(), None);
        assert!(check(cut.path(), ImageFormat::Png).unwrap().is_some());
    }
}
