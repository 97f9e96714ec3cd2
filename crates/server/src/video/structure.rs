//! Truncation checks on a container's own framing, read before ffprobe: ffprobe accepts
//! an MP4 whose `moov` comes first even when the media data is cut off, and such a file
//! would only fail (or play half) long after the upload was answered with a 2xx.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use video::Container;

/// `Some(reason)` when the file's framing says it is longer than it is.
pub fn check(path: &Path, container: Container) -> std::io::Result<Option<String>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    match container {
        Container::Mp4 | Container::Mov | Container::M4a => iso_bmff(&mut file, len),
        Container::Webm | Container::Mkv => matroska(&mut file, len),
        Container::Wav => riff(&mut file, len),
        // MP3 and Ogg are sequences of self-framed packets: ffprobe sees a cut.
        Container::Mp3 | Container::Ogg => Ok(None),
    }
}

/// Walks the top-level boxes: each must end within the file.
fn iso_bmff(file: &mut File, len: u64) -> std::io::Result<Option<String>> {
    let mut at = 0u64;
    let mut boxes = 0u32;
    while at < len {
        if len - at < 8 {
            return Ok(Some("the file ends inside a box header".into()));
        }
        file.seek(SeekFrom::Start(at))?;
        let mut header = [0u8; 16];
        let got = read_up_to(file, &mut header)?;
        let size32 = u32::from_be_bytes(header[0..4].try_into().expect("4 bytes"));
        let kind = String::from_utf8_lossy(&header[4..8]).into_owned();
        let size = match size32 {
            // Extends to the end of the file.
            0 => len - at,
            1 if got >= 16 => u64::from_be_bytes(header[8..16].try_into().expect("8 bytes")),
            1 => return Ok(Some("the file ends inside a box header".into())),
            n => u64::from(n),
        };
        if size < 8 {
            return Ok(Some(format!("the `{kind}` box has an impossible size")));
        }
        if at.checked_add(size).is_none_or(|end| end > len) {
            return Ok(Some(format!(
                "the file is truncated: its `{kind}` box needs {size} bytes but only {} remain",
                len - at
            )));
        }
        at += size;
        boxes += 1;
        if boxes > 100_000 {
            return Ok(Some("the file has an absurd number of boxes".into()));
        }
    }
    Ok(None)
}

/// The EBML header, then the Segment: a Segment of known size must fit in the file.
fn matroska(file: &mut File, len: u64) -> std::io::Result<Option<String>> {
    let mut head = vec![0u8; 4096.min(len as usize)];
    file.read_exact(&mut head)?;
    let Some((id_len, size, size_len)) = element(&head, 0) else {
        return Ok(Some("the file ends inside its EBML header".into()));
    };
    let Some(size) = size.filter(|s| *s < 4096) else {
        return Ok(Some("the EBML header has an impossible size".into()));
    };
    let segment_at = id_len + size_len + size as usize;
    let Some((seg_id_len, seg_size, seg_size_len)) = element(&head, segment_at) else {
        return Ok(Some("the file ends before its segment".into()));
    };
    if seg_id_len != 4 || head[segment_at..segment_at + 4] != [0x18, 0x53, 0x80, 0x67] {
        return Ok(Some("the EBML header is not followed by a segment".into()));
    }
    if let Some(size) = seg_size {
        let end = (segment_at + seg_id_len + seg_size_len) as u64 + size;
        if end > len {
            return Ok(Some(format!(
                "the file is truncated: its segment needs {end} bytes but the file has {len}"
            )));
        }
    }
    Ok(None)
}

/// Reads an element header at `at`: (id length, data size — `None` when unknown, size length).
fn element(buf: &[u8], at: usize) -> Option<(usize, Option<u64>, usize)> {
    let first = *buf.get(at)?;
    let id_len = first.leading_zeros() as usize + 1;
    if id_len > 4 {
        return None;
    }
    let size_at = at + id_len;
    let marker = *buf.get(size_at)?;
    let size_len = marker.leading_zeros() as usize + 1;
    if size_len > 8 {
        return None;
    }
    let bytes = buf.get(size_at..size_at + size_len)?;
    let mut value = u64::from(marker) & (0xFF >> size_len);
    let mut all_ones = value == (0xFF >> size_len);
    for b in &bytes[1..] {
        value = (value << 8) | u64::from(*b);
        all_ones &= *b == 0xFF;
    }
    Some((id_len, (!all_ones).then_some(value), size_len))
}

/// A RIFF file says its own length after the tag.
fn riff(file: &mut File, len: u64) -> std::io::Result<Option<String>> {
    let mut header = [0u8; 8];
    if read_up_to(file, &mut header)? < 8 {
        return Ok(Some("the file ends inside its RIFF header".into()));
    }
    let declared = u64::from(u32::from_le_bytes(
        header[4..8].try_into().expect("4 bytes"),
    )) + 8;
    Ok((declared > len)
        .then(|| format!("the file is truncated: it declares {declared} bytes but has {len}")))
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxes(parts: &[(&[u8; 4], u32, usize)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (kind, declared, actual) in parts {
            out.extend_from_slice(&declared.to_be_bytes());
            out.extend_from_slice(*kind);
            out.extend(std::iter::repeat_n(0u8, actual - 8));
        }
        out
    }

    fn check_bytes(bytes: &[u8], container: Container) -> Option<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, bytes).unwrap();
        check(&path, container).unwrap()
    }

    #[test]
    fn an_mp4_whose_mdat_is_cut_is_truncated() {
        let whole = boxes(&[(b"ftyp", 16, 16), (b"moov", 32, 32), (b"mdat", 1000, 1000)]);
        assert_eq!(check_bytes(&whole, Container::Mp4), None);
        let cut = boxes(&[(b"ftyp", 16, 16), (b"moov", 32, 32), (b"mdat", 1000, 500)]);
        let reason = check_bytes(&cut, Container::Mp4).unwrap();
        assert!(reason.contains("mdat"), "{reason}");
    }

    #[test]
    fn a_matroska_segment_longer_than_the_file_is_truncated() {
        // EBML header (id 1A45DFA3, size 0) then a Segment with an 8-byte size.
        let mut bytes = vec![0x1A, 0x45, 0xDF, 0xA3, 0x80];
        bytes.extend_from_slice(&[0x18, 0x53, 0x80, 0x67, 0x01, 0, 0, 0, 0, 0, 0, 100]);
        bytes.extend(std::iter::repeat_n(0u8, 100));
        assert_eq!(check_bytes(&bytes, Container::Webm), None);
        bytes.truncate(bytes.len() - 10);
        assert!(check_bytes(&bytes, Container::Webm).is_some());
        // A live-style segment of unknown size is fine.
        let mut live = vec![0x1A, 0x45, 0xDF, 0xA3, 0x80, 0x18, 0x53, 0x80, 0x67, 0xFF];
        live.extend(std::iter::repeat_n(0u8, 50));
        assert_eq!(check_bytes(&live, Container::Mkv), None);
    }
}
