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

/// A complete JPEG has an EOI marker (FF D9) after its first scan. The header segments
/// are skipped by their lengths, because an embedded EXIF thumbnail carries an EOI of its
/// own. Data after the EOI (e.g. motion-photo videos) is allowed.
fn jpeg_has_end(file: &mut File) -> std::io::Result<Option<&'static str>> {
    const TRUNCATED: &str = "the JPEG data ends before its end-of-image marker (truncated file)";
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    let mut byte = [0u8; 1];
    let mut read_byte = |r: &mut std::io::BufReader<&mut File>| -> std::io::Result<Option<u8>> {
        Ok(if r.read(&mut byte)? == 0 {
            None
        } else {
            Some(byte[0])
        })
    };
    // SOI was sniffed; walk marker segments until the first SOS.
    reader.seek_relative(2)?;
    loop {
        let Some(0xFF) = read_byte(&mut reader)? else {
            return Ok(Some(TRUNCATED));
        };
        let mut marker = 0xFF;
        while marker == 0xFF {
            let Some(b) = read_byte(&mut reader)? else {
                return Ok(Some(TRUNCATED));
            };
            marker = b;
        }
        if marker == 0xD9 {
            return Ok(Some("the JPEG ends before its first scan"));
        }
        if (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            continue; // markers without a length
        }
        let mut len = [0u8; 2];
        if reader.read_exact(&mut len).is_err() {
            return Ok(Some(TRUNCATED));
        }
        let len = u16::from_be_bytes(len) as i64;
        if len < 2 {
            return Ok(Some("a JPEG segment has an impossible length"));
        }
        reader.seek_relative(len - 2)?;
        if marker == 0xDA {
            break;
        }
    }
    // Scan the entropy-coded data (and any later scans) for the EOI.
    let mut buf = vec![0u8; 1 << 20];
    let mut previous_ff = false;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(Some(TRUNCATED));
        }
        let chunk = &buf[..n];
        if (previous_ff && chunk[0] == 0xD9) || chunk.windows(2).any(|w| w == [0xFF, 0xD9]) {
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
    fn jpeg_without_eoi_is_truncated_even_with_an_exif_thumbnail() {
        // SOI, APP1 whose payload holds a thumbnail's FF D9, SOS header, scan data.
        let mut head = vec![
            0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x08, b'E', b'x', 0xFF, 0xD9, 0, 0,
        ];
        head.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x04, 0x01, 0x00, 1, 2, 3]);
        let cut = temp_with(&head);
        head.extend_from_slice(&[0xFF, 0xD9]);
        let ok = temp_with(&head);
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
